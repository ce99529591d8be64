"""The study's figures (PNG), drawn with seaborn from the tidy evaluation table."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402
from .results import degradation_table, per_seed_scores  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
    plt.close(fig)


def method_palette(methods) -> dict[str, tuple]:
    """One colour-blind-safe colour per method, in config order."""
    methods = [m for m in dict.fromkeys(methods) if m != "dense"]
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


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
    palette = method_palette([*(methods or []), *long["method"]])
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


def plot_degradation_heatmap(
    evals: pd.DataFrame, path: str | Path, methods: list[str] | None = None, languages: list[str] | None = None
) -> None:
    """Dense minus pruned accuracy (points), language x sparsity, one panel per method."""
    table = degradation_table(evals, train_language="", methods=methods, languages=languages)
    languages = [c for c in table.columns if c not in ("method", "sparsity_target", "zero_shot_avg")]
    methods = list(dict.fromkeys(table["method"]))
    span = max(1.0, float(table[languages].abs().max().max()))
    fig, axes = plt.subplots(
        1, len(methods), figsize=(3.2 * len(methods) + 1, 0.35 * len(languages) + 2), squeeze=False
    )
    for ax, method in zip(axes[0], methods):
        part = table[table["method"] == method].set_index("sparsity_target")[languages].T
        part.columns = [f"{s:.2f}" for s in part.columns]
        sns.heatmap(
            part, ax=ax, cmap="vlag", center=0, vmin=-span, vmax=span, annot=len(part.columns) <= 10,
            fmt=".0f", annot_kws={"size": 7}, cbar=ax is axes[0][-1],
        )
        ax.set(title=method, xlabel="sparsity", ylabel="language" if ax is axes[0][0] else "")
        ax.tick_params(axis="y", rotation=0)
    fig.suptitle("Degradation: dense minus pruned accuracy (points)")
    _save(fig, path)
