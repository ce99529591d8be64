"""The study's figures, drawn with seaborn, each written as PNG (for the report) and PDF (for papers).

Every figure takes the config's method list, so a method has the same
colour-blind-safe colour in all of them; the dense model is black.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402
from .results import degradation_table, gap_table, per_seed_scores, preferred_order  # noqa: E402

DENSE_COLOUR = "black"


def _save(fig, path: str | Path) -> None:
    """``path`` (.png) and the same figure beside it as .pdf."""
    path = Path(path)
    for target, fmt in ((path, "png"), (path.with_suffix(".pdf"), "pdf")):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=fmt)
    plt.close(fig)


def method_palette(methods) -> dict[str, tuple]:
    """One colour-blind-safe colour per method, in config order."""
    methods = [m for m in dict.fromkeys(methods) if m != "dense"]
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


def _palette(methods, frame: pd.DataFrame, dense: bool = False) -> dict[str, tuple | str]:
    """The config's methods, then any other in ``frame``, each its colour (and dense black)."""
    palette = method_palette([*(methods or []), *frame["method"]])
    return {"dense": DENSE_COLOUR, **palette} if dense else palette


def _present(palette: dict, frame: pd.DataFrame) -> list[str]:
    """Hue order: the palette's methods that ``frame`` holds."""
    return [m for m in palette if m in set(frame["method"])]


def plot_accuracy_vs_sparsity(
    evals: pd.DataFrame, train_language: str, path: str | Path, methods: list[str] | None = None
) -> None:
    """English and zero-shot average accuracy vs sparsity, one line per method (band: sd over seeds)."""
    scores = per_seed_scores(evals, train_language)
    long = scores.melt(
        id_vars=["method", "sparsity_target", "seed"],
        value_vars=["english", "zero_shot"],
        var_name="setting",
        value_name="accuracy",
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    palette = _palette(methods, long)
    titles = {"english": f"Supervised ({train_language})", "zero_shot": "Zero-shot average"}
    for ax, setting in zip(axes, ("english", "zero_shot")):
        part = long[long["setting"] == setting]
        pruned = part[part["method"] != "dense"]
        sns.lineplot(
            data=pruned, x="sparsity_target", y="accuracy", hue="method", palette=palette,
            hue_order=list(palette), marker="o", errorbar="sd", ax=ax,
        )
        dense = part.loc[part["method"] == "dense", "accuracy"].mean()
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label="dense")
        ax.set(title=titles[setting], xlabel="sparsity of prunable weights", ylabel="accuracy (%)")
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_degradation_heatmaps(
    evals: pd.DataFrame, paths: dict[str, str | Path], methods: list[str] | None = None,
    languages: list[str] | None = None,
) -> None:
    """Dense minus pruned accuracy (points), language x sparsity, one file per method in ``paths``;
    one colour scale for all of them, so two methods' files can be compared cell by cell."""
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
        ax.set(title=f"{method}: dense minus pruned accuracy", xlabel="sparsity", ylabel="language")
        ax.tick_params(axis="y", rotation=0)
        _save(fig, path)


def plot_supervised_vs_zero_shot(
    evals: pd.DataFrame, train_language: str, path: str | Path, methods: list[str] | None = None
) -> None:
    """Supervised degradation (x) vs zero-shot degradation (y), one line per method through its
    sparsities; above the diagonal, pruning costs the other languages more than English."""
    gap = gap_table(evals, train_language, methods)
    palette = _palette(methods, gap)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, part in gap.groupby("method", sort=False):
        ax.errorbar(
            part["supervised_mean"], part["zero_shot_mean"], xerr=part["supervised_std"],
            yerr=part["zero_shot_std"], color=palette[method], marker="o", label=method, capsize=2,
        )
    low = min(gap["supervised_mean"].min(), gap["zero_shot_mean"].min(), 0)
    high = max(gap["supervised_mean"].max(), gap["zero_shot_mean"].max(), 1)
    ax.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1, label="equal")
    ax.set(
        xlabel=f"supervised degradation ({train_language}, points)",
        ylabel="zero-shot degradation (average, points)",
        title="Degradation: zero-shot vs supervised",
    )
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_language_bars(
    evals: pd.DataFrame, paths: dict[str, str | Path], methods: list[str] | None = None,
    languages: list[str] | None = None,
) -> None:
    """Accuracy per language at one sparsity (one file per target in ``paths``), next to the dense
    model; error bars: sd over seeds."""
    palette = _palette(methods, evals, dense=True)
    order = preferred_order(evals["language"], languages)
    for target, path in paths.items():
        part = evals[(evals["method"] == "dense") | (evals["sparsity_target"].round(2) == float(target))]
        hue_order = _present(palette, part)
        fig, ax = plt.subplots(figsize=(0.25 * len(order) * len(hue_order) + 3, 4))
        sns.barplot(
            data=part, x="language", y="accuracy", hue="method", order=order, hue_order=hue_order,
            palette=palette, saturation=1.0, errorbar="sd", ax=ax,
        )
        ax.set(title=f"Accuracy per language at sparsity {float(target):.2f}", ylabel="accuracy (%)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _save(fig, path)


def plot_weight_alignment(weights: pd.DataFrame, path: str | Path, methods: list[str] | None = None) -> None:
    """Mean unit cosine with the dense weights: per encoder layer at the highest sparsity (left),
    and over all prunable matrices vs sparsity (right); bands: sd over seeds."""
    palette = _palette(methods, weights)
    hue_order = _present(palette, weights)
    highest = weights["sparsity_target"].max()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    by_layer = weights[weights["sparsity_target"] == highest]
    by_layer = by_layer.groupby(["method", "seed", "layer"])["mean_cosine"].mean().reset_index()
    sns.lineplot(data=by_layer, x="layer", y="mean_cosine", hue="method", palette=palette,
                 hue_order=hue_order, marker="o", errorbar="sd", ax=left)
    left.set(title=f"Per encoder layer (sparsity {highest:.2f})", ylabel="mean cosine of units with dense")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(fontsize=8)
    per_seed = weights.groupby(["method", "sparsity_target", "seed"])["mean_cosine"].mean().reset_index()
    sns.lineplot(data=per_seed, x="sparsity_target", y="mean_cosine", hue="method", palette=palette,
                 hue_order=hue_order, marker="o", errorbar="sd", ax=right)
    right.axhline(1.0, color=DENSE_COLOUR, linestyle="--", linewidth=1, label="dense")
    right.set(title="Over all prunable matrices", xlabel="sparsity of prunable weights",
              ylabel="mean cosine of units with dense")
    right.legend(fontsize=8)
    fig.suptitle("Weight alignment with the dense model")
    _save(fig, path)


def plot_representation_alignment(
    layers: pd.DataFrame, path: str | Path, methods: list[str] | None = None
) -> None:
    """Linear CKA with English: per layer at the highest sparsity (left), and over encoder layers
    vs sparsity (right); averaged over languages, dense model in black."""
    palette = _palette(methods, layers, dense=True)
    highest = layers["sparsity_target"].max()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    by_layer = layers[(layers["method"] == "dense") | (layers["sparsity_target"] == highest)]
    per_seed = by_layer.groupby(["method", "seed", "layer"])["cka"].mean().reset_index()
    sns.lineplot(
        data=per_seed, x="layer", y="cka", hue="method", palette=palette,
        hue_order=_present(palette, per_seed), marker="o", errorbar="sd", ax=left,
    )
    left.set(title=f"CKA with English per layer (sparsity {highest:.2f})", ylabel="linear CKA",
             xlabel="layer (0: embeddings)")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(fontsize=8)
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
    right.set(title="CKA with English, mean over encoder layers", xlabel="sparsity of prunable weights",
              ylabel="linear CKA")
    right.legend(fontsize=8)
    _save(fig, path)


def plot_alignment_vs_accuracy(points: pd.DataFrame, path: str | Path, methods: list[str] | None = None) -> None:
    """Loss of CKA with English (x) vs loss of accuracy (y), one point per pruned model, seed and
    language."""
    palette = _palette(methods, points)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    sns.scatterplot(
        data=points, x="cka_loss", y="accuracy_loss", hue="method", style="language", palette=palette,
        hue_order=_present(palette, points), ax=ax,
    )
    ax.set(xlabel="loss of CKA with English (dense minus pruned)", ylabel="loss of accuracy (points)",
           title="Cross-lingual alignment vs accuracy")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)
