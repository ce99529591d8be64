"""The benchmark harness runs at a tiny size (it is not a timed test: no figure is checked)."""



from alignprune import bench


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
    from alignprune.pruning import compute_masks
    from alignprune.regularizers import alignment_penalty
    from alignprune.train import TrainSettings, _linear_schedule, _optimizer, training_step

    model = bench.xlmr_classifier("tiny")
    params = dict(model.named_parameters())
    names = prunable_names(model, [bench.PRUNABLE], [])
    assert len(names) == 12  # 6 Linear weights x 2 layers
    masks = compute_masks({n: params[n].detach() for n in names}, criterion="magnitude", scope="global", sparsity=0.5)
    reference = [params[n].detach().clone() for n in names]
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
