"""The study's figures, drawn with seaborn, each written as PNG (for the report) and PDF (for papers),
and returned (with no path, only returned: the notebook shows them). At the full study's size (15
languages, a dozen methods, 9 targets) each stays readable within MAX_PIXELS: methods get small
multiples or a labelled grid, not a dozen bars or markers per group.

Every figure takes the config's method list, so a method has the same
colour-blind-safe colour in all of them, and every figure's sparsity targets the same colours
(light to dark); the dense model is black, the retraining controls
(criterion none: retrained along the ladder, nothing pruned) grey and dashed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import BoundaryNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402
from .results import degradation_table, gap_table, per_seed_scores, preferred_order  # noqa: E402

DENSE_COLOUR = "black"
CONTROL_COLOUR = "dimgray"
#: Resolution of the PNGs (the report shows them); at it every figure of the full study (15
#: languages, 11 methods, 9 targets) stays within MAX_PIXELS.
DPI = 150
MAX_PIXELS = (2400, 1800)
#: Sparsity targets: one colour each, light (low) to dark (high), the same in every figure.
TARGET_CMAP = "viridis_r"


def _save(fig, path: str | Path | None):
    """``path`` (.png) and the same figure beside it as .pdf, then closed; returns the figure
    (with ``path`` None it is only returned, e.g. for a notebook to show)."""
    if path is None:
        return fig
    path = Path(path)
    for target, fmt in ((path, "png"), (path.with_suffix(".pdf"), "pdf")):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=fmt)
    plt.close(fig)
    return fig


def _panels(n: int, width: float = 3.0, height: float = 2.6, columns: int = 4):
    """Small multiples: one panel per method, ``columns`` a row, shared axes; unused panels hidden."""
    columns = min(columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns + 1.2, height * rows + 0.9),
                             sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _target_colours(targets) -> tuple:
    """One discrete colour per sparsity target: (colormap, norm, sorted targets)."""
    targets = sorted({round(float(t), 4) for t in targets})
    edges = [targets[0] - 0.5] if len(targets) == 1 else [
        targets[0] - (targets[1] - targets[0]) / 2,
        *[(a + b) / 2 for a, b in zip(targets, targets[1:])],
        targets[-1] + (targets[-1] - targets[-2]) / 2,
    ]
    if len(targets) == 1:
        edges.append(targets[0] + 0.5)
    cmap = plt.get_cmap(TARGET_CMAP, len(targets))
    return cmap, BoundaryNorm(edges, cmap.N), targets


def _target_colorbar(fig, axes, cmap, norm, targets) -> None:
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.6, pad=0.02,
                       ticks=targets)
    bar.set_label("sparsity target")
    bar.ax.set_yticklabels([f"{t:.2f}" for t in targets])


def _shared_legend(axes) -> None:
    """One legend for side-by-side panels, outside on the right: every line once, in drawing order
    (with a dozen methods a legend inside a panel hides its lines)."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[-1].legend(entries.values(), entries.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    frameon=False)


def _panel_title(ax, method: str, colour, controls) -> None:
    ax.set_title(control_label(method) if method in controls else method, fontsize=9,
                 color=colour if method not in controls else DENSE_COLOUR)


def method_palette(methods, controls=()) -> dict[str, tuple | str]:
    """The retraining controls grey, then one colour-blind-safe colour per pruning method, in
    config order."""
    controls = list(dict.fromkeys(controls or ()))
    methods = [m for m in dict.fromkeys(methods) if m != "dense" and m not in controls]
    return {**dict.fromkeys(controls, CONTROL_COLOUR), **dict(zip(methods, _method_colours(len(methods))))}


def _method_colours(n: int) -> list:
    """seaborn's colour-blind palette without its grey (next to the controls' grey it could not be
    told apart), then Paul Tol's colour-blind-safe muted colours: 15 distinct, then repeated."""
    colourblind = [c for i, c in enumerate(sns.color_palette("colorblind", 10)) if i != 7]
    tol = sns.color_palette(["#882255", "#332288", "#117733", "#999933", "#44AA99", "#AA4499"])
    colours = colourblind + tol
    return [colours[i % len(colours)] for i in range(n)]


def _palette(methods, frame: pd.DataFrame, dense: bool = False, controls=()) -> dict[str, tuple | str]:
    """The config's methods, then any other in ``frame``, each its colour (and dense black)."""
    palette = method_palette([*(methods or []), *frame["method"]], controls)
    return {"dense": DENSE_COLOUR, **palette} if dense else palette


def control_label(method: str) -> str:
    return f"{method} (control: retrained, nothing pruned)"


def _present(palette: dict, frame: pd.DataFrame) -> list[str]:
    """Hue order: the palette's methods that ``frame`` holds."""
    return [m for m in palette if m in set(frame["method"])]


def plot_accuracy_vs_sparsity(
    evals: pd.DataFrame, train_language: str, path: str | Path | None = None, methods: list[str] | None = None,
    controls: list[str] | None = None,
):
    """English and zero-shot average accuracy vs sparsity, one line per method (band: sd over seeds);
    each retraining control a grey dashed line over the same rungs, the dense model a black one."""
    controls = controls or []
    scores = per_seed_scores(evals, train_language)
    long = scores.melt(
        id_vars=["method", "sparsity_target", "seed"],
        value_vars=["english", "zero_shot"],
        var_name="setting",
        value_name="accuracy",
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    palette = _palette(methods, long, controls=controls)
    titles = {"english": f"Supervised ({train_language})", "zero_shot": "Zero-shot average"}
    for ax, setting in zip(axes, ("english", "zero_shot")):
        part = long[long["setting"] == setting]
        pruned = part[~part["method"].isin(["dense", *controls])]
        sns.lineplot(
            data=pruned, x="sparsity_target", y="accuracy", hue="method", palette=palette,
            hue_order=[m for m in palette if m not in controls], marker="o", errorbar="sd", ax=ax,
        )
        for control in controls:
            line = part[part["method"] == control]
            if not line.empty:
                sns.lineplot(
                    data=line, x="sparsity_target", y="accuracy", color=CONTROL_COLOUR, linestyle="--",
                    marker="s", errorbar="sd", ax=ax, label=control_label(control),
                )
        dense = part.loc[part["method"] == "dense", "accuracy"].mean()
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label="dense")
        ax.set(title=titles[setting], xlabel="sparsity target (the control: its rung)", ylabel="accuracy (%)")
    _shared_legend(axes)
    return _save(fig, path)


def plot_degradation_heatmaps(
    evals: pd.DataFrame, paths: dict[str, str | Path | None], methods: list[str] | None = None,
    languages: list[str] | None = None, controls: list[str] | None = None,
) -> dict:
    """Dense minus pruned accuracy (points), language x sparsity, one file per method in ``paths``;
    one colour scale for all of them, so two methods' files can be compared cell by cell. Returns
    the figures by method."""
    figures = {}
    table = degradation_table(evals, train_language="", methods=methods, languages=languages)
    languages = [c for c in table.columns if c not in ("method", "sparsity_target", "zero_shot_avg")]
    span = max(1.0, float(table[languages].abs().max().max()))
    for method, path in paths.items():
        part = table[table["method"] == method].set_index("sparsity_target")[languages].T
        part.columns = [f"{s:.2f}" for s in part.columns]
        fig, ax = plt.subplots(figsize=(0.6 * len(part.columns) + 2.5, 0.35 * len(languages) + 1.5))
        sns.heatmap(
            part, ax=ax, cmap="vlag", center=0, vmin=-span, vmax=span, annot=len(part.columns) <= 10,
            fmt=".1f", annot_kws={"size": 7}, cbar_kws={"label": "points"},
        )
        control = method in (controls or [])
        title = (f"{control_label(method)}: dense minus retrained accuracy" if control
                 else f"{method}: dense minus pruned accuracy")
        xlabel = "rung (the sparsity target whose retraining it repeats)" if control else "sparsity"
        ax.set(title=title, xlabel=xlabel, ylabel="language")
        ax.tick_params(axis="y", rotation=0)
        figures[method] = _save(fig, path)
    return figures


def plot_supervised_vs_zero_shot(
    evals: pd.DataFrame, train_language: str, path: str | Path | None = None, methods: list[str] | None = None,
    controls: list[str] | None = None,
):
    """Supervised degradation (x) vs zero-shot degradation (y): one panel per method with its path
    through the sparsity targets, each point coloured by its target (error bars: sd over seeds),
    the other methods' paths in light grey behind it, the same axes in every panel. Above the
    diagonal, pruning costs the other languages more than English."""
    gap = gap_table(evals, train_language, methods)
    controls = controls or []
    palette = _palette(methods, gap, controls=controls)
    order = _present(palette, gap)
    cmap, norm, targets = _target_colours(gap["sparsity_target"])
    fig, axes = _panels(len(order))
    low = min(gap["supervised_mean"].min(), gap["zero_shot_mean"].min(), 0)
    high = max(gap["supervised_mean"].max(), gap["zero_shot_mean"].max(), 1)
    paths = {m: part.sort_values("sparsity_target") for m, part in gap.groupby("method", sort=False)}
    for ax, method in zip(axes, order):
        for other in order:
            if other != method:
                ax.plot(paths[other]["supervised_mean"], paths[other]["zero_shot_mean"], color="0.85",
                        linewidth=0.8, zorder=0)
        ax.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1, zorder=0)
        part = paths[method]
        ax.errorbar(
            part["supervised_mean"], part["zero_shot_mean"], xerr=part["supervised_std"],
            yerr=part["zero_shot_std"], color=palette[method], linestyle="--" if method in controls else "-",
            linewidth=1.2, elinewidth=0.7, capsize=0, zorder=1,
        )
        ax.scatter(part["supervised_mean"], part["zero_shot_mean"], c=part["sparsity_target"], cmap=cmap,
                   norm=norm, s=30, edgecolors="black", linewidths=0.4, zorder=2)
        _panel_title(ax, method, palette[method], controls)
    fig.supxlabel(f"supervised degradation ({train_language}, points)")
    fig.supylabel("zero-shot degradation (average, points)")
    fig.suptitle("Degradation: zero-shot vs supervised (dotted: equal)")
    _target_colorbar(fig, axes, cmap, norm, targets)
    return _save(fig, path)


def plot_language_bars(
    evals: pd.DataFrame, paths: dict[str, str | Path | None], methods: list[str] | None = None,
    languages: list[str] | None = None, controls: list[str] | None = None,
) -> dict:
    """Accuracy per language at one sparsity (one file per target in ``paths``), as a grid of
    methods (rows: dense, then each method and the retraining control at that rung) by languages:
    each cell the mean accuracy over seeds and its sd, coloured by its difference to the dense
    model in that language (red: worse). Returns the figures by target."""
    palette = _palette(methods, evals, dense=True, controls=controls)
    order = preferred_order(evals["language"], languages)
    figures = {}
    for target, path in paths.items():
        part = evals[(evals["method"] == "dense") | (evals["sparsity_target"].round(2) == float(target))]
        rows = _present(palette, part)
        stats = part.groupby(["method", "language"])["accuracy"].agg(["mean", "std"])
        mean = stats["mean"].unstack().reindex(index=rows, columns=order)
        std = stats["std"].unstack().reindex(index=rows, columns=order)
        minus_dense = mean - mean.loc["dense"] if "dense" in mean.index else mean * np.nan
        span = max(1.0, float(np.nanmax(np.abs(minus_dense.to_numpy()), initial=0.0)))
        cells = mean.map(lambda v: f"{v:.1f}") + std.map(lambda v: "" if pd.isna(v) else f"\n±{v:.1f}")
        fig, ax = plt.subplots(figsize=(0.62 * len(order) + 3.6, 0.42 * len(rows) + 1.4))
        sns.heatmap(
            minus_dense, ax=ax, cmap="vlag_r", center=0, vmin=-span, vmax=span, annot=cells, fmt="",
            annot_kws={"size": 6.5}, linewidths=0.5, linecolor="white",
            cbar_kws={"label": "minus dense accuracy (points)", "shrink": 0.8},
        )
        ax.set(title=f"Accuracy (%) per language at sparsity {float(target):.2f}: mean ± sd over seeds",
               xlabel="language", ylabel="")
        ax.tick_params(axis="y", rotation=0)
        names = [label.get_text() for label in ax.get_yticklabels()]
        ax.set_yticklabels([control_label(name) if name in (controls or []) else name for name in names])
        for label, name in zip(ax.get_yticklabels(), names):  # each method in its colour, as in every figure
            label.set_color(palette[name])
        figures[target] = _save(fig, path)
    return figures


def plot_weight_alignment(
    weights: pd.DataFrame, path: str | Path | None = None, methods: list[str] | None = None,
    controls: list[str] | None = None,
):
    """Mean unit cosine with the dense weights: per encoder layer at the highest sparsity (left),
    and over all prunable matrices vs sparsity (middle); the kept weights' relative change from
    their dense values vs sparsity (right: what pruning alone leaves at 0); bands: sd over seeds."""
    palette = _palette(methods, weights, controls=controls)
    hue_order = _present(palette, weights)
    highest = weights["sparsity_target"].max()
    fig, (left, right, kept) = plt.subplots(1, 3, figsize=(15, 4))
    by_layer = weights[weights["sparsity_target"] == highest]
    by_layer = by_layer.groupby(["method", "seed", "layer"])["mean_cosine"].mean().reset_index()
    # encoder layers from 1, as the representation figure counts them (its 0: the embeddings)
    by_layer["layer"] += 1
    sns.lineplot(data=by_layer, x="layer", y="mean_cosine", hue="method", palette=palette,
                 hue_order=hue_order, marker="o", errorbar="sd", ax=left)
    left.set(title=f"Per encoder layer (sparsity {highest:.2f})", ylabel="mean cosine of units with dense",
             xlabel="encoder layer (1: the first)")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    # per seed, the mean over matrices of each measure: the middle and right panels draw these
    per_seed = weights.groupby(["method", "sparsity_target", "seed"])[["mean_cosine", "kept_change"]].mean()
    per_seed = per_seed.assign(kept_change=per_seed["kept_change"] * 100).reset_index()
    sns.lineplot(data=per_seed, x="sparsity_target", y="mean_cosine", hue="method", palette=palette,
                 hue_order=hue_order, marker="o", errorbar="sd", ax=right)
    right.axhline(1.0, color=DENSE_COLOUR, linestyle="--", linewidth=1, label="dense")
    right.set(title="Over all prunable matrices", xlabel="sparsity target (the control: its rung)",
              ylabel="mean cosine of units with dense")
    sns.lineplot(data=per_seed, x="sparsity_target", y="kept_change", hue="method", palette=palette,
                 hue_order=hue_order, marker="o", errorbar="sd", ax=kept)
    kept.axhline(0.0, color=DENSE_COLOUR, linestyle="--", linewidth=1)  # pruning alone, never retrained
    if per_seed["kept_change"].isna().all():
        kept.text(0.5, 0.5, "not measured: files written before\n--forcerun weight_alignment",
                  transform=kept.transAxes, ha="center", va="center")
    kept.set(title="Kept weights, over all prunable matrices", xlabel="sparsity target (the control: its rung)",
             ylabel="|W - M*W0| / |M*W0| (%)")
    _shared_legend([left, right, kept])
    fig.suptitle("Weight alignment with the dense model", y=1.03)
    return _save(fig, path)


def plot_representation_alignment(
    layers: pd.DataFrame, path: str | Path | None = None, methods: list[str] | None = None,
    controls: list[str] | None = None,
):
    """Debiased linear CKA with English: per layer at the highest sparsity (left), and over encoder layers
    vs sparsity (right); averaged over languages, dense model in black."""
    palette = _palette(methods, layers, dense=True, controls=controls)
    highest = layers["sparsity_target"].max()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    by_layer = layers[(layers["method"] == "dense") | (layers["sparsity_target"] == highest)]
    per_seed = by_layer.groupby(["method", "seed", "layer"])["cka"].mean().reset_index()
    sns.lineplot(
        data=per_seed, x="layer", y="cka", hue="method", palette=palette,
        hue_order=_present(palette, per_seed), marker="o", errorbar="sd", ax=left,
    )
    left.set(title=f"CKA with English per layer (sparsity {highest:.2f})", ylabel="debiased linear CKA",
             xlabel="layer (0: embeddings, 1: the first encoder layer)")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    encoder = layers[layers["layer"] > 0]
    scores = encoder.groupby(["method", "sparsity_target", "seed"])["cka"].mean().reset_index()
    pruned = scores[scores["method"] != "dense"]
    sns.lineplot(
        data=pruned, x="sparsity_target", y="cka", hue="method", palette=palette,
        hue_order=_present(palette, pruned), marker="o", errorbar="sd", ax=right,
    )
    dense = scores.loc[scores["method"] == "dense", "cka"]
    if not dense.empty:
        right.axhline(dense.mean(), color=DENSE_COLOUR, linestyle="--", linewidth=1, label="dense")
    right.set(title="CKA with English, mean over encoder layers", xlabel="sparsity target (the control: its rung)",
              ylabel="debiased linear CKA")
    _shared_legend([left, right])
    return _save(fig, path)


def plot_alignment_vs_accuracy(
    points: pd.DataFrame, path: str | Path | None = None, methods: list[str] | None = None,
    controls: list[str] | None = None,
):
    """Loss of CKA with English (x) vs loss of accuracy (y): one panel per method, one point per
    model (target), seed and language, coloured by its sparsity target; the same axes in every
    panel. The per-language correlations are in the alignment_vs_accuracy table."""
    controls = controls or []
    palette = _palette(methods, points, controls=controls)
    order = _present(palette, points)
    cmap, norm, targets = _target_colours(points["sparsity_target"])
    fig, axes = _panels(len(order))
    for ax, method in zip(axes, order):
        part = points[points["method"] == method]
        ax.axhline(0, color="grey", linestyle=":", linewidth=0.8)
        ax.axvline(0, color="grey", linestyle=":", linewidth=0.8)
        ax.scatter(part["cka_loss"], part["accuracy_loss"], c=part["sparsity_target"], cmap=cmap, norm=norm,
                   s=9, alpha=0.75, linewidths=0)
        _panel_title(ax, method, palette[method], controls)
    fig.supxlabel("loss of CKA with English (dense minus pruned)")
    fig.supylabel("loss of accuracy (points)")
    fig.suptitle("Cross-lingual alignment vs accuracy (one point per model, seed and language)")
    _target_colorbar(fig, axes, cmap, norm, targets)
    return _save(fig, path)
