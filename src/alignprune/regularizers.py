"""Alignment regularizers between the pruned network and its unpruned reference W0.

Our reading of the paper's two regularizers (its exact equations were not
available; see the README). For a prunable layer with weight W (out x in),
mask M and reference W0:

- cosine:    mean over units u of 1 - cos((M*W)_u, W0_u)      (then mean over layers)
- frobenius: ||M*W - W0||_F^2 / ||W0||_F^2                   (then mean over layers)
- l2:        ||W - W0||_2^2                                  (summed over layers; the classic baseline)

Units are rows (output units) by default, columns (input units) as an option.
Layers of the same shape are stacked so each kind costs a few batched kernels
per shape, not a Python loop over layers; what does not change between steps
(stacked references and masks, reference norms) is computed once, by
``AlignmentPenalty``, not at every step.
"""

from __future__ import annotations

from collections import defaultdict

import torch

REGULARIZERS = ("none", "l2", "cosine", "frobenius")
UNITS = ("rows", "columns")
EPS = 1e-8  # as torch.nn.functional.cosine_similarity: norms below it count as EPS


class AlignmentPenalty:
    """The regularizer ``kind`` of ``weights`` against ``references``: call it for its value,
    differentiable in ``weights``. ``references`` and ``masks`` are read once, here."""

    def __init__(
        self,
        kind: str,
        weights: list[torch.Tensor],
        references: list[torch.Tensor],
        masks: list[torch.Tensor] | None = None,
        units: str = "rows",
    ):
        if kind not in REGULARIZERS:
            raise ValueError(f"unknown regularizer {kind!r}; known: {REGULARIZERS}")
        if units not in UNITS:
            raise ValueError(f"unknown units {units!r}; known: {UNITS}")
        self.kind, self.weights, self.layers = kind, weights, len(weights)
        self.unit_dim = 2 if units == "rows" else 1  # stacked: (layers, out, in)
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for i, w in enumerate(weights):
            by_shape[tuple(w.shape)].append(i)
        self.groups = []
        with torch.no_grad():
            for indices in by_shape.values():
                dtype = weights[indices[0]].dtype
                reference = torch.stack([references[i] for i in indices]).to(dtype)
                mask = None
                if masks is not None and kind != "l2":  # l2 compares the weights as they are
                    mask = torch.stack([masks[i] for i in indices]).to(dtype)
                if kind == "cosine":
                    scale = reference.norm(dim=self.unit_dim).clamp_min(EPS)  # (layers, units)
                elif kind == "frobenius":
                    scale = reference.pow(2).sum(dim=(1, 2))  # (layers,)
                else:
                    scale = None
                self.groups.append((indices, reference, mask, scale))

    def __call__(self) -> torch.Tensor:
        total = self.weights[0].new_zeros(())
        if self.kind == "none":
            return total
        for indices, reference, mask, scale in self.groups:
            w = torch.stack([self.weights[i] for i in indices])
            if mask is not None:
                w = w * mask
            if self.kind == "l2":
                total = total + (w - reference).pow(2).sum()
            elif self.kind == "frobenius":
                total = total + ((w - reference).pow(2).sum(dim=(1, 2)) / scale).sum()
            else:
                dot = (w * reference).sum(dim=self.unit_dim)
                cosine = dot / (w.norm(dim=self.unit_dim).clamp_min(EPS) * scale)  # (layers, units)
                total = total + (1.0 - cosine).mean(dim=1).sum()
        return total if self.kind == "l2" else total / self.layers


def alignment_penalty(
    kind: str,
    weights: list[torch.Tensor],
    references: list[torch.Tensor],
    masks: list[torch.Tensor] | None = None,
    units: str = "rows",
) -> torch.Tensor:
    """The regularizer ``kind`` over all prunable layers, differentiable in ``weights``."""
    return AlignmentPenalty(kind, weights, references, masks, units)()
