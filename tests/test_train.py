"""The training loop: pruned weights stay exactly zero; English-dev model selection."""

import pytest
import torch

from alignprune.data import EncodedSplit
from alignprune.modeling import measure_sparsity, prunable_names
from alignprune.pruning import apply_masks, compute_masks
from alignprune.train import TrainSettings, random_streams, train
from conftest import tiny_classifier


def toy_split(n, seed, vocab=60):
    """Label = whether token 5 occurs: learnable by a tiny model in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    ids, labels = [], []
    for _ in range(n):
        length = int(torch.randint(4, 12, (1,), generator=g))
        body = torch.randint(6, vocab, (length,), generator=g).tolist()
        label = int(torch.rand(1, generator=g) < 0.5)
        if label:
            body[int(torch.randint(0, length, (1,), generator=g))] = 5
        ids.append([0] + body + [2])
        labels.append(label)
    return EncodedSplit(ids, labels)


def test_masked_weights_stay_exactly_zero_through_adamw_with_weight_decay(prunable):
    model = tiny_classifier(num_labels=2)
    names = prunable_names(model, prunable["include"], prunable["exclude"])
    params = dict(model.named_parameters())
    masks = compute_masks(
        {n: params[n].detach() for n in names}, criterion="magnitude", scope="global", sparsity=0.6
    )
    apply_masks(params, masks)
    settings = TrainSettings(
        learning_rate=1e-2, batch_size=8, max_steps=50, eval_every=25, weight_decay=0.1, seed=0
    )
    train(model, toy_split(200, 0), toy_split(40, 1), settings, pad_id=1,
          device=torch.device("cpu"), masks=masks, progress=False)
    for name in names:
        weight = dict(model.named_parameters())[name]
        assert torch.all(weight[~masks[name]] == 0.0), name
        assert torch.any(weight[masks[name]] != 0.0), name
    assert measure_sparsity(model, names)["zeros_prunable"] == sum(int((~m).sum()) for m in masks.values())


def test_unmasked_weights_do_change_and_the_toy_task_is_learned():
    model = tiny_classifier(num_labels=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # the toy task has a plateau at 0.56 that some seeds leave only after ~100-150 steps
    settings = TrainSettings(learning_rate=3e-3, batch_size=16, max_steps=250, eval_every=50, seed=0)
    result = train(model, toy_split(400, 0), toy_split(100, 1), settings, pad_id=1,
                   device=torch.device("cpu"), progress=False)
    assert result["best_dev_accuracy"] >= 0.8
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)


def test_model_selection_keeps_the_best_english_dev_checkpoint():
    """The dev set's labels are the opposite of the training rule: the better the model learns,
    the lower its dev accuracy, so the best evaluation is an early one and the final weights must
    be replaced by that checkpoint (the reload path)."""
    from alignprune.evaluate import accuracy

    model = tiny_classifier(num_labels=2)
    settings = TrainSettings(learning_rate=3e-3, batch_size=16, max_steps=120, eval_every=40, seed=0)
    flipped = toy_split(100, 1)
    flipped = EncodedSplit(flipped.input_ids, [1 - label for label in flipped.labels])
    result = train(model, toy_split(400, 0), flipped, settings, pad_id=1,
                   device=torch.device("cpu"), progress=False)
    dev = [entry["dev_accuracy"] for entry in result["history"]]
    assert max(dev) - min(dev) > 0.3  # the evaluations really differ (0.44, then 0.0 once learned)
    best = max(result["history"], key=lambda h: h["dev_accuracy"])
    assert result["best_step"] == best["step"] < settings.max_steps
    assert result["best_dev_accuracy"] == best["dev_accuracy"] > dev[-1] + 0.3
    final = accuracy(model, flipped, batch_size=32, pad_id=1, device=torch.device("cpu"))
    assert final["accuracy"] == best["dev_accuracy"]  # the weights of the best step, not the last


def test_measure_last_sees_the_last_steps_weights_before_model_selection_goes_back():
    """The flipped dev set makes model selection keep an early step; measure_last must read the
    weights after every step of the budget: those of a run that evaluates only at its end (same
    seed: same data order and dropout; evaluations draw no random numbers)."""
    seen = {}

    def run(eval_every):
        model = tiny_classifier(num_labels=2)
        settings = TrainSettings(learning_rate=3e-3, batch_size=16, max_steps=120, eval_every=eval_every, seed=0)
        flipped = toy_split(100, 1)
        flipped = EncodedSplit(flipped.input_ids, [1 - label for label in flipped.labels])

        def measure():
            seen[eval_every] = {n: p.detach().clone() for n, p in model.named_parameters()}
            return {"calls": len(seen)}

        result = train(model, toy_split(400, 0), flipped, settings, pad_id=1, device=torch.device("cpu"),
                       progress=False, measure_last=measure)
        return model, result

    selected, result = run(40)
    assert result["best_step"] < 120 and result["last_step"] == {"step": 120, "calls": 1}
    last, whole = run(120)
    assert whole["best_step"] == 120
    final = dict(last.named_parameters())
    assert all(torch.equal(seen[40][n], final[n]) for n in final)  # the last step's weights
    assert not all(torch.equal(seen[40][n], p) for n, p in selected.named_parameters())  # not the kept ones
    assert "last_step" not in train(tiny_classifier(num_labels=2), toy_split(40, 0), toy_split(20, 1),
                                    TrainSettings(learning_rate=1e-3, batch_size=8, max_steps=5, eval_every=5),
                                    pad_id=1, device=torch.device("cpu"), progress=False)


def test_model_selection_ignores_evaluations_before_select_from():
    """Gradual pruning selects among checkpoints at the final sparsity only (select_from): with
    the flipped dev set an early evaluation scores best, and must not be kept."""
    model = tiny_classifier(num_labels=2)
    settings = TrainSettings(learning_rate=3e-3, batch_size=16, max_steps=120, eval_every=20, seed=0,
                             select_from=80)
    flipped = toy_split(100, 1)
    flipped = EncodedSplit(flipped.input_ids, [1 - label for label in flipped.labels])
    result = train(model, toy_split(400, 0), flipped, settings, pad_id=1, device=torch.device("cpu"), progress=False)
    history = result["history"]
    candidates = [entry for entry in history if entry["step"] >= 80]
    assert result["best_step"] == max(candidates, key=lambda h: h["dev_accuracy"])["step"] >= 80
    assert max(entry["dev_accuracy"] for entry in history) > result["best_dev_accuracy"]  # an earlier one was better


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    from alignprune.train import build_optimizer, linear_schedule

    model = tiny_classifier(num_labels=2)
    settings = TrainSettings(learning_rate=1.0, batch_size=8, max_steps=10, eval_every=10, warmup_ratio=0.2)
    optimizer = build_optimizer(model, settings)
    scheduler = linear_schedule(optimizer, settings)
    rates = []
    for _ in range(settings.max_steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    # 2 warm-up steps (1/2, 2/2), then (10 - step) / 8
    assert rates == pytest.approx([0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])


def test_same_seed_same_weights():
    runs = []
    for draws in (0, 7):
        model = tiny_classifier(num_labels=2)
        torch.rand(draws)  # the global stream moved on: train must seed its own dropout and order
        settings = TrainSettings(learning_rate=1e-3, batch_size=8, max_steps=20, eval_every=20, seed=7)
        train(model, toy_split(100, 0), toy_split(20, 1), settings, pad_id=1,
              device=torch.device("cpu"), progress=False)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_dropout_and_data_order_draw_different_numbers_from_one_seed():
    # one integer seeding both would give the same numbers here: the data order's first
    # permutation drawn from the numbers of the first batch's dropout masks
    data_order = random_streams(7)
    dropout_draws = torch.rand(1000)
    data_order_draws = torch.rand(1000, generator=data_order)
    assert not torch.equal(dropout_draws, data_order_draws)
    assert torch.equal(dropout_draws, torch.rand(1000, generator=torch.Generator().manual_seed(7)))  # the run's seed
    assert torch.equal(data_order_draws, torch.rand(1000, generator=random_streams(7)))  # the same every run


def test_movement_scores_favour_weights_moving_away_from_zero():
    """Toy problem: the loss pushes w[0] and w[2] away from zero and w[1] and w[3] towards it."""
    from alignprune.train import accumulate_movement

    w = torch.nn.Parameter(torch.tensor([0.5, 0.5, -0.5, -0.5]))
    target = torch.tensor([2.0, 0.0, -2.0, 0.0])
    optimizer = torch.optim.SGD([w], lr=0.05)
    scores = {"w": torch.zeros(4)}
    for _ in range(20):
        optimizer.zero_grad()
        ((w - target) ** 2).sum().backward()
        accumulate_movement(scores, {"w": w})
        optimizer.step()
    away, towards = scores["w"][[0, 2]], scores["w"][[1, 3]]
    assert away.min() > 0 > towards.max()
    # magnitude alone could not tell them apart at the start: all four were 0.5 in size


def test_weights_pruned_during_training_stay_exactly_zero_after_their_adam_moments_built_up(prunable):
    """Gradual pruning: a weight pruned at step 10 had nonzero Adam moments; they are cleared so
    the later steps (no re-masking after the step) cannot move it off 0.0."""
    model = tiny_classifier(num_labels=2)
    names = prunable_names(model, prunable["include"], prunable["exclude"])
    params = dict(model.named_parameters())
    masks = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}

    def prune_half_at_step_10(step, current):
        if step != 10:
            return None
        for name, mask in compute_masks({n: params[n].detach() for n in names}, criterion="magnitude",
                                        scope="global", sparsity=0.5).items():
            current[name].copy_(mask)
        return {"pruned": True}

    settings = TrainSettings(learning_rate=1e-2, batch_size=8, max_steps=30, eval_every=30, weight_decay=0.1, seed=0)
    train(model, toy_split(200, 0), toy_split(40, 1), settings, pad_id=1, device=torch.device("cpu"),
          masks=masks, on_step=prune_half_at_step_10, progress=False)
    for name in names:
        assert torch.all(params[name][~masks[name]] == 0.0), name
    assert abs(sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values()) - 0.5) < 1e-3


def test_movement_scores_handed_on_are_those_of_the_checkpoint_kept(prunable):
    """Model selection goes back to an early evaluation (flipped dev labels, as above): the
    movement scores left after training are the ones accumulated up to that step, not all steps."""
    model = tiny_classifier(num_labels=2)
    names = prunable_names(model, prunable["include"], prunable["exclude"])
    params = dict(model.named_parameters())
    movement = {n: torch.zeros_like(params[n]) for n in names}
    snapshots = {}

    def snapshot(step, masks):
        snapshots[step] = {n: s.clone() for n, s in movement.items()}

    flipped = toy_split(100, 1)
    flipped = EncodedSplit(flipped.input_ids, [1 - label for label in flipped.labels])
    settings = TrainSettings(learning_rate=3e-3, batch_size=16, max_steps=120, eval_every=40, seed=0)
    result = train(model, toy_split(400, 0), flipped, settings, pad_id=1, device=torch.device("cpu"),
                   movement=movement, on_step=snapshot, progress=False)
    assert result["best_step"] < settings.max_steps
    kept = snapshots[result["best_step"]]
    for name in names:
        assert torch.equal(movement[name], kept[name]), name
        assert not torch.equal(kept[name], snapshots[settings.max_steps][name])  # they did move on


def test_batched_predictions_are_each_examples_own_forward_pass():
    """Batches are sorted by length and padded: every prediction must come back to its own row,
    and padding must not change it (each row against one forward pass of that example alone)."""
    from alignprune.evaluate import predict

    model = tiny_classifier(num_labels=3, seed=5).eval()
    data = toy_split(61, 4)

    def one_by_one():
        with torch.no_grad():
            return torch.cat([model(input_ids=torch.tensor([ids])).logits for ids in data.input_ids])

    with torch.no_grad():  # logits centred over the rows: an untrained model whose labels vary by row
        model.classifier.out_proj.bias -= one_by_one().mean(0)
    alone = one_by_one().argmax(-1).tolist()
    assert len(set(alone)) > 1  # an untrained model that still tells rows apart: a shuffle would show
    for batch_size in (1, 7, 64):
        assert predict(model, data, batch_size=batch_size, pad_id=1, device=torch.device("cpu")) == alone
