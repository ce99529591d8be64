"""Masks: exact sparsity, deterministic ties, nesting along the ladder."""

import pytest
import torch

from alignprune.pruning import CRITERIA, compute_masks, cubic_schedule, lowest_k, mask_sparsity, n_to_prune

SHAPES = {"a": (37, 23), "b": (64, 16), "c": (5, 101)}


def weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=g) for name, shape in SHAPES.items()}


def saliency():
    """Stands in for sum |w * grad| over batches (the job computes it from the model)."""
    g = torch.Generator().manual_seed(99)
    return {name: torch.rand(shape, generator=g) for name, shape in SHAPES.items()}


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 0.97])
def test_measured_sparsity_equals_target(criterion, scope, sparsity):
    w = weights()
    masks = compute_masks(
        w, criterion=criterion, scope=scope, sparsity=sparsity,
        generator=torch.Generator().manual_seed(1), gradient_saliency=saliency, movement_scores=saliency(),
    )
    total = sum(m.numel() for m in masks.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    if scope == "global":
        assert pruned == n_to_prune(sparsity, total)
    else:
        for name, m in masks.items():
            assert int((~m).sum()) == n_to_prune(sparsity, m.numel()), name
        assert abs(pruned / total - sparsity) <= len(masks) / total


def test_global_magnitude_prunes_exactly_the_smallest_weights():
    w = weights()
    masks = compute_masks(w, criterion="magnitude", scope="global", sparsity=0.5)
    kept = torch.cat([w[n].abs()[masks[n]] for n in w])
    pruned = torch.cat([w[n].abs()[~masks[n]] for n in w])
    assert pruned.max() <= kept.min()


def test_layer_magnitude_prunes_the_smallest_within_each_layer():
    w = weights()
    masks = compute_masks(w, criterion="magnitude", scope="layer", sparsity=0.3)
    for name in w:
        assert w[name].abs()[~masks[name]].max() <= w[name].abs()[masks[name]].min()


def test_ties_are_broken_by_position_and_the_count_stays_exact():
    scores = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 0.0])
    keep = lowest_k(scores, 2)
    assert keep.tolist() == [True, False, False, True, True, True]
    assert lowest_k(torch.zeros(10), 7).logical_not().sum() == 7


def test_n_to_prune_rounds_half_up():
    assert n_to_prune(0.5, 5) == 3
    assert n_to_prune(0.3, 10) == 3
    assert n_to_prune(0.97, 100) == 97
    # 0.29 * 50 is 14.499999999999998 in floating point: the rule asks for 15
    assert n_to_prune(0.29, 50) == 15
    # the float error grows with n; and a sparsity just below a half is not one
    assert n_to_prune(0.57, 10_000_050) == 5_700_029 and n_to_prune(0.7, 84_934_005) == 59_453_804
    assert n_to_prune(0.4999999996, 1) == 0
    from fractions import Fraction
    for hundredths in range(1, 100):
        for n in range(1, 1000):
            exact = Fraction(hundredths, 100) * n
            assert n_to_prune(hundredths / 100, n) == int(exact + Fraction(1, 2)), (hundredths, n)


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_ladder_masks_are_nested(criterion, scope):
    w = weights()
    previous, chain = None, []
    for step, sparsity in enumerate([0.3, 0.5, 0.7, 0.9]):
        # fresh signed scores each rung (as movement's are), highest on the weights already pruned:
        # only the previous masks keep those pruned
        draw = torch.Generator().manual_seed(100 + step)
        fresh = {n: torch.randn(t.shape, generator=draw) + (0.0 if previous is None else 10.0 * (~previous[n]))
                 for n, t in w.items()}
        masks = compute_masks(
            w, criterion=criterion, scope=scope, sparsity=sparsity, previous=previous,
            generator=torch.Generator().manual_seed(step), gradient_saliency=lambda: fresh, movement_scores=fresh,
        )
        # pruned weights are zeroed, as the retraining loop keeps them
        w = {n: t * masks[n] for n, t in w.items()}
        chain.append(masks)
        previous = masks
        assert mask_sparsity(masks) == pytest.approx(sparsity, abs=len(masks) / 3000)
    for lower, higher in zip(chain, chain[1:]):
        for name in lower:
            assert not (higher[name] & ~lower[name]).any(), "a weight pruned at a lower target came back"


def test_random_masks_depend_on_the_generator_seed_only():
    w = weights()
    make = lambda seed: compute_masks(
        w, criterion="random", scope="layer", sparsity=0.5, generator=torch.Generator().manual_seed(seed)
    )
    assert all(torch.equal(make(3)[n], make(3)[n]) for n in w)
    assert any(not torch.equal(make(3)[n], make(4)[n]) for n in w)


def test_unknown_criterion_and_scope_are_named():
    with pytest.raises(ValueError, match="unknown criterion 'magnitdue'"):
        compute_masks(weights(), criterion="magnitdue", scope="layer", sparsity=0.5)
    with pytest.raises(ValueError, match="unknown scope 'row'"):
        compute_masks(weights(), criterion="magnitude", scope="row", sparsity=0.5)


def test_cubic_schedule_follows_zhu_and_gupta():
    plan = cubic_schedule(0.9, steps=100, pruning_steps=4, fraction=0.8)
    assert list(plan) == [20, 40, 60, 80]
    expected = [0.9 * (1 - (1 - k / 4) ** 3) for k in (1, 2, 3, 4)]
    assert list(plan.values()) == pytest.approx(expected)
    assert plan[80] == 0.9
    values = list(plan.values())
    assert all(b > a for a, b in zip(values, values[1:]))
    # most of the pruning happens early: the first step already prunes more than a quarter
    assert values[0] > 0.9 / 4
    with pytest.raises(ValueError, match="cannot hold"):
        cubic_schedule(0.5, steps=3, pruning_steps=10, fraction=0.7)
