"""The benchmark harness runs at a tiny size (it is not a timed test: no figure is checked)."""

import re
import subprocess
import sys

import pytest
import torch

from alignprune.bench import common, masks, startup, study, trainer
from alignprune.bench.cli import main as bench_main
from alignprune.train import TrainSettings
from workflow_helpers import ROOT, load_config


def test_python_m_alignprune_bench_runs_the_command_line():
    out = subprocess.run([sys.executable, "-m", "alignprune.bench", "--help"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("usage: python -m alignprune.bench") and "--only" in out.stdout
    # what the study projection does not take from the command line, said where the options are
    text = " ".join(out.stdout.split())
    assert "not at --batch-size, --eval-batch-size or --length" in text and "whatever --threads says" in text


def test_the_startup_child_imports_only_the_standard_library_before_it_times_its_own_imports():
    """``python -m alignprune.bench.startup child`` times the imports a rule script makes: the
    package, the bench subpackage and the module itself must not bring torch in first."""
    probe = "import sys, alignprune.bench.startup; print(sorted({'torch', 'yaml', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_retraining_step_comparison_runs_every_variant_against_the_masked_baseline(capsys):
    timings = bench_main(["--size", "tiny", "--device", "cpu", "--batch-size", "2", "--length", "8",
                          "--warmup", "1", "--repeats", "2", "--only", "step"])
    variants = [t.variant for t in timings]
    assert variants == ["masked (baseline)", "no masks", "torch.nn.utils.prune hooks",
                        "masked + l2", "masked + cosine", "masked + frobenius"]
    assert timings[0].ratio == 1.0
    assert all(t.median_ms > 0 and t.ratio > 0 for t in timings)
    table = capsys.readouterr().out
    assert "| retraining step | masked + cosine |" in table
    # each comparison's own rounds, with its table
    assert "retraining step, batch 2 x 8, sparsity 0.5: medians of 2 rounds after 1 warm-up round\n" in table


def test_masked_variants_step_a_masked_model_whatever_ran_before():
    """The no-masks variant steps a copy of its own: the pruned weights it revives are not the
    ones the masked variants step after it."""
    from alignprune.bench.project import study_prunable
    from alignprune.bench.step import step_variants
    from alignprune.modeling import prunable_names

    variants, models = step_variants("tiny", torch.device("cpu"), batch_size=2, length=8, sparsity=0.5)
    for _ in range(2):  # in the comparison's order, twice: masked, no masks, then masked again
        for run in variants.values():
            run()
    names = prunable_names(models["masked"].model, **study_prunable())
    total = sum(models["masked"].params[name].numel() for name in names)

    def zeros(variant):
        return sum(int((models[variant].params[name] == 0.0).sum()) for name in names)

    # the masked model keeps its half of pruned weights at 0.0; the copy without masks revived them
    assert zeros("masked") == total // 2
    assert zeros("no masks") < total // 100
    assert models["masked"].optimizer is not models["no masks"].optimizer


def test_benchmark_steps_keep_pruned_weights_at_zero():
    """The timed step is the training loop's own step: masks hold through it."""
    import torch

    from alignprune.bench.project import study_prunable
    from alignprune.modeling import prunable_names
    from alignprune.pruning import apply_masks, compute_masks
    from alignprune.regularizers import alignment_penalty
    from alignprune.train import build_optimizer, linear_schedule, training_step

    model = common.xlmr_classifier("tiny")
    params = dict(model.named_parameters())
    names = prunable_names(model, **study_prunable())
    assert len(names) == 12  # 6 Linear weights x 2 layers
    masks = compute_masks({n: params[n].detach() for n in names}, criterion="magnitude", scope="global", sparsity=0.5)
    reference = [params[n].detach().clone() for n in names]
    apply_masks(params, masks)  # as train() does before its first step
    settings = TrainSettings(learning_rate=1e-3, batch_size=2, max_steps=10, eval_every=10, weight_decay=0.1)
    optimizer, batch = build_optimizer(model, settings), (torch.randint(5, 1000, (2, 8)), torch.ones(2, 8, dtype=torch.long), torch.tensor([0, 2]))
    scheduler = linear_schedule(optimizer, settings)
    for _ in range(3):
        loss, penalty, _ = training_step(
            model, params, batch, optimizer, scheduler, settings, device=torch.device("cpu"), masks=masks,
            penalty=lambda: alignment_penalty("cosine", [params[n] for n in names], reference, [masks[n] for n in names]),
            penalty_weight=1.0,
        )
    assert penalty.item() > 0 and torch.isfinite(loss)
    assert all(torch.all(params[n][~masks[n]] == 0.0) for n in names)


def test_mask_comparison_agrees_with_torch_prune_and_measures_memory(capsys):
    timings = bench_main(["--only", "masks", "--mask-size", "tiny", "--repeats", "12", "--warmup", "2"])
    # its own rounds, not the step comparison's --repeats and --warmup
    out = capsys.readouterr().out
    assert "masks on the tiny shape's weights: medians of 4 rounds after 1 warm-up round" in out
    assert "12 rounds" not in out and "2 warm-up" not in out
    assert [(t.comparison.split(" mask")[0], t.variant) for t in timings] == [
        ("global magnitude", "ours"), ("global magnitude", "torch.nn.utils.prune.global_unstructured"),
        ("global lamp", "ours"), ("global lamp", "torch.nn.utils.prune.global_unstructured"),
    ]
    # random weights have no ties: the same mask as torch's
    assert [t.note for t in timings if t.variant != "ours"] == ["0 weights differ from ours"] * 2
    # both build at least a score per weight: more than the 98,304 x 4 bytes of the weights
    assert all(t.peak_mb > 98_304 * 4 / 2**20 for t in timings)


def test_encoder_linear_shapes_of_xlmr_base_hold_84_9_million_weights():
    shapes = common.SIZES["base"]
    hidden, inter, layers = shapes["hidden_size"], shapes["intermediate_size"], shapes["num_hidden_layers"]
    assert layers * (4 * hidden * hidden + 2 * hidden * inter) == 84_934_656
    tiny = masks.encoder_linear_weights("tiny")
    assert len(tiny) == 12 and sum(w.numel() for w in tiny.values()) == 98_304


def test_trainer_comparisons_run_every_variant_against_ours(capsys):
    timings = bench_main(["--size", "tiny", "--device", "cpu", "--batch-size", "4", "--length", "32", "--warmup", "1",
                          "--only", "train", "--only", "eval", "--epoch-batches", "4", "--train-repeats", "1",
                          "--eval-examples", "32", "--eval-batch-size", "8", "--repeats", "3"])
    assert [(t.comparison, t.variant) for t in timings] == [
        ("training, one epoch of 4 batches", "ours, group_by_length"),
        ("training, one epoch of 4 batches", "Trainer, group_by_length + dynamic padding"),
        ("training, one epoch of 4 batches", "Trainer as run_xnli (padded to 32)"),
        ("training, one epoch of 4 batches", "ours, random batches (the config's default)"),
        ("evaluation of 32 examples", "ours"),
        ("evaluation of 32 examples", "Trainer.evaluate as run_xnli (padded to 32)"),
        ("evaluation of 32 examples", "Trainer.evaluate, group_by_length + dynamic padding"),
    ]
    assert timings[0].ratio == timings[4].ratio == 1.0
    assert all(t.per_second > 0 and t.median_ms is None for t in timings)
    out = capsys.readouterr().out
    assert "| training, one epoch of 4 batches | ours, group_by_length |" in out
    # each comparison's own rounds, with its table
    assert "training, batch 4, max_length 32: medians of 1 epoch per variant after a warm-up run of 1 step\n" in out
    assert "evaluation, batch 8, max_length 32: medians of 3 rounds after 1 warm-up round\n" in out


def test_trainer_runs_as_configured_dynamic_and_grouped_or_padded_to_max_length():
    """What the Trainer variants compute on: the inputs their model sees in one epoch."""
    data = trainer.synthetic_split(4 * 8, vocab=1000, seed=1, max_length=64)
    settings = TrainSettings(learning_rate=1e-5, batch_size=4, max_steps=8, eval_every=10**9)
    widths = {}
    for style in ("best", "run_xnli"):
        model = common.xlmr_classifier("tiny")
        seen = widths[style] = []
        model.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                        with_kwargs=True)
        trainer._trainer(model, torch.device("cpu"), data, style=style, settings=settings, max_length=64).train()
    assert widths["run_xnli"] == [64] * 8
    # grouped and dynamically padded: 8 batches no wider than needed, far less than padding to 64
    assert len(widths["best"]) == 8 and sum(widths["best"]) < 0.8 * 64 * 8
    lengths = [len(ids) for ids in data.input_ids]
    assert max(widths["best"]) == max(lengths)


def test_study_steps_of_the_full_config_ladder_is_a_fifth_of_independent_runs_with_the_same_budget():
    config = load_config("config.yaml")
    steps = study.study_steps(config)
    methods = sum(spec["enabled"] for spec in config["methods"].values())
    assert methods >= 10
    # methods x 3 seeds x 2 tasks x 9 targets x 3000 steps
    assert steps.ladder == steps.independent == methods * 3 * 2 * 9 * 3000
    assert steps.independent_same_budget == methods * 3 * 2 * 3000 * 45
    assert steps.ratio == 0.2
    # 5 epochs of 392,702 XNLI and 49,401 PAWS-X rows in batches of 32, 3 seeds
    assert steps.fine_tuning == 3 * (61_360 + 7_719)


def test_plan_time_counts_the_jobs_snakemake_plans():
    target = "results/xnli/seed~2/method~magnitude_global/sparsity~0.30/eval/test/de.json"
    seconds, jobs = study.plan_seconds(ROOT, repeats=1, targets=(target,))
    # download the model and xnli's 31 data files (en train; validation and test of 15 languages:
    # the evaluation job of a model reads them all), tokenise each, finetune, prune 0.10 0.20 0.30,
    # evaluate
    assert seconds > 0 and jobs == 1 + 31 + 31 + 1 + 3 + 1


def test_fixed_cost_harness_times_each_job_kind_to_its_first_batch_in_a_fresh_process(tmp_path, capfd):
    from alignprune import modeling

    bed = startup.build_testbed(tmp_path, "tiny")
    # the build's saves and loads print no progress bars into the benchmark's output
    assert "Loading weights" not in capfd.readouterr().err
    costs = startup.measure(bed, repeats=1, warmup=0)
    assert [cost.kind for cost in costs] == ["finetune", "prune", "evaluate"]
    # the child really loaded the testbed's classifier, of the benchmark's shape (common.SIZES),
    # not the testbed's own: the parameter count of its first forward
    dense = modeling.load_classifier(bed.dense)
    shape = {key: getattr(dense.config, key) for key in common.SIZES["tiny"]}
    assert shape == common.SIZES["tiny"]
    parameters = sum(p.numel() for p in dense.parameters())
    assert all(cost.parameters == parameters for cost in costs)
    for cost in costs:
        assert cost.median > 0 and cost.cpu_median > 0
        assert cost.parts["model"] > 0 and cost.parts["imports"] > 0 and cost.parts["python"] > 0
        # the stages account for the whole span
        assert abs(sum(cost.parts.values()) - cost.median) < 1e-6
    by_kind = {cost.kind: cost for cost in costs}
    # training jobs are timed to their first training batch; prune's dev accuracy before
    # retraining (compute) ran first and is left out of its fixed cost
    assert by_kind["finetune"].training and by_kind["prune"].training and not by_kind["evaluate"].training
    assert by_kind["prune"].evaluation_s > 0 and by_kind["finetune"].evaluation_s == 0
    # rows read before the first batch: English train + dev (64 + 32); the evaluation job reads
    # the test file of each of the testbed's languages, as the evaluate rule's job does (2 x 32)
    assert [cost.rows for cost in costs] == [96, 96, 64]
    assert all(cost.per_row_s > 0 for cost in costs)
    table = startup.format_table(costs, {"evaluate": 1e9})
    assert f"| evaluate | {parameters:,} |" in table and "<= 1e+09 s: **met**" in table


def test_the_startup_evaluate_job_is_the_evaluate_rules_every_split_and_language_of_a_model(tmp_path):
    demo = load_config("config.yaml", "profiles/demo/testbed.yaml")
    languages = demo["tasks"]["xnli"]["languages"]
    bed = startup.Testbed(pretrained=tmp_path, dense=tmp_path, train=tmp_path, dev=tmp_path,
                          tests={(split, lang): tmp_path / f"{lang}.parquet" for split in demo["eval_splits"]
                                 for lang in languages},
                          max_length=8, finetune={}, retrain={}, eval_batch_size=4)
    arguments = startup.job_arguments("evaluate", bed, tmp_path / "out")
    assert startup.JOB_FUNCTIONS["evaluate"] == ("evaluate", "evaluate_model_files")
    assert [(split, lang) for split, lang, *_ in arguments["files"]] == [
        (split, lang) for split in demo["eval_splits"] for lang in languages]
    # the files a new testbed writes for it: every (split, language) of the demo's evaluation jobs
    files = startup.data_files(lambda lang, split: f"{lang}/{split}", demo, languages)
    assert {(lang, split) for _, lang, split in files} >= {(lang, split) for split in demo["eval_splits"]
                                                            for lang in languages}


def test_the_first_startup_round_is_discarded(monkeypatch):
    """The first process of a kind pays for cold file caches: one round runs first, unmeasured."""
    runs = iter(range(100))

    def child(kind, bed, folder, threads, device):
        fixed = float(next(runs))
        return {"fixed": fixed, "cpu": fixed, "parts": {"model": fixed}, "parameters": 1, "training": False,
                "evaluation": 0.0, "rows": 1}

    monkeypatch.setattr(startup, "_run_child", child)
    costs = startup.measure(None, repeats=2, kinds=("prune", "evaluate"))
    # rounds of two children: 0, 1 discarded; then 2, 3 and 4, 5
    assert [cost.seconds for cost in costs] == [[2.0, 4.0], [3.0, 5.0]]


@pytest.mark.parametrize("size, data", [("tiny", "a tiny testbed's data"), ("cpu", "the demo's data")])
def test_the_fixed_cost_heading_names_the_testbed_and_the_model_shape_measured(monkeypatch, capsys, size, data):
    measured = []

    def costs(size, repeats, device):
        measured.append((size, repeats, device))
        return [startup.StartupCost("evaluate", [1.0], [1.0], {}, parameters=1234)]

    monkeypatch.setattr(startup, "startup_costs", costs)
    bench_main(["--size", size, "--device", "cpu", "--only", "startup", "--startup-repeats", "2"])
    out = capsys.readouterr().out
    assert measured == [(size, 2, "cpu")]
    assert (f"fixed cost per job: fresh processes on {data} and tokenizer" in out
            and f"with a {size}-shape model (1,234 parameters), 1 thread, cpu: medians of 2 rounds "
                "after 1 discarded round" in out)
    assert "demo testbed" not in out


def _plan_job(rule, outputs=(), **wildcards):
    return study.PlannedJob(rule, list(outputs), {k: str(v) for k, v in wildcards.items()})


def test_projection_is_jobs_times_fixed_cost_plus_compute_at_the_measured_rates():
    config = {"tasks": {"xnli": {}, "pawsx": {}}, "schedule": "ladder", "analysis": {"max_examples": 100},
              "finetune": {"batch_size": 32, "epochs": 1, "eval_every": 1000},
              "retrain": {"batch_size": 10, "steps": 100, "eval_every": 50}}
    jobs = [
        _plan_job("download_data", ["resources/data/xnli/en/train.parquet"], task="xnli", lang="en", split="train"),
        _plan_job("finetune", ["results/xnli/seed~1/dense/model"], task="xnli", seed=1),
        _plan_job("prune", ["m1"], task="xnli", seed=1, method="l2", sparsity="0.10"),
        _plan_job("prune", ["m2"], task="pawsx", seed=1, method="l2", sparsity="0.10"),
        _plan_job("prune_sweep", ["m3"], task="xnli", seed=1, method="l2", weight="0.1", sparsity="0.30"),
        _plan_job("evaluate_xnli", ["results/xnli/seed~1/dense/eval/test/de.json",
                                    "results/xnli/seed~1/dense/eval/validation/fr.json"], seed=1, variant="dense"),
        _plan_job("representation_alignment_xnli", ["a/de.csv", "a/fr.csv"], seed=1, variant="dense", split="test"),
    ]
    # fixed: seconds outside data, plus seconds per row read (only evaluate's here)
    fixed = {"finetune": study.FixedCost(10.0), "prune": study.FixedCost(5.0),
             "evaluate": study.FixedCost(2.0, per_row_s=1e-4)}
    costs = {c.stage: c for c in study.project(jobs, config, fixed, study.Rates(train=100.0, evaluate=1000.0))}
    assert list(costs) == ["download_data", "finetune", "prune", "prune_sweep", "evaluate", "representation_alignment"]
    assert costs["download_data"].jobs == 1 and costs["download_data"].fixed_s is None
    # finetune: ceil(392,702 / 32) = 12,272 steps of 32 examples; 13 dev passes of 2,490 rows
    assert costs["finetune"].compute_s == pytest.approx(12_272 * 32 / 100 + 13 * 2_490 / 1000)
    # prune: 100 steps of 10; dev before retraining, at step 50 and 100: 3 passes (xnli 2,490, pawsx 2,000)
    assert costs["prune"].jobs == 2
    assert costs["prune"].compute_s == pytest.approx(2 * 1000 / 100 + 3 * (2_490 + 2_000) / 1000)
    assert costs["prune"].total_s == pytest.approx(2 * 5.0 + costs["prune"].compute_s)
    # a sweep run costs what an xnli prune job costs
    assert costs["prune_sweep"].total_s == pytest.approx(5.0 + 1000 / 100 + 3 * 2_490 / 1000)
    # evaluation: one job, its two files: 5,010 test + 2,490 validation rows, read and evaluated
    assert costs["evaluate"].fixed_s == pytest.approx(2.0 + 7_500 * 1e-4)
    assert costs["evaluate"].total_s == pytest.approx(2.0 + 7_500 * 1e-4 + 7_500 / 1000)
    assert costs["evaluate"].fixed_share == pytest.approx(2.75 / 10.25)
    # representations: two languages and the English reference, 100 examples each of the
    # 5,010 test rows each file holds
    assert costs["representation_alignment"].total_s == pytest.approx(2.0 + 3 * 5_010 * 1e-4 + 300 / 1000)
    table = study.format_projection(list(costs.values()))
    fixed_total = 10.0 + 3 * 5.0 + 2.75 + 2.0 + 3 * 5_010 * 1e-4
    total = sum(c.total_s for c in costs.values())
    assert f"**{100 * fixed_total / total:.1f}%** (<= 10%: met)" in table
    assert "| download_data | 1 | not modelled |" in table


def test_projection_counts_the_jobs_snakemake_plans():
    target = "results/xnli/seed~2/method~magnitude_global/sparsity~0.30/eval/test/de.json"
    jobs, stats = study.planned_jobs(ROOT, targets=(target,))
    _, total = study.plan_seconds(ROOT, repeats=1, targets=(target,))
    assert len(jobs) == total == sum(stats.values())
    assert {rule: sum(job.rule == rule for job in jobs) for rule in stats} == stats
    config = load_config("config.yaml")
    costs = study.project(jobs, config, dict.fromkeys(["finetune", "prune", "evaluate"], study.FixedCost(1.0)),
                                study.Rates(train=1.0, evaluate=1.0))
    stage_jobs = {cost.stage: cost.jobs for cost in costs}
    assert stage_jobs["prune"] == stats["prune"] == 3  # targets 0.10, 0.20, 0.30
    assert stage_jobs["evaluate"] == sum(n for rule, n in stats.items() if rule.startswith("evaluate"))
    # every evaluation job's examples come from the files it writes: the target's among them
    evaluate = next(job for job in jobs if job.rule.startswith("evaluate"))
    assert target in evaluate.outputs
    assert study.job_examples("evaluate", evaluate, config)[1] == sum(
        study.EVAL_ROWS[("xnli", path.split("/")[-2])] for path in evaluate.outputs)


def test_plan_parser_counts_checkpoints_as_jobs():
    """The sweep's choice is a (local) checkpoint: its jobs count like any rule's."""
    text = "\n".join([
        "rule prune_sweep:", "    output: results/sweep/xnli/seed~1/method~m/weight~0.1/sparsity~0.30/model",
        "    wildcards: task=xnli, seed=1, method=m, weight=0.1, sparsity=0.30",
        "localcheckpoint sweep_choice:", "    output: results/sweep/xnli/runs.csv, results/sweep/xnli/chosen_weights.yaml",
        "    wildcards: task=xnli",
        "Job stats:", "job           count", "------------  -----", "prune_sweep       1", "sweep_choice      1", "total             2",
    ])
    jobs, stats = study.parse_plan(text)
    assert [job.rule for job in jobs] == ["prune_sweep", "sweep_choice"] and stats == {"prune_sweep": 1, "sweep_choice": 1}
    assert jobs[1].outputs == ["results/sweep/xnli/runs.csv", "results/sweep/xnli/chosen_weights.yaml"]
    assert jobs[0].wildcards["weight"] == "0.1"


def _benchmarks_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Benchmarks")
    return readme[start:readme.index("\n## ", start + 1)]


def test_the_readme_study_steps_are_those_of_config_yaml():
    steps = study.study_steps(load_config("config.yaml"))
    section = _benchmarks_section()

    def cell(row):
        return int(re.search(rf"^\| {re.escape(row)}[^|]*\| ([\d,]+) \|$", section, re.MULTILINE)[1].replace(",", ""))

    assert cell("retraining, ladder") == steps.ladder
    assert cell("retraining, independent runs with the same budget") == steps.independent_same_budget
    assert cell("retraining, `schedule: independent` as configured") == steps.independent
    assert cell("dense fine-tuning") == steps.fine_tuning


def test_the_readme_projection_table_jobs_add_up_to_its_totals():
    section = _benchmarks_section()
    table = section[section.index("| stage | jobs before | jobs after |"):]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    body, total = rows[:-1], rows[-1]
    assert total[0] == "**all**"

    def number(text):
        return int(text.replace(",", "")) if re.fullmatch(r"[\d,]+", text) else 0

    for column in (1, 2):  # jobs before, jobs after
        assert sum(number(row[column]) for row in body) == number(total[column])
