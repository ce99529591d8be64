"""Global magnitude and LAMP masks: ours (exact, kthvalue) against ``torch.nn.utils.prune``
(topk), on random weights with the shapes of the prunable encoder Linear weights."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from ..criteria import CRITERIA, ScoreInputs
from ..pruning import compute_masks
from .common import SIZES, Timing, interleaved


def encoder_linear_weights(size: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the shapes of the prunable encoder Linear weights (84,934,656 in base)."""
    shape = SIZES[size]
    hidden, inter = shape["hidden_size"], shape["intermediate_size"]
    parts = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
             "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
             "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}
    generator = torch.Generator().manual_seed(seed)
    return {
        f"roberta.encoder.layer.{layer}.{part}.weight": torch.randn(rows, cols, generator=generator)
        for layer in range(shape["num_hidden_layers"])
        for part, (rows, cols) in parts.items()
    }


# the mask comparison's variants, ours first (its baseline)
VARIANTS = ("ours", "torch.nn.utils.prune.global_unstructured")


def torch_prune_masks(weights: dict[str, torch.Tensor], sparsity: float, lamp: bool) -> dict[str, torch.Tensor]:
    """torch.nn.utils.prune.global_unstructured (L1; LAMP via importance_scores) on Linear modules
    that share the weights' storage; returns its masks (the weights themselves are not changed)."""
    import torch.nn.utils.prune as torch_prune

    modules = {}
    for name, weight in weights.items():
        module = torch.nn.Linear(1, 1, bias=False)
        module.weight = torch.nn.Parameter(weight, requires_grad=False)
        modules[name] = module
    pairs = [(module, "weight") for module in modules.values()]
    scores = None
    if lamp:
        lamp_scores = CRITERIA["lamp"](ScoreInputs(weights))
        scores = {(modules[name], "weight"): lamp_scores[name] for name in weights}
    torch_prune.global_unstructured(pairs, pruning_method=torch_prune.L1Unstructured, amount=sparsity,
                                    importance_scores=scores)
    return {name: module.weight_mask.bool() for name, module in modules.items()}


def global_masks(size: str, *, sparsity: float, warmup: int, repeats: int) -> list[Timing]:
    """Global magnitude and LAMP masks: ours (exact, kthvalue) vs torch.nn.utils.prune (topk).
    Time in this process (interleaved); peak memory and mask agreement in a fresh process each."""
    weights = encoder_linear_weights(size)
    timings = []
    for criterion in ("magnitude", "lamp"):
        variants = dict(zip(VARIANTS, (
            lambda: compute_masks(weights, criterion=criterion, scope="global", sparsity=sparsity),
            lambda: torch_prune_masks(weights, sparsity, lamp=criterion == "lamp"),
        )))
        medians = interleaved(variants, warmup=warmup, repeats=repeats, sync=lambda: None)
        peaks = {name: _peak_memory_mb(size, sparsity, criterion, name) for name in variants}
        base = medians[VARIANTS[0]]
        comparison = f"global {criterion} mask, {sum(w.numel() for w in weights.values()):,} weights"
        for name, seconds in medians.items():
            timings.append(Timing(comparison, name, 1000 * seconds, seconds / base,
                                  peak_mb=peaks[name][0], note=peaks[name][1]))
    return timings


def _peak_memory_mb(size: str, sparsity: float, criterion: str, variant: str) -> tuple[float, str]:
    """Peak resident memory a variant adds to the weights (MB), measured in a fresh process
    (``python -m alignprune.bench.mask_memory``)."""
    command = [sys.executable, "-m", "alignprune.bench.mask_memory", size, repr(sparsity), criterion, variant]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    peak, differ = json.loads(out.strip().splitlines()[-1])
    return peak, ("" if variant == VARIANTS[0] else f"{differ} weights differ from ours")
