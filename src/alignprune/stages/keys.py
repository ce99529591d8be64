"""A model's identity in the records the evaluation and alignment stages write."""

from __future__ import annotations


def parse_variant(variant: str) -> tuple[str, float]:
    """'dense' -> ('dense', 0.0); 'method~m/sparsity~0.50' -> ('m', 0.5)."""
    if variant == "dense":
        return "dense", 0.0
    method_part, sparsity_part = variant.split("/")
    return method_part.removeprefix("method~"), float(sparsity_part.removeprefix("sparsity~"))


def model_keys(task: str, seed: int, variant: str) -> dict:
    """The columns that name a model in every eval and alignment record."""
    method, target = parse_variant(variant)
    return {"task": task, "seed": seed, "method": method, "sparsity_target": target}
