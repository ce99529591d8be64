"""The regularizer-weight sweep's choice file, ``results/sweep/{task}/chosen_weights.yaml``:
written by the sweep (alignprune.sweep) and read by the Snakefile when it plans the prune jobs
of a method with ``weight: sweep``; and which method is a regularized method's unregularized
reference in the sweep. Standard library and yaml only: it is imported at plan time."""

from __future__ import annotations

from pathlib import Path

import yaml

# the value of a method's ``weight`` that asks for the sweep's choice
SWEEP_WEIGHT = "sweep"
UNREGULARIZED = "none"  # a method's regularizer when it has none


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


# Keys that only the regularizer reads: a base may differ from its regularized method in these.
REGULARIZER_KEYS = {"enabled", "regularizer", "weight", "reference", "units"}


def unregularized_bases(methods: dict[str, dict], regularized: list[str]) -> dict[str, str]:
    """{regularized method: the configured method that prunes as it does with no regularizer}
    (the first in config order, enabled or not); a method without one has no reference."""
    def pruning(spec):
        return {k: v for k, v in spec.items() if k not in REGULARIZER_KEYS}

    bases = {}
    for name in regularized:
        for candidate, spec in methods.items():
            if spec.get("regularizer", UNREGULARIZED) == UNREGULARIZED and spec["criterion"] != "none" \
                    and pruning(spec) == pruning(methods[name]):
                bases[name] = candidate
                break
    return bases
