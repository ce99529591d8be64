"""Criteria scores against hand-computed values."""

import pytest
import torch

from alignprune.criteria import ScoreInputs, lamp_scores, lookahead_scores, sort_non_negative, xlmr_neighbours

P = "roberta.encoder.layer."


def test_lamp_scores_equal_hand_computed_values():
    w = torch.tensor([[1.0, -3.0], [2.0, 0.5]])
    # squares 1, 9, 4, 0.25; ascending 0.25 < 1 < 4 < 9; suffix sums 14.25, 14, 13, 9
    expected = torch.tensor([[1 / 14, 9 / 9], [4 / 13, 0.25 / 14.25]])
    assert torch.allclose(lamp_scores(ScoreInputs({"w": w}))["w"], expected)


def test_lamp_largest_weight_of_every_layer_scores_one():
    g = torch.Generator().manual_seed(0)
    weights = {n: torch.randn(5, 7, generator=g) * scale for n, scale in (("a", 1.0), ("b", 100.0))}
    scores = lamp_scores(ScoreInputs(weights))
    for name, w in weights.items():
        assert scores[name].flatten()[w.abs().argmax()] == pytest.approx(1.0)
        assert scores[name].max() == pytest.approx(1.0)


def test_fast_sort_equals_torch_stable_sort_with_ties_zeros_and_extremes():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(10_000, generator=g).pow(2)
    values[::7] = 0.0  # pruned weights
    values[1::13] = 0.25  # ties among kept weights
    values[5], values[6] = torch.finfo(torch.float32).max, torch.finfo(torch.float32).tiny / 4  # subnormal
    ordered, order = sort_non_negative(values)
    expected_values, expected_order = torch.sort(values, stable=True)
    assert torch.equal(ordered, expected_values)
    assert torch.equal(order, expected_order)  # ties by position, as the stable sort


def test_xlmr_neighbours_follow_the_block():
    parts = ["attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "intermediate.dense", "output.dense"]
    names = [f"{P}{layer}.{part}.weight" for layer in (0, 1) for part in parts]
    n = xlmr_neighbours(names)
    assert n[f"{P}0.attention.self.query.weight"] == ([], [])
    assert n[f"{P}1.attention.self.key.weight"] == ([f"{P}0.output.dense.weight"], [])
    assert n[f"{P}0.attention.self.value.weight"] == ([], [f"{P}0.attention.output.dense.weight"])
    assert n[f"{P}0.attention.output.dense.weight"] == (
        [f"{P}0.attention.self.value.weight"], [f"{P}0.intermediate.dense.weight"])
    assert n[f"{P}0.intermediate.dense.weight"] == (
        [f"{P}0.attention.output.dense.weight"], [f"{P}0.output.dense.weight"])
    assert n[f"{P}0.output.dense.weight"] == ([f"{P}0.intermediate.dense.weight"], [
        f"{P}1.attention.self.query.weight", f"{P}1.attention.self.key.weight",
        f"{P}1.attention.self.value.weight"])
    assert n[f"{P}1.output.dense.weight"] == ([f"{P}1.intermediate.dense.weight"], [])


def test_lookahead_scores_equal_hand_computed_values():
    inter = torch.tensor([[1.0, 2.0], [0.0, 3.0], [1.0, 1.0]])  # intermediate: 2 -> 3
    out = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # output: 3 -> 2
    attn_out = torch.tensor([[1.0, 1.0], [2.0, 0.0]])  # attention output: 2 -> 2
    weights = {
        f"{P}0.attention.output.dense.weight": attn_out,
        f"{P}0.intermediate.dense.weight": inter,
        f"{P}0.output.dense.weight": out,
    }
    scores = lookahead_scores(ScoreInputs(weights))
    # intermediate[j, k]: previous = attention output row k, next = output column j
    prev_rows = torch.tensor([1 + 1, 4 + 0.0])
    next_cols = torch.tensor([4 + 1, 0 + 1, 1 + 1.0])
    for j in range(3):
        for k in range(2):
            expected = inter[j, k] ** 2 * prev_rows[k] * next_cols[j]
            assert scores[f"{P}0.intermediate.dense.weight"][j, k] == pytest.approx(expected.item())
    # output has no next layer here (counts as 1); its previous is intermediate
    inter_rows = (inter**2).sum(dim=1)
    assert torch.allclose(scores[f"{P}0.output.dense.weight"], out**2 * inter_rows[None, :])
    # attention output has no previous layer here (value is absent)
    inter_cols = (inter**2).sum(dim=0)
    assert torch.allclose(scores[f"{P}0.attention.output.dense.weight"], attn_out**2 * inter_cols[:, None])


class BagOfWords(torch.nn.Module):
    """Mean of the token embeddings, then one Linear: dL/dW of the cross-entropy is known in closed form."""

    def __init__(self, vocab=12, width=5, classes=3):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, width)
        self.fc = torch.nn.Linear(width, classes)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(vocab, width, generator=g))
            self.fc.weight.copy_(torch.randn(classes, width, generator=g))
            self.fc.bias.copy_(torch.randn(classes, generator=g))

    def pooled(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).to(self.embed.weight.dtype)
        return (self.embed(input_ids) * mask).sum(1) / mask.sum(1)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.fc(self.pooled(input_ids, attention_mask))
        return type("Output", (), {"loss": torch.nn.functional.cross_entropy(logits, labels)})()


def test_gradient_saliency_equals_a_hand_computed_sum_of_abs_w_times_g_in_float32(monkeypatch):
    """Batches of the whole set: every batch has the same gradient, G = (softmax - onehot)^T X / n,
    so the saliency of W is batches x |W * G|. Under a bf16 autocast (the GPU code path, here on
    CPU) the result must still be the float32 one."""
    from alignprune import train as train_module
    from alignprune.data import EncodedSplit

    data = EncodedSplit([[1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11], [3, 3, 3], [2, 9]], [0, 1, 2, 1, 0, 2])
    model = BagOfWords()
    with torch.no_grad():
        ids, attention, labels = next(train_module.training_batches(data, 6, 0, torch.Generator()))
        x = model.pooled(ids, attention).double()
        onehot = torch.nn.functional.one_hot(labels, 3).double()
        w, b = model.fc.weight.double(), model.fc.bias.double()
        probs = torch.softmax(x @ w.T + b, dim=1)
        grad = (probs - onehot).T @ x / 6
    expected = 3 * (w * grad).abs()
    # the GPU path: train's autocast is bf16; the saliency must not use it
    monkeypatch.setattr(train_module, "autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # nor a caller's
        saliency = train_module.gradient_saliency(
            model, data, ["fc.weight"], batches=3, batch_size=6, pad_id=0, device=torch.device("cpu"), seed=1
        )["fc.weight"]
    assert saliency.dtype == torch.float32
    assert torch.allclose(saliency.double(), expected, rtol=1e-5, atol=1e-7)
    assert model.training and model.fc.weight.grad is None  # back to training mode, no stale gradient


# --- each criterion through the prune job, against masks computed by hand from the start model ---

def _hand_retrain(**values):
    """The retrain section of these jobs (steps 0: prune only), defaults filled in."""
    from workflow_helpers import config_section

    return config_section("retrain", {"learning_rate": 1e-3, "batch_size": 8, "steps": 0, "eval_every": 10, **values})


def _method(**values):
    from workflow_helpers import config_section

    return config_section("methods.*", values)


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A tiny testbed model fine-tuned for a few steps: the start of a first ladder rung."""
    from conftest import PRUNABLE, tiny_testbed

    from workflow_helpers import config_section

    from alignprune.stages.finetune import finetune

    root = tmp_path_factory.mktemp("criteria_job")
    files = {("xnli", "en", "train"): root / "train.parquet", ("xnli", "en", "validation"): root / "dev.parquet"}
    files = tiny_testbed(root / "pretrained", files, sizes={"train": 48, "validation": 16, "test": 16}, pretrain_steps=5,
                 pretrain_batch_size=8)
    finetune(
        task="xnli", seed=1, pretrained_dir=root / "pretrained", train_file=files[("xnli", "en", "train")],
        dev_file=files[("xnli", "en", "validation")], out_dir=root / "dense",
        settings=config_section("finetune", {"learning_rate": 1e-3, "batch_size": 8, "epochs": 1, "eval_every": 6}),
        max_length=32, prunable=PRUNABLE, device=torch.device("cpu"), progress=False,
    )
    return root, files


def _job_masks(start, criterion, scope, sparsity, **extra):
    """Masks of a prune job without retraining (steps 0: the saved weights are start x mask)."""
    from conftest import PRUNABLE
    from safetensors.torch import load_file

    from alignprune.stages.prune import prune_and_retrain

    root, files = start
    out = root / f"{criterion}-{scope}"
    prune_and_retrain(
        task="xnli", seed=1, method_name=criterion, method=_method(criterion=criterion, scope=scope, **extra),
        sparsity=sparsity, start_dir=root / "dense", reference_dir=root / "dense", tokenizer_dir=root / "pretrained",
        train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")], out_dir=out,
        settings=_hand_retrain(), max_length=32, prunable=PRUNABLE, device=torch.device("cpu"), progress=False,
    )
    return load_file(out / "masks.safetensors")


def _start_weights(start):
    """The start model's prunable weights (the conftest's patterns), in float64."""
    import re

    from conftest import PRUNABLE
    from safetensors.torch import load_file

    weights = load_file(start[0] / "dense" / "model.safetensors")
    names = [n for n in weights if any(re.search(p, n) for p in PRUNABLE["include"])]
    return {n: weights[n].double() for n in sorted(names)}


def _keep_highest(scores: dict, sparsity: float, scope: str) -> dict:
    """Hand selection: drop the round(s * n) lowest scores, per layer or over all layers."""
    if scope == "layer":
        return {n: _keep_highest({n: s}, sparsity, "global")[n] for n, s in scores.items()}
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = int(sparsity * flat.numel() + 0.5)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:k]] = False
    out, offset = {}, 0
    for name, s in scores.items():
        out[name] = keep[offset:offset + s.numel()].view_as(s)
        offset += s.numel()
    return out


def _assert_same_masks(job, hand):
    assert set(job) == set(hand)
    for name in hand:
        assert torch.equal(job[name], hand[name]), name


def test_magnitude_job_keeps_the_largest_weights_of_every_layer(start):
    weights = _start_weights(start)
    job = _job_masks(start, "magnitude", "layer", 0.6)
    _assert_same_masks(job, _keep_highest({n: w.abs() for n, w in weights.items()}, 0.6, "layer"))
    for name, w in weights.items():  # every kept weight is at least as large as every pruned one
        assert w.abs()[job[name]].min() >= w.abs()[~job[name]].max()


def test_gradient_job_keeps_the_largest_hand_computed_abs_w_times_g(start, monkeypatch):
    """|w * dL_b/dw| summed over the job's batches, each gradient by autograd in float64 here."""
    from alignprune import modeling
    from alignprune.tokens import read_tokens
    from alignprune.batching import training_batches
    from alignprune.stages import prune as prune_stage

    calls = []  # the job's batch seed and size (its seed derivation is the job's business)
    real = prune_stage.gradient_saliency
    monkeypatch.setattr(prune_stage, "gradient_saliency", lambda *a, **k: calls.append(k) or real(*a, **k))
    job = _job_masks(start, "gradient", "global", 0.5, gradient_batches=3)
    assert len(calls) == 1 and calls[0]["batches"] == 3

    root, files = start
    train_data, pad_id = read_tokens(files[("xnli", "en", "train")], root / "pretrained", max_length=32, num_labels=3)
    model = modeling.load_classifier(root / "dense").double().eval()
    params = dict(model.named_parameters())
    names = sorted(_start_weights(start))
    batches = training_batches(train_data, calls[0]["batch_size"], pad_id,
                               torch.Generator().manual_seed(calls[0]["seed"]))
    saliency = {n: torch.zeros_like(params[n]) for n in names}
    for _ in range(3):
        ids, attention, labels = next(batches)
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        for name, grad in zip(names, grads):
            saliency[name] += (params[name].detach() * grad).abs()
    hand = _keep_highest(saliency, 0.5, "global")
    # float32 (job) against float64 (here): weights whose scores agree to ~1e-6 may swap at the cut
    flat_job = torch.cat([job[n].flatten() for n in names])
    flat_hand = torch.cat([hand[n].flatten() for n in names])
    assert (flat_job != flat_hand).sum() <= 4
    assert flat_job.sum() == flat_hand.sum()
    # and it is not magnitude: the two criteria keep different weights
    magnitude = _keep_highest({n: params[n].detach().abs() for n in names}, 0.5, "global")
    assert (flat_job != torch.cat([magnitude[n].flatten() for n in names])).sum() > 0.05 * flat_job.numel()


def test_lamp_job_against_hand_computed_scores(start):
    """LAMP by its definition, weight by weight: w^2 over the sum of w'^2 of every weight w' of the
    layer with |w'| >= |w| (no ties in real weights), then one global cut."""
    scores = {}
    for name, w in _start_weights(start).items():
        squared = w.flatten().pow(2).numpy()
        order = squared.argsort()
        suffix = squared[order][::-1].cumsum()[::-1]
        score = torch.empty(squared.size, dtype=torch.float64)
        score[torch.from_numpy(order.copy())] = torch.from_numpy((squared[order] / suffix).copy())
        scores[name] = score.view_as(w)
    _assert_same_masks(_job_masks(start, "lamp", "global", 0.7), _keep_highest(scores, 0.7, "global"))


def test_lookahead_job_against_hand_computed_scores(start):
    """w_jk^2 x (squared norm of row k of the layer before) x (squared norm of column j of the
    layer(s) after), with the XLM-R block's neighbours written out by hand for the 2-layer model."""
    weights = _start_weights(start)
    layer = "roberta.encoder.layer.{}.{}.weight"
    before = {}  # part -> the part (and layer offset) that feeds its input
    for i in (0, 1):
        for part in ("attention.self.query", "attention.self.key", "attention.self.value"):
            before[layer.format(i, part)] = [layer.format(i - 1, "output.dense")] if i == 1 else []
        before[layer.format(i, "attention.output.dense")] = [layer.format(i, "attention.self.value")]
        before[layer.format(i, "intermediate.dense")] = [layer.format(i, "attention.output.dense")]
        before[layer.format(i, "output.dense")] = [layer.format(i, "intermediate.dense")]
    after = {n: [m for m, feeds in before.items() if n in feeds] for n in weights}
    scores = {}
    for name, w in weights.items():
        rows = sum((weights[p].pow(2).sum(1) for p in before[name]), torch.zeros(w.shape[1], dtype=torch.float64))
        cols = sum((weights[p].pow(2).sum(0) for p in after[name]), torch.zeros(w.shape[0], dtype=torch.float64))
        rows = rows if before[name] else torch.ones(w.shape[1], dtype=torch.float64)
        cols = cols if after[name] else torch.ones(w.shape[0], dtype=torch.float64)
        scores[name] = w.pow(2) * cols[:, None] * rows[None, :]
    assert set(before) == set(weights)
    _assert_same_masks(_job_masks(start, "lookahead", "layer", 0.5), _keep_highest(scores, 0.5, "layer"))


def test_the_retraining_control_is_no_criterion_and_cannot_prune():
    """Criterion none names the retraining control: no score function, refused by compute_masks."""
    from alignprune.criteria import CRITERIA, NO_PRUNING, prunes
    from alignprune.pruning import compute_masks

    assert NO_PRUNING == "none" and NO_PRUNING not in CRITERIA
    assert not prunes(NO_PRUNING) and all(prunes(name) for name in CRITERIA)
    with pytest.raises(ValueError, match="unknown criterion 'none'"):
        compute_masks({"w": torch.randn(4, 4)}, criterion=NO_PRUNING, scope="layer", sparsity=0.5)


@pytest.mark.parametrize("criterion", ["magnitude", "movement"])
def test_every_criterion_gives_the_pruned_model_the_same_optimizer_steps(start, monkeypatch, criterion):
    """Optimizer steps counted per model object: the model a first rung saves got exactly
    retrain.steps of them; movement's scoring steps go to a copy, and the pruned weights are the
    start weights x mask before retraining."""
    from conftest import PRUNABLE
    from safetensors.torch import load_file

    from alignprune import modeling
    from alignprune import train as train_module
    from alignprune.stages.prune import prune_and_retrain

    steps, saved = {}, []
    real_step, real_save = train_module.training_step, modeling.save_model

    def counting_step(model, *args, **kwargs):
        steps[id(model)] = steps.get(id(model), 0) + 1
        return real_step(model, *args, **kwargs)

    def recording_save(model, *args, **kwargs):
        saved.append(id(model))
        return real_save(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "training_step", counting_step)
    monkeypatch.setattr(modeling, "save_model", recording_save)
    root, files = start
    method = _method(criterion=criterion, scope="layer", score_steps=3)
    for retrain_steps in (0, 4):
        steps.clear(), saved.clear()
        out = root / f"budget-{criterion}-{retrain_steps}"
        prune_and_retrain(
            task="xnli", seed=1, method_name=criterion, method=method, sparsity=0.5, start_dir=root / "dense",
            reference_dir=root / "dense", tokenizer_dir=root / "pretrained",
            train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")], out_dir=out,
            settings=_hand_retrain(steps=retrain_steps, eval_every=2), max_length=32, prunable=PRUNABLE,
            device=torch.device("cpu"), progress=False,
        )
        assert len(saved) == 1 and steps.get(saved[0], 0) == retrain_steps
        assert sum(steps.values()) == retrain_steps + (3 if criterion == "movement" else 0)
        if retrain_steps == 0:
            masks, weights = load_file(out / "masks.safetensors"), load_file(out / "model.safetensors")
            for name, w in _start_weights(start).items():
                assert torch.equal(weights[name].double(), w * masks[name]), name
