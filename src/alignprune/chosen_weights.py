"""The regularizer-weight sweep's choice file, ``results/sweep/{task}/chosen_weights.yaml``:
written by the sweep (alignprune.sweep) and read by the Snakefile when it plans the prune jobs
of a method with ``weight: sweep``; and which method is a regularized method's unregularized
base (the findings' baseline, the sweep's reference). Standard library and yaml only: it is imported at plan time."""

from __future__ import annotations

from pathlib import Path

import yaml

# the value of a method's ``weight`` that asks for the sweep's choice
SWEEP_WEIGHT = "sweep"
UNREGULARIZED = "none"  # a method's regularizer when it has none
CODE_COMMENT = "# made by the code: "  # the choice file's line naming the code digests


def chosen_weights_text(chosen: dict[str, float], tolerance: float, code: list[str] | None = None) -> str:
    """The file's text: ``methods: {method: {weight: w}}``, ready to merge into a config, and a
    comment naming ``code``, the digests of the code that made the sweep's models and chose
    (alignprune.code_version): a comment, since a key beside ``methods`` would make the file no
    config the schema accepts."""
    return (
        f"# Weights chosen by the sweep on English dev (strongest within {tolerance:g} points of the "
        "best); methods with weight: sweep use them, or merge them into the config's methods.\n"
        + (f"{CODE_COMMENT}{' '.join(code)}\n" if code else "")
        + yaml.safe_dump({"methods": {method: {"weight": float(w)} for method, w in chosen.items()}}, sort_keys=False)
    )


def read_chosen_code(path: str | Path) -> list[str] | None:
    """The code digests a choice file records; None for one written before they were recorded."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(CODE_COMMENT):
            return line[len(CODE_COMMENT):].split()
    return None


def read_chosen_weight(path: str | Path, method: str) -> float:
    """The weight the sweep chose for ``method``."""
    methods = (yaml.safe_load(Path(path).read_text()) or {}).get("methods") or {}
    if method not in methods:
        raise ValueError(
            f"{path}: the sweep chose no weight for {method} (it has {', '.join(methods) or 'none'}); "
            "is the method enabled with a regularizer? Rerun the sweep (snakemake sweep --forcerun sweep_choice)"
        )
    return float(methods[method]["weight"])


def regularized(spec: dict) -> bool:
    """A method that retrains with a regularizer: one named, at a weight > 0 or the sweep's."""
    return spec["regularizer"] != UNREGULARIZED and (spec["weight"] == SWEEP_WEIGHT or spec["weight"] > 0)


def unregularized_bases(methods: dict[str, dict]) -> dict[str, str | None]:
    """{regularized method: its unregularized base, or None}: the first enabled method (config
    order) that prunes by the same criterion and scope with no regularizer. The findings' claim 2
    compares each regularized method with it, and the sweep retrains it beside the grid at weight 0."""
    plain = [name for name, spec in methods.items()
             if spec.get("enabled", True) and spec["criterion"] != "none" and not regularized(spec)]
    # criterion "none" is the retraining control (criteria.NO_PRUNING; criteria imports torch)
    return {
        name: next((p for p in plain if (methods[p]["criterion"], methods[p]["scope"])
                    == (spec["criterion"], spec["scope"])), None)
        for name, spec in methods.items() if spec.get("enabled", True) and regularized(spec)
    }
