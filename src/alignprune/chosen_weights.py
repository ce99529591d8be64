"""The regularizer-weight sweep's choice file, ``results/sweep/{task}/chosen_weights.yaml``:
written by the sweep (alignprune.sweep) and read by the Snakefile when it plans the prune jobs
of a method with ``weight: sweep``. Standard library and yaml only: it is imported at plan time."""

from __future__ import annotations

from pathlib import Path

import yaml

# the value of a method's ``weight`` that asks for the sweep's choice
SWEEP_WEIGHT = "sweep"


def chosen_weights_text(chosen: dict[str, float], tolerance: float) -> str:
    """The file's text: ``methods: {method: {weight: w}}``, ready to merge into a config."""
    return (
        f"# Weights chosen by the sweep on English dev (strongest within {tolerance:g} points of the "
        "best); methods with weight: sweep use them, or merge them into the config's methods.\n"
        + yaml.safe_dump({"methods": {method: {"weight": float(w)} for method, w in chosen.items()}}, sort_keys=False)
    )


def read_chosen_weight(path: str | Path, method: str) -> float:
    """The weight the sweep chose for ``method``."""
    methods = (yaml.safe_load(Path(path).read_text()) or {}).get("methods") or {}
    if method not in methods:
        raise ValueError(
            f"{path}: the sweep chose no weight for {method} (it has {', '.join(methods) or 'none'}); "
            "is the method enabled with a regularizer? Rerun the sweep (snakemake sweep --forcerun sweep_choice)"
        )
    return float(methods[method]["weight"])
