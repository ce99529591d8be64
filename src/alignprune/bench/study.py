"""What the full study costs: its optimizer steps under each schedule, how long Snakemake takes
to plan it, and its projected time: each stage's planned jobs x (fixed cost + compute)."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config_check import load_config
from ..operational import task_finetune
from ..stages.finetune import finetune_steps
from .common import xlmr_classifier
from .project import ROOT, SCHEMA
from .startup import StartupCost

# English training rows of the Hub data sets (facebook/xnli en, google-research-datasets/paws-x en)
TRAIN_ROWS = {"xnli": 392_702, "pawsx": 49_401}


@dataclass
class StudySteps:
    fine_tuning: int
    ladder: int  # retraining, each target from the previous one
    independent: int  # retraining, each target from the dense model with retrain.steps
    independent_same_budget: int  # each target from dense with the ladder's steps up to it

    @property
    def ratio(self) -> float:
        return self.ladder / self.independent_same_budget


def study_steps(config: dict) -> StudySteps:
    """Optimizer steps of every training job of ``config`` (a loaded, checked config)."""
    tasks = [task for task, spec in config["tasks"].items() if spec["enabled"]]
    methods = [name for name, spec in config["methods"].items() if spec["enabled"]]
    seeds, targets, steps = len(config["seeds"]), len(config["sparsities"]), config["retrain"]["steps"]
    fine_tuning = seeds * sum(finetune_steps(task_finetune(config, task), TRAIN_ROWS[task]) for task in tasks)
    chains = len(tasks) * len(methods) * seeds
    return StudySteps(
        fine_tuning=fine_tuning,
        ladder=chains * targets * steps,
        independent=chains * targets * steps,
        # the k-th target of a ladder has been retrained k x steps since the dense model
        independent_same_budget=chains * steps * targets * (targets + 1) // 2,
    )


def plan_seconds(root: Path, repeats: int = 3, targets: tuple[str, ...] = (),
                 configfiles: tuple[str, ...] = ("config.yaml",)) -> tuple[float, int]:
    """Median seconds of ``snakemake -n`` in ``root`` on ``configfiles`` (merged in order; default
    target: the whole study), and the number of jobs planned."""
    seconds, jobs = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        # targets before --quiet, whose values would swallow them
        command = [sys.executable, "-m", "snakemake", "-n", *targets, "--configfile", *configfiles, "--quiet", "rules"]
        out = subprocess.run(command, cwd=root, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"snakemake -n failed in {root}:\n{out.stderr[-2000:]}")
        seconds.append(time.perf_counter() - start)
        jobs = int(re.search(r"^total\s+(\d+)", out.stdout + out.stderr, re.MULTILINE).group(1))
    return statistics.median(seconds), jobs


# ---------------------------------------------------------------------------------------
# Projected cost of the study: each stage's planned jobs x (fixed cost + compute).

# Nominal rows per (task, split) and language of the Hub data sets (PAWS-X: before untranslated
# rows are dropped); the English validation split is the dev set of every training job.
EVAL_ROWS = {("xnli", "validation"): 2_490, ("xnli", "test"): 5_010,
             ("pawsx", "validation"): 2_000, ("pawsx", "test"): 2_000}
# Which measured start-up stands for a stage's per-job fixed cost.
FIXED_KIND = {"finetune": "finetune", "prune": "prune", "prune_sweep": "prune", "evaluate": "evaluate",
              "evaluate_sweep": "evaluate",
              "representation_alignment": "evaluate", "weight_alignment": "evaluate"}
EVAL_FILE = re.compile(r"/eval/(?P<split>[^/]+)/(?P<lang>[^/]+)\.json$")


@dataclass
class PlannedJob:
    rule: str
    outputs: list[str]
    wildcards: dict[str, str]


@dataclass
class Rates:
    """Throughputs measured on this machine, examples per second."""

    train: float
    evaluate: float


@dataclass
class FixedCost:
    """A job kind's measured start-up: seconds outside reading and tokenising data, and
    seconds per data row read and tokenised."""

    base_s: float
    per_row_s: float = 0.0


@dataclass
class StageCost:
    stage: str
    jobs: int
    fixed_total_s: float | None  # all jobs of the stage; None: not modelled (network, light table jobs)
    compute_s: float  # all jobs of the stage together

    @property
    def fixed_s(self) -> float | None:
        """Mean fixed cost per job."""
        return None if self.fixed_total_s is None else self.fixed_total_s / self.jobs

    @property
    def total_s(self) -> float:
        return (self.fixed_total_s or 0.0) + self.compute_s

    @property
    def fixed_share(self) -> float:
        return (self.fixed_total_s or 0.0) / self.total_s if self.total_s else 0.0


def planned_jobs(root: Path, configfiles: tuple[str, ...] = ("config.yaml",),
                 targets: tuple[str, ...] = ()) -> tuple[list[PlannedJob], dict[str, int]]:
    """Every job of ``snakemake -n`` on ``configfiles`` (its rule, outputs and wildcards), and
    the plan's own job counts per rule (its "Job stats" table)."""
    command = [sys.executable, "-m", "snakemake", "-n", *targets, "--configfile", *configfiles]
    out = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"snakemake -n failed in {root}:\n{out.stderr[-2000:]}")
    return parse_plan(out.stdout + out.stderr)


def parse_plan(text: str) -> tuple[list[PlannedJob], dict[str, int]]:
    """Jobs and job stats of a ``snakemake -n`` printout."""
    jobs: list[PlannedJob] = []
    for line in text.splitlines():
        if match := re.match(r"^(?:local)?(?:rule|checkpoint) (\S+):$", line):  # a checkpoint is a rule too
            jobs.append(PlannedJob(match.group(1), [], {}))
        elif jobs and (match := re.match(r"^    (output|wildcards): (.*)$", line)):
            items = [item.strip() for item in match.group(2).split(", ")]
            if match.group(1) == "output":
                jobs[-1].outputs = items
            else:
                jobs[-1].wildcards = dict(item.split("=", 1) for item in items)
    table = text[text.index("Job stats:"):] if "Job stats:" in text else ""
    stats = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
             if name != "total"}
    return jobs, stats


def stage_of(rule: str, tasks) -> str:
    """A rule's stage: per-task rules (evaluate_xnli) count with their stage (evaluate)."""
    for task in tasks:
        if rule.endswith(f"_{task}"):
            return rule.removesuffix(f"_{task}")
    return rule


def job_task(job: PlannedJob, tasks) -> str:
    """The task of a job: its wildcard, or its rule's suffix."""
    if "task" in job.wildcards:
        return job.wildcards["task"]
    return next(task for task in tasks if job.rule.endswith(f"_{task}"))


def job_examples(stage: str, job: PlannedJob, config: dict) -> tuple[int, int, int]:
    """(training examples, evaluated examples, data rows read) of one job: optimizer steps x
    batch size; every forward-only pass (dev evaluations during training, evaluations,
    representations); and the rows it reads and tokenises before its first batch."""
    tasks = list(config["tasks"])
    if stage in ("finetune", "prune", "prune_sweep"):  # a sweep run is a prune job with another weight
        task = job_task(job, tasks)
        dev = EVAL_ROWS[(task, "validation")]
        if stage == "finetune":
            settings = task_finetune(config, task)
            steps = finetune_steps(settings, TRAIN_ROWS[task])
            evaluations = -(-steps // settings["eval_every"])  # every eval_every steps and after the last
        else:
            settings = config["retrain"]
            steps = settings["steps"]
            # the ladder's dev accuracy before retraining, then every eval_every steps and after the last
            evaluations = (config["schedule"] == "ladder") + -(-steps // settings["eval_every"])
        return steps * settings["batch_size"], evaluations * dev, TRAIN_ROWS[task] + dev
    if stage in ("evaluate", "evaluate_sweep"):
        task = job_task(job, tasks)
        files = [EVAL_FILE.search(path) for path in job.outputs]
        rows = sum(EVAL_ROWS[(task, match["split"])] for match in files if match)
        return 0, rows, rows
    if stage == "representation_alignment":
        task = job_task(job, tasks)
        rows = EVAL_ROWS[(task, job.wildcards.get("split", "test"))]
        languages = len(job.outputs) + 1  # each language and the English reference
        return 0, languages * min(config["analysis"]["max_examples"], rows), languages * rows
    return 0, 0, 0


def project(jobs: list[PlannedJob], config: dict, fixed: dict[str, FixedCost], rates: Rates) -> list[StageCost]:
    """Each stage's planned jobs x (fixed cost + compute): the fixed cost of the stage's job
    kind, its data part scaled to the rows the job reads; compute from the examples each job
    trains on and evaluates, at the measured rates. Stages without a measured fixed cost
    (downloads, tables, plots) are listed with their job counts and no cost."""
    tasks = list(config["tasks"])
    stages: dict[str, StageCost] = {}
    for job in jobs:
        stage = stage_of(job.rule, tasks)
        kind = FIXED_KIND.get(stage)
        cost = stages.setdefault(stage, StageCost(stage, 0, 0.0 if kind else None, 0.0))
        cost.jobs += 1
        trained, evaluated, rows = job_examples(stage, job, config)
        if kind:
            cost.fixed_total_s += fixed[kind].base_s + fixed[kind].per_row_s * rows
        cost.compute_s += trained / rates.train + evaluated / rates.evaluate
    return list(stages.values())


def format_projection(costs: list[StageCost], target_share: float = 0.10) -> str:
    lines = ["| stage | jobs | fixed s / job | compute s / job | projected hours | fixed share |",
             "|---|---:|---:|---:|---:|---:|"]
    for cost in costs:
        if cost.fixed_s is None:
            lines.append(f"| {cost.stage} | {cost.jobs:,} | not modelled | | | |")
            continue
        lines.append(f"| {cost.stage} | {cost.jobs:,} | {cost.fixed_s:.2f} | {cost.compute_s / cost.jobs:,.1f} | "
                     f"{cost.total_s / 3600:,.1f} | {100 * cost.fixed_share:.1f}% |")
    total = sum(cost.total_s for cost in costs)
    fixed = sum(cost.fixed_total_s or 0.0 for cost in costs)
    share = fixed / total if total else 0.0
    verdict = "met" if share <= target_share else "missed"
    lines.append(f"| **all** | {sum(cost.jobs for cost in costs):,} | {fixed / 3600:,.1f} h in all | "
                 f"{(total - fixed) / 3600:,.1f} h in all | {total / 3600:,.1f} | "
                 f"**{100 * share:.1f}%** (<= {100 * target_share:g}%: {verdict}) |")
    return "\n".join(lines)


def measured_rates(make_model, device, *, batch_size: int, batches: int, eval_examples: int, eval_batch_size: int,
                   group_by_length: bool, repeats: int, max_length: int = 128, sync=lambda: None) -> Rates:
    """Our training and evaluation throughputs (examples/s, medians of ``repeats``) on
    NLI-like synthetic lengths (see ``trainer``): the rates the projection computes with."""
    from ..evaluate import predict
    from ..train import TrainSettings, train
    from .trainer import PAD_ID, synthetic_split

    model = make_model().to(device)
    vocab = model.config.vocab_size
    data = synthetic_split(batch_size * batches, vocab, seed=1, max_length=max_length)
    dev = synthetic_split(8, vocab, seed=2, max_length=max_length)
    evaluated = synthetic_split(eval_examples, vocab, seed=3, max_length=max_length)
    settings = TrainSettings(learning_rate=2e-5, batch_size=batch_size, max_steps=batches, eval_every=10**9,
                             group_by_length=group_by_length)
    train_rates, eval_rates = [], []
    for repeat in range(repeats + 1):  # the first round warms up
        sync()
        start = time.perf_counter()
        train(model, data, dev, settings, pad_id=PAD_ID, device=device, progress=False)
        sync()
        middle = time.perf_counter()
        predict(model, evaluated, batch_size=eval_batch_size, pad_id=PAD_ID, device=device)
        sync()
        end = time.perf_counter()
        if repeat:
            train_rates.append(len(data) / (middle - start))
            eval_rates.append(len(evaluated) / (end - middle))
    return Rates(statistics.median(train_rates), statistics.median(eval_rates))


def study_config(config_files: list[str]) -> dict:
    """The study's config as the Snakefile sees it: ``config_files`` (relative to the project
    root) merged in order, checked, defaults filled in."""
    return load_config(*(ROOT / name for name in config_files), schema_file=SCHEMA, workdir=ROOT)


def study_projection(config_files: list[str], startup: list[StartupCost], size: str,
                     device, sync, *, batches: int, repeats: int, eval_examples: int = 512) -> str:
    """The study's planned jobs per stage x (measured fixed cost + compute at measured rates).
    ``startup``: the fixed costs measured at the same ``size`` (``startup.startup_costs``)."""
    config = study_config(config_files)
    jobs, stats = planned_jobs(ROOT, tuple(config_files))
    counted = {rule: sum(job.rule == rule for job in jobs) for rule in stats}
    if counted != stats:
        raise RuntimeError(f"parsed jobs per rule {counted} differ from the plan's job stats {stats}")
    rates = measured_rates(
        lambda: xlmr_classifier(size), device, batch_size=config["finetune"]["batch_size"], batches=batches,
        eval_examples=eval_examples, eval_batch_size=config["evaluation"]["batch_size"],
        group_by_length=config["finetune"].get("group_by_length", False), repeats=repeats,
        max_length=config["max_length"], sync=sync,
    )
    # the data part scales with the rows each job of the study reads; the rest as measured
    fixed = {cost.kind: FixedCost(cost.median - cost.parts.get("data", 0.0), cost.per_row_s) for cost in startup}
    costs = project(jobs, config, fixed, rates)
    return "\n".join([
        f"projected study of {' + '.join(config_files)} on {device} at the {size} shape: training "
        f"{rates.train:,.1f} examples/s, evaluation {rates.evaluate:,.1f} examples/s (batch "
        f"{config['finetune']['batch_size']} / {config['evaluation']['batch_size']}, NLI-like lengths, max_length "
        f"{config['max_length']}; medians of {repeats} timed runs after 1 warm-up run); fixed cost per job as "
        f"measured above in this run (a {size}-shape model), its data part (read, tokenise) scaled to the rows "
        "each job reads",
        format_projection(costs),
    ])


def study_table(config_files: list[str]) -> str:
    """Optimizer steps of the full study per schedule, and the time Snakemake takes to plan it."""
    steps = study_steps(study_config(config_files))
    seconds, jobs = plan_seconds(ROOT, configfiles=tuple(config_files))
    return "\n".join([
        f"study of {' + '.join(config_files)}: optimizer steps",
        "| schedule | retraining steps | ratio to ladder |", "|---|---:|---:|",
        f"| ladder (each target from the previous) | {steps.ladder:,} | 1.000 |",
        f"| independent, each target from dense with the ladder's steps up to it | {steps.independent_same_budget:,} "
        f"| {steps.independent_same_budget / steps.ladder:.3f} |",
        f"| independent as configured (retrain.steps per target) | {steps.independent:,} "
        f"| {steps.independent / steps.ladder:.3f} |",
        f"dense fine-tuning: {steps.fine_tuning:,} steps; ladder / same-budget independent = {steps.ratio:.3f}",
        f"snakemake -n on the full config: {jobs:,} jobs planned in {seconds:.1f} s (median of 3)",
    ])
