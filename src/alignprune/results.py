"""From eval files to the study's tables.

Accuracies are reported in points (percent). For each (method, sparsity) a
per-seed English accuracy and a per-seed zero-shot average (mean over every
language but the training language) are computed first, then mean and
standard deviation over seeds (sample std; undefined with one seed).
Degradation is dense minus pruned, paired by seed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import formatting
from .io import atomic_path, read_json

KEYS = ["method", "sparsity_target"]


def collect_evals(files, out_csv: str | Path) -> pd.DataFrame:
    frame = pd.DataFrame([read_json(f) for f in files])
    frame = frame.sort_values(["task", "split", "method", "sparsity_target", "seed", "language"])
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def load_evals(csv: str | Path, split: str) -> pd.DataFrame:
    frame = pd.read_csv(csv)
    frame = frame[frame["split"] == split].copy()
    if frame.empty:
        raise ValueError(f"{csv}: no evaluations on split {split!r}")
    frame["accuracy"] = 100.0 * frame["accuracy"]
    return frame


def order_methods(frame: pd.DataFrame, methods: list[str] | None = None) -> pd.DataFrame:
    """Dense first, then methods in the given (config) order, sparsity ascending."""
    methods = ["dense"] + [m for m in dict.fromkeys([*(methods or []), *frame["method"]]) if m != "dense"]
    frame = frame.assign(_m=frame["method"].map(methods.index))
    return frame.sort_values(["_m", "sparsity_target"]).drop(columns="_m").reset_index(drop=True)


def per_seed_scores(evals: pd.DataFrame, train_language: str) -> pd.DataFrame:
    """English accuracy and zero-shot average per (method, sparsity, seed)."""
    english = evals[evals["language"] == train_language]
    other = evals[evals["language"] != train_language]
    scores = english.groupby(KEYS + ["seed"])["accuracy"].mean().rename("english").to_frame()
    scores["zero_shot"] = other.groupby(KEYS + ["seed"])["accuracy"].mean()
    return scores.reset_index()


def summary_table(evals: pd.DataFrame, train_language: str, methods=None) -> pd.DataFrame:
    scores = per_seed_scores(evals, train_language)
    table = scores.groupby(KEYS).agg(
        english_mean=("english", "mean"),
        english_std=("english", "std"),
        zero_shot_mean=("zero_shot", "mean"),
        zero_shot_std=("zero_shot", "std"),
        seeds=("seed", "nunique"),
    )
    return order_methods(table.reset_index(), methods)


def preferred_order(found, preferred: list[str] | None = None) -> list[str]:
    """What was found in the ``preferred`` (config) order, then anything else found, alphabetically."""
    found = set(found)
    return [x for x in (preferred or []) if x in found] + sorted(found - set(preferred or []))


def per_language_table(evals: pd.DataFrame, methods=None, languages=None) -> pd.DataFrame:
    """Mean accuracy over seeds, one column per language."""
    languages = preferred_order(evals["language"], languages)
    table = evals.pivot_table(index=KEYS, columns="language", values="accuracy", aggfunc="mean")
    return order_methods(table[languages].reset_index(), methods)


def degradation_table(evals: pd.DataFrame, train_language: str, methods=None, languages=None) -> pd.DataFrame:
    """Dense minus pruned accuracy per language (paired by seed, mean over seeds), and on average."""
    dense = evals[evals["method"] == "dense"].set_index(["seed", "language"])["accuracy"]
    pruned = evals[evals["method"] != "dense"].copy()
    pruned["degradation"] = dense.reindex(
        pd.MultiIndex.from_frame(pruned[["seed", "language"]])
    ).to_numpy() - pruned["accuracy"].to_numpy()
    languages = preferred_order(evals["language"], languages)
    table = pruned.pivot_table(index=KEYS, columns="language", values="degradation", aggfunc="mean")[languages]
    others = [lang for lang in languages if lang != train_language]
    per_seed = pruned[pruned["language"].isin(others)].groupby(KEYS + ["seed"])["degradation"].mean()
    table["zero_shot_avg"] = per_seed.groupby(KEYS).mean()
    return order_methods(table.reset_index(), methods)


def gap_table(evals: pd.DataFrame, train_language: str, methods=None) -> pd.DataFrame:
    """The paper's central comparison: supervised vs zero-shot degradation, paired by seed.

    supervised = dense minus pruned accuracy in the training language; zero_shot =
    the same averaged over the other languages; gap = zero_shot minus supervised
    (positive: pruning costs the other languages more than English).
    """
    scores = per_seed_scores(evals, train_language)
    dense = scores[scores["method"] == "dense"].set_index("seed")
    pruned = scores[scores["method"] != "dense"].copy()
    pruned["supervised"] = pruned["seed"].map(dense["english"]) - pruned["english"]
    pruned["zero_shot"] = pruned["seed"].map(dense["zero_shot"]) - pruned["zero_shot"]
    pruned["gap"] = pruned["zero_shot"] - pruned["supervised"]
    table = pruned.groupby(KEYS).agg(
        **{f"{c}_{f}": (c, f) for c in ("supervised", "zero_shot", "gap") for f in ("mean", "std")},
        seeds=("seed", "nunique"),
    )
    return order_methods(table.reset_index(), methods)


def mark_best(table: pd.DataFrame, column: str, higher_is_better: bool = True) -> pd.DataFrame:
    """Add ``best_{name}``: True on the best pruned method of each sparsity (ties: all of them)."""
    name = column.removesuffix("_mean")
    pruned = table["method"] != "dense"
    values = table[column].round(9)  # equal up to float noise counts as a tie
    best = values[pruned].groupby(table.loc[pruned, "sparsity_target"]).transform(
        "max" if higher_is_better else "min"
    )
    table[f"best_{name}"] = False
    table.loc[pruned, f"best_{name}"] = values[pruned] == best
    return table


TABLES = ("summary", "per_language", "degradation", "gap")
FORMATS = ("csv", "md", "tex")


def write_table(
    table: pd.DataFrame, paths: dict[str, Path], paired: list[str] | None = None, digits: int = 1
) -> None:
    """One table as CSV (every number), Markdown and LaTeX (rounded, best cells in bold)."""
    writers = {
        "csv": lambda tmp: table.to_csv(tmp, index=False),
        "md": lambda tmp: tmp.write_text(formatting.markdown(table, paired, digits)),
        "tex": lambda tmp: tmp.write_text(formatting.latex(table, paired, digits)),
    }
    for fmt, path in paths.items():
        with atomic_path(path) as tmp:
            writers[fmt](tmp)


def write_tables(
    evals_csv,
    outputs,
    *,
    train_language: str,
    split: str,
    methods: list[str] | None = None,
    languages: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """summary / per_language / degradation / gap, each as .csv, .md and .tex among ``outputs``.

    Best pruned method per sparsity: highest English and zero-shot accuracy
    (summary) and lowest zero-shot degradation (degradation).
    """
    evals = load_evals(evals_csv, split)
    if train_language not in set(evals["language"]):
        raise ValueError(f"{evals_csv}: no evaluation in the training language {train_language!r}")
    summary = summary_table(evals, train_language, methods)
    summary = mark_best(mark_best(summary, "english_mean"), "zero_shot_mean")
    degradation = degradation_table(evals, train_language, methods, languages)
    degradation = mark_best(degradation, "zero_shot_avg", higher_is_better=False)
    # no "best" gap: a negative gap can come from a collapse in English, not from a good method
    gap = gap_table(evals, train_language, methods)
    tables = {
        "summary": (summary, ["english", "zero_shot"]),
        "per_language": (per_language_table(evals, methods, languages), None),
        "degradation": (degradation, None),
        "gap": (gap, ["supervised", "zero_shot", "gap"]),
    }
    by_name = {Path(p).name: Path(p) for p in outputs}
    for name, (table, paired) in tables.items():
        write_table(table, {fmt: by_name[f"{name}.{fmt}"] for fmt in FORMATS}, paired)
    return {name: table for name, (table, _) in tables.items()}
