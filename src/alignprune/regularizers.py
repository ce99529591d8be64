"""Alignment regularizers between the pruned network and its unpruned reference W0.

Our reading of the paper's two regularizers (its exact equations were not
available; see the README). For a prunable layer with weight W (out x in),
mask M and reference W0:

- cosine:    mean over units u of 1 - cos((M*W)_u, W0_u)      (then mean over layers)
- frobenius: ||M*W - W0||_F^2 / ||W0||_F^2                   (then mean over layers)
- l2:        ||W - W0||_2^2                                  (summed over layers; the classic baseline)

Units are rows (output units) by default, columns (input units) as an option.
Layers of the same shape are stacked so each kind costs a few batched kernels
per shape, not a Python loop over layers.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

REGULARIZERS = ("none", "l2", "cosine", "frobenius")
UNITS = ("rows", "columns")


def _grouped(weights, references, masks):
    """Stacks of (masked weight, reference) per weight shape, in a fixed order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, w in enumerate(weights):
        groups[tuple(w.shape)].append(i)
    for indices in groups.values():
        w = torch.stack([weights[i] for i in indices])
        if masks is not None:
            w = w * torch.stack([masks[i] for i in indices]).to(w.dtype)
        yield w, torch.stack([references[i] for i in indices]).to(w.dtype)


def alignment_penalty(
    kind: str,
    weights: list[torch.Tensor],
    references: list[torch.Tensor],
    masks: list[torch.Tensor] | None = None,
    units: str = "rows",
) -> torch.Tensor:
    """The regularizer ``kind`` over all prunable layers, differentiable in ``weights``."""
    if kind not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {kind!r}; known: {REGULARIZERS}")
    if units not in UNITS:
        raise ValueError(f"unknown units {units!r}; known: {UNITS}")
    if kind == "none":
        return weights[0].new_zeros(())
    total = weights[0].new_zeros(())
    unit_dim = 2 if units == "rows" else 1  # stacked: (layers, out, in)
    for w, w0 in _grouped(weights, references, masks if kind != "l2" else None):
        if kind == "l2":
            total = total + (w - w0).pow(2).sum()
        elif kind == "frobenius":
            per_layer = (w - w0).pow(2).sum(dim=(1, 2)) / w0.pow(2).sum(dim=(1, 2))
            total = total + per_layer.sum()
        else:
            cosine = F.cosine_similarity(w, w0, dim=unit_dim, eps=1e-8)  # (layers, units)
            total = total + (1.0 - cosine).mean(dim=1).sum()
    return total if kind == "l2" else total / len(weights)
