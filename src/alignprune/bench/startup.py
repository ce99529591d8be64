"""Per-job fixed cost: seconds from process start to a job's first batch.

Each measurement starts a fresh Python process that does what a rule script does (the
Snakemake script preamble's imports, ``rule_job``, then the job function of
``alignprune.stages``) on a testbed: the demo's data and tokenizer (or a tiny testbed's, for
tests) with a randomly initialised model of the benchmark's shape (``common.SIZES``: the
shape the study projection computes at, so a base-size load is a base-size file). A global
forward pre-hook stamps the time of the first batch and ends the process there, so what is
timed is Python start-up, imports, device, model and tokenizer load, data read and
tokenisation, and any other set-up before compute:

- evaluate: until the first forward pass, over every split and language one model's
  evaluation job reads (``evaluate_model_files``, as the evaluate rule runs it);
- finetune, prune: until the first training forward pass, less the time spent in
  evaluation passes before it (prune's English dev accuracy before retraining is compute
  that grows with the dev set, counted as compute by the study projection).

Each kind runs once more than measured, first, and that round is discarded: the first
process pays for cold file caches.

``python -m alignprune.bench.startup child SPEC OUT`` is the child; only the standard
library is imported at the top of this module (and of ``alignprune.bench`` and its ``project``),
so the child's own imports are what is timed.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .project import ROOT, SCHEMA, demo_config, study_prunable

KINDS = ("finetune", "prune", "evaluate")
TASK = "xnli"
# A regularized method: its job also loads the reference model and builds the penalty.
METHOD = {"criterion": "magnitude", "scope": "global", "regularizer": "l2", "weight": 0.1}


@dataclass
class Testbed:
    """Files the measured jobs read: pretrained model + tokenizer, a dense classifier, data."""

    pretrained: Path
    dense: Path
    train: Path
    dev: Path
    tests: dict[tuple[str, str], Path]  # (split, language) -> token file: what one evaluation job reads
    max_length: int
    finetune: dict
    retrain: dict
    eval_batch_size: int


@dataclass
class StartupCost:
    kind: str
    seconds: list[float]  # process start to first batch, one per repeat
    cpu_seconds: list[float]  # CPU time of the process over the same span
    parts: dict[str, float] = field(default_factory=dict)  # medians of the stages, seconds
    parameters: int = 0  # parameter count of the model the child loaded
    training: bool = False  # the first batch timed was a training batch
    evaluation_s: float = 0.0  # median time in evaluation passes before it (left out of the fixed cost)
    rows: int = 0  # data rows the job read (and tokenised) before its first batch

    @property
    def per_row_s(self) -> float:
        """Seconds per data row read and tokenised (the data part over the rows read)."""
        return self.parts.get("data", 0.0) / self.rows if self.rows else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)


def build_testbed(folder: Path, size: str) -> Testbed:
    """A new testbed in ``folder``: the demo's languages and data sizes (few pretraining steps:
    the weights' values do not change the timing), or for size tiny two languages and few rows;
    its model replaced by one of the ``size`` shape (``at_shape``)."""
    from dataclasses import replace

    from .. import testbed
    from ..testbed_settings import settings_from_config

    demo = demo_config()
    if size == "tiny":
        languages = [testbed.LanguageSpec(code="en"), testbed.LanguageSpec(code="fr")]
        settings = testbed.TestbedSettings(seed=0, languages=languages, hidden_size=32, layers=2, heads=2,
                                           pretrain_steps=2, pretrain_batch_size=8, vocab_size=300,
                                           sizes={"train": 64, "validation": 32, "test": 32})
    else:
        settings = replace(settings_from_config(demo["testbed"]), pretrain_steps=5)
    files = data_files(lambda lang, split: folder / "data" / lang / f"{split}.parquet", demo,
                       [spec.code for spec in settings.languages])
    testbed.build_testbed(settings, folder / "testbed", files, progress=False)
    return at_shape(folder, folder / "testbed", files, demo, size)


def data_files(path, demo: dict, languages: list[str]) -> dict[tuple[str, str, str], Path]:
    """The files the measured jobs read, (task, language, split) -> ``path(lang, split)``: English
    train and validation, and every (split, language) a model's evaluation job of the demo reads
    (its eval_splits x its task's languages; of ``languages``, those the testbed has)."""
    files = {(TASK, "en", "train"): path("en", "train"), (TASK, "en", "validation"): path("en", "validation")}
    for split in demo["eval_splits"]:
        for lang in demo["tasks"][TASK]["languages"]:
            if lang in languages:
                files[(TASK, lang, split)] = path(lang, split)
    return files


def testbed_for(size: str, folder: Path, root: Path) -> Testbed:
    """The demo's own testbed data under ``root`` if it has been built (not for size tiny), else a
    new testbed in ``folder``; the model at the ``size`` shape either way."""
    return (None if size == "tiny" else reuse_demo(root, folder, size)) or build_testbed(folder, size)


def reuse_demo(root: Path, folder: Path, size: str) -> Testbed | None:
    """The demo's own data and tokenizer under ``root`` (resources/demo), if they have been built;
    the model of the ``size`` shape and the token files go to ``folder``."""
    from ..config_check import data_path, pretrained_dir

    demo = demo_config()
    resources = root / demo["paths"]["resources"]
    pretrained = Path(pretrained_dir(resources, demo["model"]))
    files = data_files(lambda lang, split: Path(data_path(resources, TASK, lang, split)), demo,
                       demo["tasks"][TASK]["languages"])
    if not (pretrained / "model.safetensors").exists() or not all(path.exists() for path in files.values()):
        return None
    return at_shape(folder, pretrained, files, demo, size)


def at_shape(folder: Path, testbed_dir: Path, files: dict, demo: dict, size: str) -> Testbed:
    """In ``folder``: the pretrained folder of ``testbed_dir`` (its tokenizer and records) with a
    randomly initialised masked-LM of the ``size`` shape (common.SIZES, XLM-R's 514 positions) in
    place of its model, a dense classifier made from it as fine-tuning saves it (no training:
    timing only), and the token files of ``files`` as the tokenize rule writes them."""
    import shutil

    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from .. import modeling
    from ..operational import task_finetune
    from ..rule_runtime import quiet_libraries
    from ..tokens import tokenize_files
    from .common import SIZES

    quiet_libraries()  # no progress bars of the saves and loads in the benchmark's output
    pretrained = folder / "pretrained"
    shutil.copytree(testbed_dir, pretrained)
    config = XLMRobertaConfig.from_pretrained(pretrained)  # the tokenizer's special ids
    if SIZES[size]["vocab_size"] < config.vocab_size:
        raise ValueError(f"the {size} shape's vocabulary ({SIZES[size]['vocab_size']:,}) is smaller than the "
                         f"testbed tokenizer's ({config.vocab_size:,})")
    config.update({**SIZES[size], "max_position_embeddings": 514})
    for name in ("model.safetensors", "config.json"):
        (pretrained / name).unlink()
    torch.manual_seed(0)
    XLMRobertaForMaskedLM(config).save_pretrained(pretrained)
    model = modeling.load_classifier(pretrained, num_labels=3)
    modeling.save_model(model, folder / "dense")
    del model
    # the jobs read token files, as the tokenize rule writes them (not timed: made once per study)
    tokens = tokenize_files(files, pretrained, lambda key: folder.joinpath("tokens", *key[:2], f"{key[2]}.parquet"),
                            max_length=demo["max_length"])
    return Testbed(
        pretrained=pretrained, dense=folder / "dense", train=tokens[(TASK, "en", "train")],
        dev=tokens[(TASK, "en", "validation")],
        tests={(split, lang): path for (_, lang, split), path in tokens.items()
               if split in demo["eval_splits"] and lang in demo["tasks"][TASK]["languages"]},
        max_length=demo["max_length"],
        # the sections as the rules pass them (demo_config: merged, checked, with the schema's defaults)
        finetune=task_finetune(demo, TASK), retrain=demo["retrain"],
        eval_batch_size=demo["evaluation"]["batch_size"],
    )


def job_arguments(kind: str, bed: Testbed, out: Path) -> dict:
    """Keyword arguments of the job function of ``kind`` (as its rule script passes them)."""
    from ..config_check import config_section
    from ..model_key import ModelKey
    from ..operational import method_settings

    common = {"max_length": bed.max_length, "prunable": study_prunable()}
    if kind == "finetune":
        return {**common, "task": TASK, "seed": 1, "pretrained_dir": bed.pretrained, "train_file": bed.train, "dev_file": bed.dev,
                "out_dir": out / "model", "settings": bed.finetune, "progress": False}
    if kind == "prune":
        # as the rule passes it: the keys a magnitude method with l2 reads, with the schema's defaults
        method = method_settings(config_section(SCHEMA, "methods.*", METHOD), "ladder")
        return {**common, "task": TASK, "seed": 1, "method_name": "magnitude_global_l2", "method": method, "sparsity": 0.5,
                "start_dir": bed.dense, "reference_dir": bed.dense, "tokenizer_dir": bed.pretrained,
                "train_file": bed.train, "dev_file": bed.dev, "out_dir": out / "model", "settings": bed.retrain,
                "schedule": "ladder", "progress": False}
    if kind == "evaluate":
        # what the evaluate rule passes: one model, every (split, language) of its task
        files = [[split, lang, token_file, out / "eval" / split / f"{lang}.json"]
                 for (split, lang), token_file in bed.tests.items()]
        return {**common, "key": ModelKey.of(TASK, 1), "model_dir": bed.dense, "tokenizer_dir": bed.pretrained,
                "files": files, "batch_size": bed.eval_batch_size}
    raise ValueError(f"unknown job kind {kind!r}; expected one of {KINDS}")


# kind -> (module of alignprune.stages, function)
JOB_FUNCTIONS = {"finetune": ("finetune", "finetune"), "prune": ("prune", "prune_and_retrain"),
                 "evaluate": ("evaluate", "evaluate_model_files")}


def measure(bed: Testbed, *, repeats: int, kinds=KINDS, threads: int = 1, device: str = "cpu",
            warmup: int = 1) -> list[StartupCost]:
    """Median seconds to the first batch of each job kind, in fresh processes, interleaved
    kind by kind each round so that load on the machine hits all alike; the first ``warmup``
    rounds are discarded (the first process of a kind pays for cold file caches)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    results = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="alignprune-startup-") as scratch:
        for round_ in range(warmup + repeats):
            for kind in kinds:
                folder = Path(scratch) / f"{kind}-{round_}"
                folder.mkdir()
                run = _run_child(kind, bed, folder, threads, device)
                if round_ >= warmup:
                    results[kind].append(run)
    costs = []
    for kind, runs in results.items():
        parts = {name: statistics.median(run["parts"][name] for run in runs) for name in runs[0]["parts"]}
        costs.append(StartupCost(kind, [run["fixed"] for run in runs], [run["cpu"] for run in runs], parts,
                                 runs[0]["parameters"], runs[0]["training"],
                                 statistics.median(run["evaluation"] for run in runs), runs[0]["rows"]))
    return costs


def _run_child(kind: str, bed: Testbed, folder: Path, threads: int, device: str) -> dict:
    from ..model_key import ModelKey

    def plain(value):  # as JSON: the child rebuilds a model key from its fields
        if isinstance(value, list):
            return [plain(item) for item in value]
        return str(value) if isinstance(value, Path) else asdict(value) if isinstance(value, ModelKey) else value

    spec = {"kind": kind, "threads": threads, "device": device, "log": str(folder / "job.log"),
            "arguments": {k: plain(v) for k, v in job_arguments(kind, bed, folder).items()}}
    (folder / "spec.json").write_text(json.dumps(spec))
    out = folder / "stamps.json"
    environment = {**os.environ, "ALIGNPRUNE_DEVICE": device}
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "alignprune.bench.startup", "child", str(folder / "spec.json"),
                           str(out), repr(start)], capture_output=True, text=True, env=environment)
    if done.returncode != 0 or not out.exists():
        log = Path(spec["log"]).read_text()[-3000:] if Path(spec["log"]).exists() else ""
        raise RuntimeError(f"the {kind} job's start-up measurement failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}{log}")
    return json.loads(out.read_text())


def startup_costs(size: str, repeats: int, device: str) -> list[StartupCost]:
    """Seconds from process start to the first batch of each job kind on ``device`` (cpu,
    cuda), the model at the ``size`` shape: the demo's own testbed data if built (see
    ``testbed_for``), else a new testbed, removed after."""
    with tempfile.TemporaryDirectory(prefix="alignprune-testbed-") as folder:
        bed = testbed_for(size, Path(folder), ROOT)
        return measure(bed, repeats=repeats, device=device)


def format_table(costs: list[StartupCost], targets: dict[str, float] | None = None) -> str:
    targets = targets or {}
    order = ("python", "imports", "device", "tokenizer", "data", "model", "other")
    lines = ["| job | parameters | rows read | median s to first batch | CPU s | " + " | ".join(order) + " | target |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(order) + "---|"]
    for cost in costs:
        target = targets.get(cost.kind)
        verdict = "" if target is None else f"<= {target:g} s: **{'met' if cost.median <= target else 'missed'}**"
        lines.append(f"| {cost.kind} | {cost.parameters:,} | {cost.rows:,} | {cost.median:.2f} | {cost.cpu_median:.2f} | "
                     + " | ".join(f"{cost.parts.get(name, 0.0):.2f}" for name in order) + f" | {verdict} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The child process. Everything below runs in the measured process.


def _child(spec_file: str, out_file: str, spawned: float) -> None:
    stamps = {"started": time.time()}
    spec = json.loads(Path(spec_file).read_text())
    # What Snakemake's script preamble imports before the rule script's first line.
    from snakemake.iocontainers import Snakemake  # noqa: F401
    from snakemake.logging import logger  # noqa: F401

    from alignprune import data, modeling
    from alignprune.rule_runtime import rule_job

    try:
        from alignprune import tokens
    except ImportError:  # a version before token files (the bench compares versions)
        tokens = None

    import torch

    # the job function's own module, as the rule script imports it
    stage, function = JOB_FUNCTIONS[spec["kind"]]
    job = getattr(importlib.import_module(f"alignprune.stages.{stage}"), function)
    stamps["imported"] = time.time()
    spent = {"tokenizer": 0.0, "data": 0.0, "model": 0.0, "evaluation": 0.0, "evaluation_cpu": 0.0}

    def timed(module, name: str, part: str) -> None:
        original = getattr(module, name, None)
        if original is None:  # a stage this version of the package does not have
            return

        def wrapper(*args, **kwargs):
            begin, begin_cpu = time.time(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[part] += time.time() - begin
                if part == "evaluation":
                    spent["evaluation_cpu"] += time.process_time() - begin_cpu

        setattr(module, name, wrapper)

    rows = [0]
    # rows the job reads: the data part scales with them. Versions before token files read
    # data.read_split (a frame) and encoded it; since, tokens.read_tokens (a split and its pad id).
    for module, name in ((data, "read_split"), (tokens, "read_tokens")):
        reader = getattr(module, name, None)
        if reader is None:
            continue

        def counted(*args, _reader=reader, **kwargs):
            read = _reader(*args, **kwargs)
            rows[0] += len(read[0] if isinstance(read, tuple) else read)
            return read

        setattr(module, name, counted)
    timed(modeling, "load_tokenizer", "tokenizer")
    timed(modeling, "load_classifier", "model")
    for name in ("read_split", "encode"):
        timed(data, name, "data")
    timed(tokens, "read_tokens", "data")
    if spec["kind"] != "evaluate":
        # evaluation passes before training: compute; patched where the job function looks it up
        timed(sys.modules[job.__module__], "accuracy", "evaluation")

    def first_batch(module, args):
        now = time.time()
        if spec["kind"] != "evaluate" and not module.training:
            return None
        fixed = now - spawned - spent["evaluation"]
        parts = {
            "python": stamps["started"] - spawned,
            "imports": stamps["imported"] - stamps["started"],
            "device": stamps["device"] - stamps["imported"],
            "tokenizer": spent["tokenizer"],
            "data": spent["data"],
            "model": spent["model"],
        }
        parts["other"] = fixed - sum(parts.values())
        # CPU seconds of this process (all threads) to here, less the evaluation passes':
        # less sensitive than wall time to other processes sharing the machine
        cpu = time.process_time() - spent["evaluation_cpu"]
        result = {"fixed": fixed, "cpu": cpu, "parts": parts, "rows": rows[0], "evaluation": spent["evaluation"],
                  "parameters": sum(p.numel() for p in module.parameters()), "training": module.training}
        Path(out_file).write_text(json.dumps(result))
        os._exit(0)  # the first batch is where the fixed cost ends: skip the job's compute

    torch.nn.modules.module.register_module_forward_pre_hook(first_batch)
    arguments = spec["arguments"]
    if "key" in arguments:  # a model key, as the rule script reads it from its wildcards
        from alignprune.model_key import ModelKey  # already imported by the job's stage module

        arguments["key"] = ModelKey(**arguments["key"])
    if "files" in arguments:  # the evaluations of one model, as the evaluate rule script builds them
        evaluate_file = sys.modules[job.__module__].EvalFile  # the job's own stage module: imported
        arguments["files"] = [evaluate_file(*item) for item in arguments["files"]]
    snakemake = _RuleContext(spec)
    with rule_job(snakemake) as device:
        stamps["device"] = time.time()
        job(device=device, **arguments)
    raise RuntimeError(f"the {spec['kind']} job ended without a forward pass")


class _RuleContext:
    """The parts of Snakemake's ``snakemake`` object that ``rule_job`` reads."""

    def __init__(self, spec: dict):
        self.threads = spec["threads"]
        self.log = [spec["log"]]
        self.rule = spec["kind"]
        self.resources = type("Resources", (), {"gpu": 0})()


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "child":
        sys.exit("usage: python -m alignprune.bench.startup child SPEC_JSON OUT_JSON SPAWN_TIME")
    _child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
