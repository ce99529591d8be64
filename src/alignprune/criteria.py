"""Pruning criteria: each turns the prunable weights into scores (lower = pruned first).

- random: uniform scores from the job's generator;
- magnitude: |w|;
- gradient: first-order Taylor, sum over English training batches of |w * dL/dw|;
- movement (Sanh et al. 2020): -w * dL/dw summed over retraining steps; weights that
  move towards zero score low;
- lamp (Lee et al. 2021): within a layer, w_u^2 over the sum of squares of itself and
  the weights after it in ascending magnitude order (equal weights ordered by position, as
  in the authors' code), pruned on that score globally;
- lookahead (Park et al. 2020): w_jk^2 times the squared norm of row k of the previous
  layer and of column j of the next layer(s), neighbours of the XLM-R block below,
  a missing neighbour counting as 1.

``none`` is not among them: it names the retraining control (see NO_PRUNING).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

Scores = dict[str, torch.Tensor]


@dataclass
class ScoreInputs:
    """What a criterion may look at besides the weights."""

    weights: dict[str, torch.Tensor]
    generator: torch.Generator | None = None
    # sum over batches of |w * grad| (computed on demand: it needs the model and data)
    gradient_saliency: Callable[[], Scores] | None = None
    # -w * grad summed over training steps (see train.accumulate_movement)
    movement_scores: Scores | None = None


def random_scores(inputs: ScoreInputs) -> Scores:
    return {
        name: torch.rand(w.shape, generator=inputs.generator, dtype=torch.float32).to(w.device)
        for name, w in inputs.weights.items()
    }


def magnitude_scores(inputs: ScoreInputs) -> Scores:
    return {name: w.detach().abs().float() for name, w in inputs.weights.items()}


def gradient_scores(inputs: ScoreInputs) -> Scores:
    if inputs.gradient_saliency is None:
        raise ValueError("the gradient criterion needs training batches to compute |w * dL/dw|")
    return {name: s.float() for name, s in inputs.gradient_saliency().items()}


def movement_scores(inputs: ScoreInputs) -> Scores:
    if inputs.movement_scores is None:
        raise ValueError("the movement criterion needs scores accumulated during training")
    return {name: s.float() for name, s in inputs.movement_scores.items()}


def sort_non_negative(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.sort(values, stable=True) of a flat float32 tensor of values >= 0, ~17x faster on CPU.

    The bits of a non-negative float32 order like the float, so (bits << 32 | position) as int64
    is one key that sorts by value and then by position: numpy's vectorised sort of plain
    integers, no argsort. On a GPU torch.sort is fast already.
    """
    if values.device.type != "cpu":
        return torch.sort(values, stable=True)
    array = values.contiguous().numpy()
    keys = (array.view(np.int32).astype(np.int64) << 32) | np.arange(array.size, dtype=np.int64)
    keys.sort()
    ordered = torch.from_numpy((keys >> 32).astype(np.int32).view(np.float32))
    return ordered, torch.from_numpy(keys & 0xFFFFFFFF)


def lamp_scores(inputs: ScoreInputs) -> Scores:
    scores = {}
    for name, w in inputs.weights.items():
        squared = w.detach().float().flatten().pow(2)
        ordered, order = sort_non_negative(squared)
        # sum of squares of this weight and every weight after it in ascending order
        suffix = ordered.flip(0).cumsum(0).flip(0)
        score = torch.empty_like(squared)
        score[order] = ordered / suffix.clamp_min(torch.finfo(suffix.dtype).tiny)
        scores[name] = score.view_as(w)
    return scores


# XLM-R block: each Linear and the Linear(s) feeding its input, as (part, layer offset).
_BLOCK = re.compile(
    r"^(?P<prefix>.*\.layer\.)(?P<layer>\d+)\.(?P<part>attention\.self\.(query|key|value)"
    r"|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$"
)
_PREVIOUS = {
    "attention.self.query": ("output.dense", -1),
    "attention.self.key": ("output.dense", -1),
    "attention.self.value": ("output.dense", -1),
    "attention.output.dense": ("attention.self.value", 0),
    "intermediate.dense": ("attention.output.dense", 0),
    "output.dense": ("intermediate.dense", 0),
}


def xlmr_neighbours(names) -> dict[str, tuple[list[str], list[str]]]:
    """For each XLM-R Linear weight: (previous layers, next layers) among ``names``."""
    names = list(names)
    present = set(names)
    previous: dict[str, list[str]] = {n: [] for n in names}
    following: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        match = _BLOCK.match(name)
        if not match:
            continue
        part, offset = _PREVIOUS[match["part"]]
        before = f"{match['prefix']}{int(match['layer']) + offset}.{part}.weight"
        if before in present:
            previous[name].append(before)
            following[before].append(name)
    return {n: (previous[n], following[n]) for n in names}


def lookahead_scores(inputs: ScoreInputs, neighbours=None) -> Scores:
    weights = {n: w.detach().float() for n, w in inputs.weights.items()}
    neighbours = neighbours or xlmr_neighbours(weights)
    scores = {}
    for name, w in weights.items():
        before, after = neighbours.get(name, ([], []))
        # row k of the previous layer: everything that feeds input k
        rows = sum(weights[p].pow(2).sum(dim=1) for p in before) if before else w.new_ones(w.shape[1])
        # column j of the next layer(s): everything that reads output j
        cols = sum(weights[n].pow(2).sum(dim=0) for n in after) if after else w.new_ones(w.shape[0])
        scores[name] = w.pow(2) * cols[:, None] * rows[None, :]
    return scores


NO_PRUNING = "none"
"""Criterion of the retraining control: a method that prunes nothing and is retrained along the
same ladder of retraining budgets as every other method, so that (control - dense) is what
English-only retraining did and (pruned - control) what pruning did. It has no score function,
so compute_masks refuses it: the prune job gives the control all-True masks without scoring."""


def prunes(criterion: str) -> bool:
    """False for the retraining control's criterion, True for every pruning criterion."""
    return criterion != NO_PRUNING


CRITERIA: dict[str, Callable[[ScoreInputs], Scores]] = {
    "random": random_scores,
    "magnitude": magnitude_scores,
    "gradient": gradient_scores,
    "movement": movement_scores,
    "lamp": lamp_scores,
    "lookahead": lookahead_scores,
}
