"""Regularizers: zero when aligned, positive otherwise, invariances, gradients vs finite differences,
the analytic gradient against autograd, the same pull per parameter on every model shape, and a
training step and evaluation under bf16 autocast."""

import contextlib

import pytest
import torch

from alignprune.regularizers import EPS, REGULARIZERS, AlignmentPenalty, alignment_penalty, penalty_floor

SHAPES = [(6, 4), (6, 4), (3, 6), (4, 3)]
# every regularizer (a new one is tested as these are, with its own definition in reference_penalty below)
KINDS = [kind for kind in REGULARIZERS if kind != "none"]


def make(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    refs = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    masks = [torch.rand(s, generator=g) > 0.4 for s in SHAPES]
    return refs, masks


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("units", ["rows", "columns"])
def test_zero_when_aligned_and_nothing_masked(kind, units):
    refs, _ = make()
    weights = [r.clone() for r in refs]
    assert alignment_penalty(kind, weights, refs, None, units).item() == pytest.approx(0.0, abs=1e-12)
    full = [torch.ones_like(r, dtype=torch.bool) for r in refs]
    assert alignment_penalty(kind, weights, refs, full, units).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["cosine", "frobenius"])
def test_positive_when_pruned_or_moved(kind):
    refs, masks = make()
    assert alignment_penalty(kind, [r.clone() for r in refs], refs, masks).item() > 0
    moved = [r + 0.1 * torch.randn_like(r) for r in refs]
    assert alignment_penalty(kind, moved, refs, None).item() > 0
    assert alignment_penalty("l2", moved, refs).item() > 0


def test_values_equal_the_definitions_layer_by_layer():
    refs, masks = make()
    weights = [r + 0.3 * torch.randn_like(r) for r in refs]
    pruned = [w * m for w, m in zip(weights, masks)]
    # per weight: its unit's cosine distance, its layer's relative squared error, its squared drift
    cosine = sum(
        r.shape[1] * (1 - torch.nn.functional.cosine_similarity(p, r, dim=1)).sum() for p, r in zip(pruned, refs)
    )
    frob = sum(r.numel() * ((p - r) ** 2).sum() / (r**2).sum() for p, r in zip(pruned, refs))
    l2 = sum(((w - r) ** 2).sum() for w, r in zip(weights, refs))
    assert alignment_penalty("cosine", weights, refs, masks).item() == pytest.approx(cosine.item())
    assert alignment_penalty("frobenius", weights, refs, masks).item() == pytest.approx(frob.item())
    assert alignment_penalty("l2", weights, refs, masks).item() == pytest.approx(l2.item())
    cols = sum(
        r.shape[0] * (1 - torch.nn.functional.cosine_similarity(p, r, dim=0)).sum() for p, r in zip(pruned, refs)
    )
    assert alignment_penalty("cosine", weights, refs, masks, units="columns").item() == pytest.approx(cols.item())


def test_cosine_is_invariant_to_positive_scaling_of_a_row():
    refs, masks = make()
    weights = [r + 0.3 * torch.randn_like(r) for r in refs]
    scaled = [w.clone() for w in weights]
    scaled[0][2] *= 7.5
    scaled[2][1] *= 0.01
    a = alignment_penalty("cosine", weights, refs, masks)
    b = alignment_penalty("cosine", scaled, refs, masks)
    assert a.item() == pytest.approx(b.item(), rel=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("units", ["rows", "columns"])
def test_gradients_match_finite_differences(kind, units):
    refs, masks = make()
    weights = [(r + 0.3 * torch.randn_like(r)).requires_grad_() for r in refs]

    def penalty(*ws):
        return alignment_penalty(kind, list(ws), refs, masks, units)

    assert torch.autograd.gradcheck(penalty, tuple(weights), eps=1e-6, atol=1e-6)


def test_unknown_regularizer_is_named():
    refs, _ = make()
    with pytest.raises(ValueError, match="unknown regularizer 'cosin'"):
        alignment_penalty("cosin", refs, refs)


@pytest.mark.parametrize("kind", KINDS)
def test_penalty_object_reads_the_current_weights_at_every_call(kind):
    """References and masks are stacked once; the weights are read afresh at each call."""
    from alignprune.regularizers import AlignmentPenalty

    refs, masks = make()
    weights = [r + 0.3 * torch.randn_like(r) for r in refs]
    penalty = AlignmentPenalty(kind, weights, refs, masks)
    before = penalty().item()
    assert before == pytest.approx(alignment_penalty(kind, weights, refs, masks).item())
    with torch.no_grad():
        for w, r in zip(weights, refs):
            w.copy_(r)  # aligned again
    expected = alignment_penalty(kind, weights, refs, masks).item()
    assert penalty().item() == pytest.approx(expected) and expected < before


@pytest.mark.parametrize("kind", ["cosine", "frobenius"])
def test_without_masks_equals_with_masks_when_pruned_weights_are_zero(kind):
    """What retraining relies on: W is already zero where masked, so M*W = W."""
    refs, masks = make()
    weights = [(r + 0.3 * torch.randn_like(r)) * m for r, m in zip(refs, masks)]
    assert alignment_penalty(kind, weights, refs, None).item() == pytest.approx(
        alignment_penalty(kind, weights, refs, masks).item(), rel=1e-12
    )


def test_floors_by_hand():
    """Frobenius: N x ||(1-M)*W0||^2 / ||W0||^2 per layer (the share of W0 pruned away); l2: the
    squares pruned away; cosine: in x sum over rows of 1 - |kept part of W0's row| / |W0's row|
    (the best cosine a row can reach with its pruned weights at 0)."""
    refs, masks = make()
    expected = sum(r.numel() * (r * ~m).pow(2).sum() / r.pow(2).sum() for r, m in zip(refs, masks))
    assert penalty_floor("frobenius", refs, masks).item() == pytest.approx(expected.item(), rel=1e-12)
    cosine = sum(r.shape[1] * (1 - (r * m).norm(dim=1) / r.norm(dim=1)).sum() for r, m in zip(refs, masks))
    assert penalty_floor("cosine", refs, masks).item() == pytest.approx(cosine.item(), rel=1e-12)
    assert penalty_floor("l2", refs, masks).item() == pytest.approx(sum((r * ~m).pow(2).sum() for r, m in
                                                                        zip(refs, masks)).item(), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("units", ["rows", "columns"])
def test_floor_is_the_least_value_the_masks_leave(kind, units):
    """The floor is the penalty at W = M*W0; no weights the masks allow go below it, the penalty's
    gradient on the kept weights is zero there, and it is 0 when nothing is pruned."""
    refs, masks = make()
    floor = penalty_floor(kind, refs, masks, units).item()
    at_floor = [r * m for r, m in zip(refs, masks)]
    assert floor > 0
    assert alignment_penalty(kind, at_floor, refs, masks, units).item() == pytest.approx(floor, rel=1e-12)
    g = torch.Generator().manual_seed(1)
    for scale in (1e-3, 0.1, 1.0):  # near the floor and far from it: never below
        moved = [(r + scale * torch.randn(r.shape, generator=g, dtype=r.dtype)) * m
                 for r, m in zip(refs, masks)]
        assert alignment_penalty(kind, moved, refs, masks, units).item() > floor
    weights = [w.clone() for w in at_floor]
    AlignmentPenalty(kind, weights, refs, masks, units).accumulate_grad(1.0)
    assert all(torch.allclose(w.grad * m, torch.zeros_like(w), atol=1e-12) for w, m in zip(weights, masks))
    full = [torch.ones_like(r, dtype=torch.bool) for r in refs]
    assert penalty_floor(kind, refs, full, units).item() == pytest.approx(0.0, abs=1e-12)
    assert AlignmentPenalty(kind, weights, refs, None, units).floor(masks).item() == floor


# --- the analytic gradient that training uses, against autograd of the definitions ----------------


def reference_penalty(kind, weights, refs, masks, units):
    """The definitions written out layer by layer, for autograd (independent of the module)."""
    dim = 1 if units == "rows" else 0
    total = 0.0
    for i, (w, r) in enumerate(zip(weights, refs)):
        if kind == "l2":
            total = total + ((w - r) ** 2).sum()
            continue
        v = w * masks[i] if masks is not None else w
        if kind == "frobenius":
            total = total + w.numel() * ((v - r) ** 2).sum() / (r**2).sum()
        elif kind == "cosine":
            norms = v.norm(dim=dim).clamp_min(EPS) * r.norm(dim=dim).clamp_min(EPS)
            total = total + w.shape[dim] * (1 - (v * r).sum(dim) / norms).sum()
        else:
            raise KeyError(f"no definition of the {kind} regularizer here: write it out above")
    return total


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("units", ["rows", "columns"])
@pytest.mark.parametrize("masked", [False, True])
def test_analytic_value_and_gradient_equal_autograd_in_float64(kind, units, masked):
    refs, masks = make(seed=3)
    masks[0][1] = False  # a fully pruned row
    masks[2][:, 2] = False  # and column
    masks = masks if masked else None
    g = torch.Generator().manual_seed(4)
    weights = [(r + 0.3 * torch.randn(r.shape, generator=g, dtype=r.dtype)).requires_grad_() for r in refs]
    with torch.no_grad():
        weights[1][2] = 0.0  # a zero row
        weights[3][:, 1] = 0.0  # and a zero column (the prune job passes no masks: pruned weights are 0.0)
    expected = reference_penalty(kind, weights, refs, [m.double() for m in masks] if masked else None, units)
    expected_grads = torch.autograd.grad(expected, weights)
    # accumulate_grad adds to what the task loss's backward pass left in .grad
    before = [torch.randn(w.shape, generator=g, dtype=w.dtype) for w in weights]
    for w, b in zip(weights, before):
        w.grad = b.clone()
    penalty = AlignmentPenalty(kind, weights, refs, masks, units)
    value = penalty.accumulate_grad(0.7)
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    assert penalty().item() == pytest.approx(expected.item(), rel=1e-12)
    for w, b, e in zip(weights, before, expected_grads):
        torch.testing.assert_close(w.grad, b + 0.7 * e, rtol=1e-10, atol=1e-12)
    if kind == "cosine":  # the zero and the fully pruned units are there, with their large gradients
        assert expected_grads[1][2].abs().max() > 1e6 if units == "rows" else expected_grads[3][:, 1].abs().max() > 1e6
    if masked and kind != "l2":  # pruned weights get no gradient through M*W
        assert all(torch.all(w.grad[~m] == b[~m]) for w, b, m in zip(weights, before, masks))


def test_analytic_gradient_creates_missing_grads_and_the_value_does_not_touch_them():
    refs, masks = make()
    weights = [(r + 0.3 * torch.randn_like(r)).requires_grad_() for r in refs]
    penalty = AlignmentPenalty("frobenius", weights, refs, masks)
    penalty()
    assert all(w.grad is None for w in weights)
    value = penalty.accumulate_grad(2.0)
    expected = torch.autograd.grad(reference_penalty("frobenius", weights, refs, [m.double() for m in masks], "rows"),
                                   weights)
    assert not value.requires_grad
    for w, e in zip(weights, expected):
        torch.testing.assert_close(w.grad, 2.0 * e)


def test_frobenius_refuses_an_all_zero_reference_layer():
    refs, _ = make()
    refs[1] = torch.zeros_like(refs[1])
    with pytest.raises(ValueError, match="reference layer is all zeros"):
        AlignmentPenalty("frobenius", [r + 1 for r in refs], refs)


# --- a regularizer weight is the same pull per parameter on every model shape ----------------------


def encoder_weights(hidden, intermediate, layers, drift, seed=0):
    """Reference and drifted weights W = W0 (1 + drift * noise) of an XLM-R encoder's six Linear
    weights per block. One block is drawn and repeated ``layers`` times (the same tensors): the
    gradient of a layer depends only on that layer and on how the penalty combines layers, which
    repetition keeps; it spares building 85M distinct weights for the base shape."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(hidden, hidden)] * 4 + [(intermediate, hidden), (hidden, intermediate)]
    refs = [0.02 * torch.randn(s, generator=g) for s in shapes]  # XLM-R's initializer range
    weights = [(r * (1 + drift * torch.randn(s, generator=g))).requires_grad_() for r, s in zip(refs, shapes)]
    return weights, refs, layers


def pull(kind, block):
    """Per-parameter gradient at the drift, relative to the weights: mean |grad| / mean |W0|."""
    weights, refs, layers = block
    grads = torch.autograd.grad(alignment_penalty(kind, weights * layers, refs * layers), weights)
    mean_grad = sum(g.abs().sum() for g in grads) / layers / sum(w.numel() for w in weights)
    mean_weight = sum(r.abs().sum() for r in refs) / sum(r.numel() for r in refs)
    return (mean_grad / mean_weight).item()


@pytest.fixture(scope="module")
def shapes():
    drift = 0.1
    return {
        "testbed": encoder_weights(128, 512, 4, drift),  # the demo's testbed: hidden 128, 4 layers
        "base": encoder_weights(768, 3072, 12, drift),  # XLM-R base: 72 matrices, 84.9M weights
    }


@pytest.mark.parametrize("kind", KINDS)
def test_a_weight_pulls_each_parameter_alike_on_the_testbed_and_the_xlmr_base_shape(shapes, kind):
    testbed, base = pull(kind, shapes["testbed"]), pull(kind, shapes["base"])
    assert testbed > 0 and base > 0
    assert 0.5 < testbed / base < 2.0, f"{kind}: pull per parameter testbed {testbed:.3g} vs base {base:.3g}"


# --- one training step and one evaluation under bf16 autocast (the GPU code path) ------------------


@pytest.mark.parametrize("kind", KINDS)
def test_training_step_and_evaluation_under_cpu_bf16_autocast(monkeypatch, kind):
    from conftest import PRUNABLE, tiny_classifier

    import alignprune.evaluate as evaluate
    import alignprune.train as train
    from alignprune.data import EncodedSplit
    from alignprune.modeling import prunable_names
    from alignprune.pruning import apply_masks, compute_masks

    entered = []

    @contextlib.contextmanager
    def bf16_autocast(device):  # what evaluate.autocast does on a bf16 GPU, forced on the CPU
        entered.append(device.type)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=True):
            yield

    monkeypatch.setattr(evaluate, "autocast", bf16_autocast)
    monkeypatch.setattr(train, "autocast", bf16_autocast)
    model = tiny_classifier(seed=5)
    head_dtypes = []
    model.classifier.out_proj.register_forward_hook(lambda m, i, out: head_dtypes.append((out.dtype, out.isfinite().all())))
    params = dict(model.named_parameters())
    names = prunable_names(model, PRUNABLE["include"], [])
    references = [params[n].detach().clone() for n in names]
    masks = compute_masks({n: params[n].detach() for n in names}, criterion="magnitude", scope="global", sparsity=0.5)
    apply_masks(params, masks)
    settings = train.TrainSettings(learning_rate=1e-3, batch_size=8, max_steps=10, eval_every=10, weight_decay=0.1)
    optimizer = train.build_optimizer(model, settings)
    scheduler = train.linear_schedule(optimizer, settings)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randint(3, 60, (8, 12), generator=g), torch.ones(8, 12, dtype=torch.long),
             torch.randint(0, 3, (8,), generator=g))
    before = {n: params[n].detach().clone() for n in names}
    penalty = AlignmentPenalty(kind, [params[n] for n in names], references)  # as the prune job builds it
    model.train()
    loss, value, grad_norm = train.training_step(
        model, params, batch, optimizer, scheduler, settings, device=torch.device("cpu"), masks=masks,
        penalty=penalty, penalty_weight=1e-3,
    )
    assert torch.isfinite(loss) and torch.isfinite(value) and torch.isfinite(grad_norm)
    assert value.item() > 0  # the pruned weights moved every layer away from its reference
    for n in names:
        assert torch.all(params[n][~masks[n]] == 0.0), n  # exactly zero after the step
        assert not torch.equal(params[n][masks[n]], before[n][masks[n]]), n  # the kept weights trained
    data = EncodedSplit(input_ids=[[0] + torch.randint(3, 60, (k,), generator=g).tolist() + [2] for k in range(3, 23)],
                        labels=torch.randint(0, 3, (20,), generator=g).tolist())
    result = evaluate.accuracy(model, data, batch_size=8, pad_id=1, device=torch.device("cpu"))
    assert result["n_examples"] == 20 and 0.0 <= result["accuracy"] <= 1.0
    # both ran under bf16 autocast: the classifier head computed in bf16, finite, in training and evaluation
    assert entered.count("cpu") >= 2
    assert len(head_dtypes) == 1 + 3 and all(dtype == torch.bfloat16 and finite for dtype, finite in head_dtypes)


@pytest.mark.parametrize("kind", KINDS)
def test_an_absurd_weight_overflows_the_gradient_instead_of_raising(kind):
    """Training stops on a non-finite gradient norm with a clear message; the penalty must not
    raise first (a float32 coefficient of 1e39 cannot be passed as an alpha)."""
    refs, _ = make(dtype=torch.float32)
    weights = [(r + 0.3 * torch.randn_like(r)).requires_grad_() for r in refs]
    value = AlignmentPenalty(kind, weights, refs).accumulate_grad(1e39)
    assert torch.isfinite(value)
    assert not all(torch.isfinite(w.grad).all() for w in weights)


@pytest.mark.parametrize("kind", ["cosine", "frobenius"])
def test_movement_scores_read_the_task_gradient_not_the_penalty(kind):
    """A movement method with a regularizer scores weights by the task loss's gradient alone
    (Sanh et al.): one step with the penalty gives the scores of one step without it, while the
    weights the two steps leave differ (the penalty did pull)."""
    from conftest import PRUNABLE, tiny_classifier

    import alignprune.train as train
    from alignprune.modeling import prunable_names

    g = torch.Generator().manual_seed(0)
    batch = (torch.randint(3, 60, (8, 12), generator=g), torch.ones(8, 12, dtype=torch.long),
             torch.randint(0, 3, (8,), generator=g))
    settings = train.TrainSettings(learning_rate=1e-3, batch_size=8, max_steps=10, eval_every=10)
    scores, weights = {}, {}
    for weight in (0.0, 10.0):
        model = tiny_classifier(seed=5)
        params = dict(model.named_parameters())
        names = prunable_names(model, PRUNABLE["include"], [])
        # references away from the weights, so the penalty's gradient is far from zero
        references = [params[n].detach() + 0.5 for n in names]
        movement = {n: torch.zeros_like(params[n]) for n in names}
        optimizer = train.build_optimizer(model, settings)
        model.train()
        train.training_step(
            model, params, batch, optimizer, train.linear_schedule(optimizer, settings), settings,
            device=torch.device("cpu"), penalty=AlignmentPenalty(kind, [params[n] for n in names], references),
            penalty_weight=weight, movement=movement,
        )
        scores[weight], weights[weight] = movement, {n: params[n].detach().clone() for n in names}
    for n in scores[0.0]:
        assert scores[0.0][n].abs().sum() > 0, n
        torch.testing.assert_close(scores[10.0][n], scores[0.0][n], rtol=0, atol=0)
    assert any(not torch.equal(weights[10.0][n], weights[0.0][n]) for n in weights[0.0])


def test_a_regularizer_listed_without_its_branches_is_refused_not_computed_as_another(monkeypatch):
    """A kind added to REGULARIZERS alone: refused by the reference definition, and by the
    analytic gradient when the penalty is built (before the first step, not inside it), not
    computed as cosine, l2 or frobenius."""
    from alignprune import regularizers

    monkeypatch.setattr(regularizers, "REGULARIZERS", (*REGULARIZERS, "l1"))
    refs, _ = make()
    weights = [r.clone() + 0.1 for r in refs]
    with pytest.raises(NotImplementedError, match="add its branch to alignment_penalty"):
        alignment_penalty("l1", weights, refs)
    with pytest.raises(NotImplementedError, match=r"'l1' has no analytic gradient: add its setup here "
                                                  r"and its branch to AlignmentPenalty\.accumulate_grad"):
        AlignmentPenalty("l1", weights, refs)


def test_cosine_without_units_is_refused_and_the_others_read_none():
    refs, _ = make()
    with pytest.raises(ValueError, match="the cosine regularizer compares units: unknown units None"):
        AlignmentPenalty("cosine", [r.clone() for r in refs], refs, None, None)
    for kind in ("l2", "frobenius"):
        assert AlignmentPenalty(kind, [r.clone() for r in refs], refs, None, None)().item() == 0.0
