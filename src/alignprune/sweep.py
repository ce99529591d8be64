"""The regularizer-weight sweep: English dev accuracy of each (method, weight) and the chosen weight.

Selection uses English dev only (the accuracy the retraining loop selected its
checkpoint on), never a zero-shot language: the study is zero-shot, so no
target-language label may tune it. A regularizer trades English fit for something
English dev cannot see (staying close to the pretrained, multilingual weights), so
the highest English dev accuracy goes to the weakest weight of almost every grid,
which switches the method off. The rule is therefore: the STRONGEST weight whose
mean English dev accuracy (over the sweep's seeds and sparsity targets) is within
``tolerance`` points of the best weight's, i.e. as much regularization as English
accuracy allows. A choice at either end of its grid is flagged: the grid did not
bracket it.

Where the sweep's models were also evaluated on the other languages, their
zero-shot accuracy is reported beside each weight (table and figure), to show what
the choice gave up or gained; it never enters the choice.

Each regularized method's unregularized base (the configured method with its criterion and
scope and no regularizer) runs the same ladder with weight 0: the reference row, and the
``*_vs_unregularized`` columns (each weight minus it: what the regularizer cost on English dev
and gave zero-shot). It is reported only: the choice stays among the grid's weights.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import code_version
from .chosen_weights import UNREGULARIZED, chosen_weights_text
from .io import atomic_path, read_json
from .model_key import ModelKey
from .modeling import SPARSITY_FILE, TRAINING_FILE

GROUP = ["method", "regularizer", "weight"]
DEFAULT_TOLERANCE = 0.5


def collect_runs(model_dirs) -> pd.DataFrame:
    """One row per sweep model: ``model_dirs`` are their folders, each named after its model
    (alignprune.model_key: method, weight, seed and target)."""
    rows = []
    for model_dir in model_dirs:
        key = ModelKey.parse(model_dir)
        training = read_json(Path(model_dir) / TRAINING_FILE)
        pruned = read_json(Path(model_dir) / SPARSITY_FILE)
        rows.append({
            "method": key.method,
            "regularizer": pruned["regularizer"],
            "weight": float(key.weight),
            "seed": key.seed,
            "sparsity_target": key.sparsity,
            "sparsity_measured": pruned["sparsity_prunable"],
            "dev_accuracy": 100.0 * training["best_dev_accuracy"],
            "dev_accuracy_before_retraining": 100.0 * training["dev_accuracy_before_retraining"],
        })
    if not rows:
        raise ValueError("the sweep has no runs: no enabled method has a regularizer")
    return pd.DataFrame(rows).sort_values(["method", "weight", "seed", "sparsity_target"], ignore_index=True)


def collect_zero_shot(eval_files) -> pd.DataFrame:
    """One row per evaluation of a sweep model on a zero-shot language: ``eval_files`` are its
    eval JSONs (alignprune.model_key's names: the model's folder, then {split}/{language}.json);
    accuracy in points."""
    rows = []
    for path in eval_files:
        key = ModelKey.parse(path)
        rows.append({"method": key.method, "weight": float(key.weight), "seed": key.seed,
                     "sparsity_target": key.sparsity, "language": Path(path).stem,
                     "accuracy": 100.0 * read_json(path)["accuracy"]})
    return pd.DataFrame(rows, columns=["method", "weight", "seed", "sparsity_target", "language", "accuracy"])


def summarise(
    runs: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE, zero_shot: pd.DataFrame | None = None,
    references: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Mean English dev per (method, weight): one column per sparsity target, their mean, the
    choice (``chosen``) and whether it sits at an end of its grid (``edge``: weakest, strongest).

    ``zero_shot`` (collect_zero_shot): adds zero_shot_mean (mean over languages, then over
    seeds and targets) for the reader; the choice never reads it.
    ``references``: {regularized method: its unregularized base}, whose runs (regularizer none)
    come first in the table and are never chosen; each regularized row names its base
    (``unregularized``) and gets dev_vs_unregularized (and zero_shot_vs_unregularized) against it.
    """
    if tolerance < 0:
        raise ValueError(f"sweep tolerance {tolerance} is negative: give accuracy points >= 0")
    by_target = runs.pivot_table(index=GROUP, columns="sparsity_target", values="dev_accuracy", aggfunc="mean")
    by_target.columns = [f"dev_at_{target:.2f}" for target in by_target.columns]
    everything = by_target.assign(dev_mean=runs.groupby(GROUP)["dev_accuracy"].mean()).reset_index()
    if zero_shot is not None and not zero_shot.empty:
        per_model = zero_shot.groupby(["method", "weight", "seed", "sparsity_target"])["accuracy"].mean()
        everything = everything.merge(
            per_model.groupby(["method", "weight"]).mean().rename("zero_shot_mean").reset_index(),
            on=["method", "weight"], how="left",
        )
    unregularized = everything["regularizer"] == UNREGULARIZED
    table = _choose(everything[~unregularized].reset_index(drop=True), tolerance)
    reference_rows = everything[unregularized]
    if reference_rows.empty:
        return table
    table["unregularized"] = table["method"].map(references or {})
    for column in [c for c in ("dev_mean", "zero_shot_mean") if c in everything]:
        base = table["unregularized"].map(reference_rows.set_index("method")[column])
        table[column.replace("_mean", "_vs_unregularized")] = table[column] - base
    reference_rows = reference_rows.assign(within_tolerance=False, chosen=False, edge="")
    return pd.concat([reference_rows, table], ignore_index=True)[list(table.columns)]


def _choose(table: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """The regularized rows with within_tolerance, chosen and edge (summarise's rule)."""
    best = table.groupby("method")["dev_mean"].transform("max")
    table["within_tolerance"] = table["dev_mean"] >= best - tolerance - 1e-9  # float noise is no loss
    chosen = table[table["within_tolerance"]].groupby("method")["weight"].transform("max")
    table["chosen"] = False
    table.loc[chosen.index, "chosen"] = table.loc[chosen.index, "weight"] == chosen
    grid = table.groupby("method")["weight"]
    lowest, highest = grid.transform("min"), grid.transform("max")
    table["edge"] = ""
    table.loc[table["chosen"] & (table["weight"] == lowest), "edge"] = "weakest"
    table.loc[table["chosen"] & (table["weight"] == highest), "edge"] = "strongest"
    table.loc[table["chosen"] & (lowest == highest), "edge"] = "only weight"
    return table


def chosen_weights(summary: pd.DataFrame) -> dict[str, float]:
    """{method: chosen weight}."""
    picked = summary[summary["chosen"]]
    return {row.method: float(row.weight) for row in picked.itertuples()}


def _markdown(summary: pd.DataFrame, seeds: list[int], tolerance: float) -> str:
    shown = summary.drop(columns="within_tolerance").copy()
    shown["weight"] = shown["weight"].map("{:g}".format)
    for column in [c for c in shown.columns if c.startswith(("dev_", "zero_shot"))]:
        style = "{:+.1f}" if column.endswith("_vs_unregularized") else "{:.1f}"
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else style.format(v))
    shown["chosen"] = shown["chosen"].map({True: "yes", False: ""})
    if "unregularized" in shown:
        shown["unregularized"] = shown["unregularized"].fillna("")
    header = (
        "English dev accuracy (%) after retraining, mean over seeds "
        f"{', '.join(map(str, seeds))}. Chosen: the strongest weight whose mean over all targets is "
        f"within {tolerance:g} points of the best weight's (English dev only"
        + ("; zero_shot_mean is reported, never used to choose" if "zero_shot_mean" in shown else "")
        + ").\n\n"
    )
    references = summary.loc[summary["regularizer"] == UNREGULARIZED, "method"].tolist()
    if references:
        header += (
            f"Unregularized reference ({', '.join(references)}: regularizer none, weight 0, the same "
            "ladder, seeds and data order): never chosen; `dev_vs_unregularized` and "
            "`zero_shot_vs_unregularized` are a weight's mean minus its base's.\n\n"
        )
    edges = summary[summary["edge"] != ""]
    if not edges.empty:
        header += "".join(
            f"**Edge:** {row.method}'s choice {row.weight:g} is the {row.edge} weight of its grid: "
            "extend the grid past it.\n\n" if row.edge != "only weight" else
            f"**Edge:** {row.method} has one weight only: nothing was compared.\n\n"
            for row in edges.itertuples()
        )
    align = ["left", "left"] + ["right"] * (len(shown.columns) - 2)
    return header + shown.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def plot_sweep(summary: pd.DataFrame, path: str | Path) -> None:
    """Per method: English dev and zero-shot accuracy against the weight (log scale); the chosen
    weight and the tolerance band under the best English dev are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regularized = summary[summary["regularizer"] != UNREGULARIZED]
    methods = list(dict.fromkeys(regularized["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.4), squeeze=False)
    for ax, method in zip(axes[0], methods):
        rows = regularized[regularized["method"] == method].sort_values("weight")
        ax.plot(rows["weight"], rows["dev_mean"], "o-", label="English dev (chooses)")
        if "zero_shot_mean" in rows and rows["zero_shot_mean"].notna().any():
            ax.plot(rows["weight"], rows["zero_shot_mean"], "s--", label="zero-shot test (reported)")
        # the unregularized base's level (weight 0 has no place on a log axis)
        base_name = rows["unregularized"].iloc[0] if "unregularized" in rows else None
        base = summary[(summary["regularizer"] == UNREGULARIZED) & (summary["method"] == base_name)]
        for column, colour, name in (("dev_mean", "C0", "English dev"), ("zero_shot_mean", "C1", "zero-shot")):
            if len(base) and column in base and pd.notna(base[column].iloc[0]):
                ax.axhline(base[column].iloc[0], color=colour, linewidth=0.8, linestyle=":",
                           label=f"{name}, unregularized ({base['method'].iloc[0]})")
        chosen = rows[rows["chosen"]]
        for weight in chosen["weight"]:
            ax.axvline(weight, color="grey", linestyle=":", label="chosen")
        ax.set(xscale="log", title=f"{method} ({rows['regularizer'].iloc[0]})", xlabel="regularizer weight",
               ylabel="accuracy (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    for target, fmt in ((path, "png"), (path.with_suffix(".pdf"), "pdf")):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=fmt)
    plt.close(fig)


def write_sweep(
    runs, outputs: dict[str, str | Path], tolerance: float = DEFAULT_TOLERANCE, zero_shot=None, references=None
) -> pd.DataFrame:
    """``outputs``: any of runs (CSV of every run), summary (CSV), markdown, chosen (YAML) and
    figure (PNG, a PDF beside it). ``runs``: the sweep models' folders (collect_runs), with the
    unregularized references' where the table shows them (sweep_table; sweep_choice's runs CSV
    holds the grid alone); ``zero_shot``: their zero-shot eval files (collect_zero_shot),
    reported only; ``references``: {regularized method: its base} (summarise)."""
    frame = collect_runs(runs)
    summary = summarise(frame, tolerance, collect_zero_shot(zero_shot) if zero_shot else None, references)
    writes = {
        "runs": lambda tmp: frame.to_csv(tmp, index=False),
        "summary": lambda tmp: summary.to_csv(tmp, index=False),
        "markdown": lambda tmp: tmp.write_text(_markdown(summary, sorted(set(frame["seed"])), tolerance)),
        "chosen": lambda tmp: tmp.write_text(
            chosen_weights_text(chosen_weights(summary), tolerance, code=code_version.lineage(*runs))),
    }
    unknown = set(outputs) - set(writes) - {"figure", "figure_pdf"}  # figure_pdf: written beside the PNG
    if unknown:
        raise ValueError(f"unknown sweep outputs {sorted(unknown)}; expected some of {sorted(writes)} and figure")
    if "figure_pdf" in outputs and Path(outputs["figure_pdf"]) != Path(outputs["figure"]).with_suffix(".pdf"):
        raise ValueError(f"figure_pdf must be the figure's path with .pdf: {outputs['figure']}")
    for name, write in writes.items():
        if name in outputs:
            with atomic_path(outputs[name]) as tmp:
                write(Path(tmp))
    if "figure" in outputs:
        plot_sweep(summary, outputs["figure"])
    return summary
