"""English dev-accuracy curves of every training job of a task, from the training reports
(modeling.TRAINING_FILE) saved next to the models: one panel for the dense fine-tunes and one
per method, one line per job, coloured by sparsity target, with the step each job kept marked;
and the kept steps as a table (kept_steps_table)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .io import atomic_path  # noqa: E402
from .model_key import ModelKey  # noqa: E402
from .modeling import TRAINING_FILE  # noqa: E402
from .plots import TARGET_CMAP  # noqa: E402

COLUMNS = 4
PANEL_SIZE = (3.6, 2.5)  # inches: 4 columns at the report's 150 DPI stay within 2,400 pixels


def save_figure(fig, path: str | Path, dpi: int = 150) -> None:
    """``path`` (.png, at the report's DPI) and the same figure beside it as .pdf."""
    path = Path(path)
    for target, fmt in ((path, "png"), (path.with_suffix(".pdf"), "pdf")):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt)
    plt.close(fig)


def load_runs(model_dirs) -> list[dict]:
    """One dict per training job from its model folder (named after its model,
    alignprune.model_key): method ('dense' for a fine-tune), sparsity (None for dense), seed,
    model (the folder) and its training report under ``training``."""
    runs = []
    for model_dir in model_dirs:
        key = ModelKey.parse(model_dir)
        runs.append({"method": key.method, "sparsity": key.sparsity, "seed": key.seed, "model": str(model_dir),
                     "training": json.loads((Path(model_dir) / TRAINING_FILE).read_text())})
    return runs


def _points(training: dict, offset: float) -> tuple[list[float], list[float]]:
    """(steps, dev accuracy in %) of one job; a ladder job starts at its accuracy right after pruning."""
    steps, accuracy = [], []
    if "dev_accuracy_before_retraining" in training:
        steps.append(offset)
        accuracy.append(100 * training["dev_accuracy_before_retraining"])
    for entry in training.get("history", []):
        steps.append(offset + entry["step"])
        accuracy.append(100 * entry["dev_accuracy"])
    return steps, accuracy


def training_curves(runs: list[dict], methods: list[str], sparsities: list[float], *, ladder: bool = True):
    """The figure: panel 'dense' (one line per seed) and one panel per method of ``methods``
    (one line per seed and target, coloured by target). ``ladder``: each target's retraining
    continues the previous target's, so its steps are drawn after theirs (x: retraining steps
    along the ladder); otherwise every target starts at step 0."""
    panels = ["dense", *methods]
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.6), squeeze=False,
        sharey=True, constrained_layout=True,
    )
    targets = sorted(float(s) for s in sparsities)
    colours = dict(zip(targets, plt.get_cmap(TARGET_CMAP)(
        [0.9 * i / max(1, len(targets) - 1) for i in range(len(targets))]
    )))
    # retraining steps of each target: where the next target's curve starts on the ladder
    lengths: dict[float, int] = {}
    for run in runs:
        if run["method"] != "dense":
            lengths.setdefault(float(run["sparsity"]), run["training"].get("settings", {}).get("max_steps", 0))
    starts = {t: sum(lengths.get(earlier, 0) for earlier in targets[:i]) for i, t in enumerate(targets)}
    by_panel = {name: ax for name, ax in zip(panels, axes.flat)}
    for run in runs:
        ax = by_panel.get(run["method"])
        if ax is None:
            continue
        dense = run["method"] == "dense"
        target = None if dense else float(run["sparsity"])
        offset = starts.get(target, 0) if ladder and not dense else 0
        steps, accuracy = _points(run["training"], offset)
        colour = "black" if dense else colours[target]
        ax.plot(steps, accuracy, color=colour, linewidth=1.0, alpha=0.8,
                marker="." if len(steps) < 3 else None, label=f"seed {run['seed']}" if dense else None)
        kept = run["training"].get("best_step")
        if kept:  # the evaluation whose model the job saved (and the next rung starts from)
            ax.scatter([offset + kept], [100 * run["training"]["best_dev_accuracy"]], s=12, color=colour,
                       edgecolors="black", linewidths=0.4, zorder=3)
    for name, ax in by_panel.items():
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("fine-tuning step" if name == "dense" else
                      ("retraining step along the ladder" if ladder else "retraining step"), fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("English dev accuracy (%)", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colours[t], label=f"{t:.2f}") for t in targets]
    fig.legend(handles=handles, title="sparsity target (one line per seed)", loc="outside lower center",
               ncols=min(len(handles), 9), fontsize=8, title_fontsize=8)
    return fig


def kept_steps_table(runs: list[dict], methods: list[str], sparsities: list[float]) -> pd.DataFrame:
    """The step whose model each training job saved (its best English-dev evaluation, the
    model selection), one column per seed, beside the job's step count (``steps``): one row
    for the dense fine-tunes (sparsity target 0) and one per method and target. On the ladder
    the next target starts from the model kept here, so methods that keep different steps
    have had different amounts of retraining behind their later rungs. 0: no retraining
    (retrain.steps 0), the start model was kept. A seed without a job here stays empty."""
    order = {name: i for i, name in enumerate(["dense", *methods])}
    rows: dict[tuple, dict] = {}
    for run in runs:
        if run["method"] not in order:
            continue
        training = run["training"]
        target = 0.0 if run["method"] == "dense" else float(run["sparsity"])
        row = rows.setdefault((order[run["method"]], target), {
            "method": run["method"], "sparsity_target": target,
            "steps": training.get("settings", {}).get("max_steps", 0)})
        row[f"seed {run['seed']}"] = int(training.get("best_step", 0))
    wanted = {0.0, *(float(s) for s in sparsities)}
    table = pd.DataFrame([row for key, row in sorted(rows.items()) if key[1] in wanted])
    seeds = sorted((c for c in table.columns if c.startswith("seed ")), key=lambda c: int(c.split()[1]))
    table = table[["method", "sparsity_target", "steps", *seeds]]
    table[seeds] = table[seeds].astype("Int64")  # steps stay integers where a seed has no job
    table["kept_step_mean"] = table[seeds].mean(axis=1).astype(float)
    # the share of jobs that kept their last step: 100 where selection never went back
    kept_last = table[seeds].eq(table["steps"], axis=0).sum(axis=1)
    table["kept_last_percent"] = (100 * kept_last / table[seeds].notna().sum(axis=1)).astype(float)
    return table
