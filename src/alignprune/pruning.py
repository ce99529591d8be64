"""Unstructured pruning: criteria score weights, a scope turns scores into exact masks.

A mask is a bool tensor per prunable weight, True where the weight is kept.
Lower score = pruned first. Weights pruned by an earlier mask (the ladder
schedule) score -inf, so masks of one chain are nested.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from .criteria import CRITERIA, ScoreInputs, Scores

Masks = dict[str, torch.Tensor]


SCOPES = ("layer", "global")


def n_to_prune(sparsity: float, n: int) -> int:
    """Number of weights to prune, rounded half up (not banker's rounding), on the decimal the
    sparsity is written as: in floating point 0.29 * 50 is 14.499999999999998, half a weight
    short of the 14.5 it stands for (and the error grows with n)."""
    return math.floor(Fraction(repr(float(sparsity))) * n + Fraction(1, 2))


def lowest_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (True = kept) that prunes exactly the k lowest of a flat score vector.

    Ties at the threshold are broken by position (earlier pruned first), so the
    result is deterministic and the count exact.
    """
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k <= 0:
        return keep
    if k >= scores.numel():
        return keep.zero_()
    threshold = torch.kthvalue(scores.cpu(), k).values.to(scores.device)
    below = scores < threshold
    keep[below] = False
    remaining = k - int(below.sum())
    if remaining > 0:
        tied = torch.nonzero(scores == threshold).flatten()[:remaining]
        keep[tied] = False
    return keep


def select_masks(
    scores: Scores, sparsity: float, scope: str, previous: Masks | None = None
) -> Masks:
    """Masks with exactly ``sparsity`` of the weights pruned (per layer or over all layers)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
    flat = {}
    for name, score in scores.items():
        score = score.flatten().float()
        if previous is not None:
            score = score.masked_fill(~previous[name].flatten().to(score.device), -math.inf)
        flat[name] = score
    if scope == "layer":
        return {
            name: lowest_k(s, n_to_prune(sparsity, s.numel())).view_as(scores[name])
            for name, s in flat.items()
        }
    joined = torch.cat([s.cpu() for s in flat.values()])
    keep = lowest_k(joined, n_to_prune(sparsity, joined.numel()))
    masks, offset = {}, 0
    for name, s in flat.items():
        masks[name] = keep[offset : offset + s.numel()].view_as(scores[name]).to(s.device)
        offset += s.numel()
    return masks


def compute_masks(
    weights: dict[str, torch.Tensor],
    *,
    criterion: str,
    scope: str,
    sparsity: float,
    previous: Masks | None = None,
    generator: torch.Generator | None = None,
    gradient_saliency=None,
    movement_scores: Scores | None = None,
) -> Masks:
    """Score the weights with ``criterion`` and prune exactly ``sparsity`` of them in ``scope``."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; known: {sorted(CRITERIA)}")
    inputs = ScoreInputs(
        weights, generator=generator, gradient_saliency=gradient_saliency, movement_scores=movement_scores
    )
    return select_masks(CRITERIA[criterion](inputs), sparsity, scope, previous)


def cubic_schedule(final: float, steps: int, pruning_steps: int, fraction: float) -> dict[int, float]:
    """Gradual pruning (Zhu and Gupta 2017): training step -> sparsity to reach there.

    ``pruning_steps`` prunings spread evenly over the first ``fraction`` of ``steps``;
    the k-th reaches final * (1 - (1 - k/n)^3), the last one ``final`` itself.
    """
    if steps < pruning_steps:
        raise ValueError(f"{steps} retraining steps cannot hold {pruning_steps} pruning steps")
    span = max(pruning_steps, int(fraction * steps))
    n = pruning_steps
    return {round(k * span / n): final * (1 - (1 - k / n) ** 3) for k in range(1, n + 1)}


@torch.no_grad()
def apply_masks(params: dict[str, torch.Tensor], masks: Masks) -> None:
    """Set pruned weights to exactly 0.0 in place."""
    for name, mask in masks.items():
        params[name].masked_fill_(~mask, 0.0)


def mask_sparsity(masks: Masks) -> float:
    pruned = sum(int((~m).sum()) for m in masks.values())
    return pruned / sum(m.numel() for m in masks.values())
