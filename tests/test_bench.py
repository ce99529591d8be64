"""The benchmark harness runs at a tiny size (it is not a timed test: no figure is checked)."""

import torch

from alignprune import bench, bench_study, bench_trainer
from workflow_helpers import ROOT, load_config


def test_retraining_step_comparison_runs_every_variant_against_the_masked_baseline(capsys):
    timings = bench.main(["--size", "tiny", "--device", "cpu", "--batch-size", "2", "--length", "8",
                          "--warmup", "1", "--repeats", "2", "--only", "step"])
    variants = [t.variant for t in timings]
    assert variants == ["masked (baseline)", "no masks", "torch.nn.utils.prune hooks",
                        "masked + l2", "masked + cosine", "masked + frobenius"]
    assert timings[0].ratio == 1.0
    assert all(t.median_ms > 0 and t.ratio > 0 for t in timings)
    table = capsys.readouterr().out
    assert "| retraining step | masked + cosine |" in table


def test_benchmark_steps_keep_pruned_weights_at_zero():
    """The timed step is the training loop's own step: masks hold through it."""
    import torch

    from alignprune.modeling import prunable_names
    from alignprune.pruning import apply_masks, compute_masks
    from alignprune.regularizers import alignment_penalty
    from alignprune.train import TrainSettings, _linear_schedule, _optimizer, training_step

    model = bench.xlmr_classifier("tiny")
    params = dict(model.named_parameters())
    names = prunable_names(model, [bench.PRUNABLE])
    assert len(names) == 12  # 6 Linear weights x 2 layers
    masks = compute_masks({n: params[n].detach() for n in names}, criterion="magnitude", scope="global", sparsity=0.5)
    reference = [params[n].detach().clone() for n in names]
    apply_masks(params, masks)  # as train() does before its first step
    settings = TrainSettings(learning_rate=1e-3, batch_size=2, max_steps=10, eval_every=10, weight_decay=0.1)
    optimizer, batch = _optimizer(model, settings), (torch.randint(5, 1000, (2, 8)), torch.ones(2, 8, dtype=torch.long), torch.tensor([0, 2]))
    scheduler = _linear_schedule(optimizer, settings)
    for _ in range(3):
        loss, penalty, _ = training_step(
            model, params, batch, optimizer, scheduler, settings, device=torch.device("cpu"), masks=masks,
            penalty=lambda: alignment_penalty("cosine", [params[n] for n in names], reference, [masks[n] for n in names]),
            penalty_weight=1.0,
        )
    assert penalty.item() > 0 and torch.isfinite(loss)
    assert all(torch.all(params[n][~masks[n]] == 0.0) for n in names)


def test_mask_comparison_agrees_with_torch_prune_and_measures_memory():
    timings = bench.main(["--only", "masks", "--mask-size", "tiny", "--repeats", "3"])
    assert [(t.comparison.split(" mask")[0], t.variant) for t in timings] == [
        ("global magnitude", "ours"), ("global magnitude", "torch.nn.utils.prune.global_unstructured"),
        ("global lamp", "ours"), ("global lamp", "torch.nn.utils.prune.global_unstructured"),
    ]
    # random weights have no ties: the same mask as torch's
    assert [t.note for t in timings if t.variant != "ours"] == ["0 weights differ from ours"] * 2
    # both build at least a score per weight: more than the 98,304 x 4 bytes of the weights
    assert all(t.peak_mb > 98_304 * 4 / 2**20 for t in timings)


def test_encoder_linear_shapes_of_xlmr_base_hold_84_9_million_weights():
    shapes = bench.SIZES["base"]
    hidden, inter, layers = shapes["hidden_size"], shapes["intermediate_size"], shapes["num_hidden_layers"]
    assert layers * (4 * hidden * hidden + 2 * hidden * inter) == 84_934_656
    tiny = bench.encoder_linear_weights("tiny")
    assert len(tiny) == 12 and sum(w.numel() for w in tiny.values()) == 98_304


def test_trainer_comparisons_run_every_variant_against_ours(capsys):
    timings = bench.main(["--size", "tiny", "--device", "cpu", "--batch-size", "4", "--length", "32", "--warmup", "1",
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
    assert "| training, one epoch of 4 batches | ours, group_by_length |" in capsys.readouterr().out


def test_trainer_runs_as_configured_dynamic_and_grouped_or_padded_to_max_length():
    """What the Trainer variants compute on: the inputs their model sees in one epoch."""
    data = bench_trainer.synthetic_split(4 * 8, vocab=1000, seed=1, max_length=64)
    settings = bench_trainer.TrainSettings(learning_rate=1e-5, batch_size=4, max_steps=8, eval_every=10**9)
    widths = {}
    for style in ("best", "run_xnli"):
        model = bench.xlmr_classifier("tiny")
        seen = widths[style] = []
        model.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                        with_kwargs=True)
        bench_trainer._trainer(model, torch.device("cpu"), data, style=style, settings=settings, max_length=64).train()
    assert widths["run_xnli"] == [64] * 8
    # grouped and dynamically padded: 8 batches no wider than needed, far less than padding to 64
    assert len(widths["best"]) == 8 and sum(widths["best"]) < 0.8 * 64 * 8
    lengths = [len(ids) for ids in data.input_ids]
    assert max(widths["best"]) == max(lengths)


def test_study_steps_of_the_full_config_ladder_is_a_fifth_of_independent_runs_with_the_same_budget():
    config = load_config("config.yaml")
    steps = bench_study.study_steps(config)
    # 10 methods x 3 seeds x 2 tasks x 9 targets x 3000 steps
    assert steps.ladder == steps.independent == 10 * 3 * 2 * 9 * 3000
    assert steps.independent_same_budget == 10 * 3 * 2 * 3000 * 45
    assert steps.ratio == 0.2
    # 5 epochs of 392,702 XNLI and 49,401 PAWS-X rows in batches of 32, 3 seeds
    assert steps.fine_tuning == 3 * (61_360 + 7_719)


def test_plan_time_counts_the_jobs_snakemake_plans():
    target = "results/xnli/seed~2/method~magnitude_global/sparsity~0.30/eval/test/de.json"
    seconds, jobs = bench_study.plan_seconds(ROOT, repeats=1, targets=(target,))
    # download model + en train/dev + de test, finetune, prune 0.10 0.20 0.30, evaluate
    assert seconds > 0 and jobs == 9
