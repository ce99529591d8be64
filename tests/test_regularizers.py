"""Regularizers: zero when aligned, positive otherwise, invariances, gradients vs finite differences."""

import pytest
import torch

from alignprune.regularizers import alignment_penalty

SHAPES = [(6, 4), (6, 4), (3, 6), (4, 3)]


def make(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    refs = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    masks = [torch.rand(s, generator=g) > 0.4 for s in SHAPES]
    return refs, masks


@pytest.mark.parametrize("kind", ["l2", "cosine", "frobenius"])
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
    cosine = sum(
        (1 - torch.nn.functional.cosine_similarity(p, r, dim=1)).mean() for p, r in zip(pruned, refs)
    ) / len(refs)
    frob = sum(((p - r) ** 2).sum() / (r**2).sum() for p, r in zip(pruned, refs)) / len(refs)
    l2 = sum(((w - r) ** 2).sum() for w, r in zip(weights, refs))
    assert alignment_penalty("cosine", weights, refs, masks).item() == pytest.approx(cosine.item())
    assert alignment_penalty("frobenius", weights, refs, masks).item() == pytest.approx(frob.item())
    assert alignment_penalty("l2", weights, refs, masks).item() == pytest.approx(l2.item())
    cols = sum(
        (1 - torch.nn.functional.cosine_similarity(p, r, dim=0)).mean() for p, r in zip(pruned, refs)
    ) / len(refs)
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


@pytest.mark.parametrize("kind", ["l2", "cosine", "frobenius"])
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


@pytest.mark.parametrize("kind", ["l2", "cosine", "frobenius"])
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
