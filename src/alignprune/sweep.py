"""The regularizer-weight sweep: English dev accuracy of each (method, weight) and the chosen weight.

Selection uses English dev only (the accuracy the retraining loop selected its
checkpoint on), never a zero-shot language: the study is zero-shot, so no
target-language data may tune it. The chosen weight has the highest mean dev
accuracy over the sweep's seeds and sparsity targets; ties go to the smaller
weight, the lighter intervention.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from .io import atomic_path, read_json
from .modeling import SPARSITY_FILE, TRAINING_FILE


def collect_runs(runs) -> pd.DataFrame:
    """One row per sweep model: ``runs`` holds (method, weight, seed, sparsity, model dir)."""
    rows = []
    for method, weight, seed, sparsity, model_dir in runs:
        training = read_json(Path(model_dir) / TRAINING_FILE)
        pruned = read_json(Path(model_dir) / SPARSITY_FILE)
        rows.append({
            "method": method,
            "regularizer": pruned["regularizer"],
            "weight": float(weight),
            "seed": int(seed),
            "sparsity_target": float(sparsity),
            "sparsity_measured": pruned["sparsity_prunable"],
            "dev_accuracy": 100.0 * training["best_dev_accuracy"],
            "dev_accuracy_before_retraining": 100.0 * training["dev_accuracy_before_retraining"],
        })
    if not rows:
        raise ValueError("the sweep has no runs: no enabled method has a regularizer")
    return pd.DataFrame(rows).sort_values(["method", "weight", "seed", "sparsity_target"], ignore_index=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean English dev per (method, weight): one column per sparsity target, their mean, and the choice."""
    by_target = runs.pivot_table(
        index=["method", "regularizer", "weight"], columns="sparsity_target", values="dev_accuracy", aggfunc="mean"
    )
    by_target.columns = [f"dev_at_{target:.2f}" for target in by_target.columns]
    table = by_target.assign(dev_mean=runs.groupby(["method", "regularizer", "weight"])["dev_accuracy"].mean())
    table = table.reset_index()
    # Highest mean first; among equal means the smaller weight.
    ranked = table.sort_values(["method", "dev_mean", "weight"], ascending=[True, False, True])
    chosen = ranked.groupby("method").head(1).index
    table["chosen"] = table.index.isin(chosen)
    return table


def chosen_weights(summary: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{method: {"weight": w}}, ready to merge into the config's ``methods``."""
    picked = summary[summary["chosen"]]
    return {row.method: {"weight": float(row.weight)} for row in picked.itertuples()}


def _markdown(summary: pd.DataFrame, seeds: list[int]) -> str:
    shown = summary.copy()
    shown["weight"] = shown["weight"].map("{:g}".format)
    for column in [c for c in shown.columns if c.startswith("dev_")]:
        shown[column] = shown[column].map("{:.1f}".format)
    shown["chosen"] = shown["chosen"].map({True: "yes", False: ""})
    header = (
        "English dev accuracy (%) after retraining, mean over seeds "
        f"{', '.join(map(str, seeds))}; the chosen weight has the highest mean over all targets.\n\n"
    )
    align = ["left", "left"] + ["right"] * (len(shown.columns) - 2)
    return header + shown.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def write_sweep(runs, outputs: dict[str, str | Path]) -> pd.DataFrame:
    """``outputs``: runs (CSV of every run), summary (CSV), markdown, chosen (YAML)."""
    frame = collect_runs(runs)
    summary = summarise(frame)
    writes = {
        "runs": lambda tmp: frame.to_csv(tmp, index=False),
        "summary": lambda tmp: summary.to_csv(tmp, index=False),
        "markdown": lambda tmp: tmp.write_text(_markdown(summary, sorted(set(frame["seed"])))),
        "chosen": lambda tmp: tmp.write_text(
            "# Weights chosen by the sweep on English dev; merge into the config's methods.\n"
            + yaml.safe_dump({"methods": chosen_weights(summary)}, sort_keys=False)
        ),
    }
    for name, write in writes.items():
        with atomic_path(outputs[name]) as tmp:
            write(Path(tmp))
    return summary
