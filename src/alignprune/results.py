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


def _order(frame: pd.DataFrame, methods: list[str] | None = None) -> pd.DataFrame:
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
    return _order(table.reset_index(), methods)


def _languages(evals: pd.DataFrame, languages: list[str] | None) -> list[str]:
    """The given (config) order, then any other language found, alphabetically."""
    found = sorted(set(evals["language"]))
    return [l for l in (languages or []) if l in found] + [l for l in found if l not in (languages or [])]


def per_language_table(evals: pd.DataFrame, methods=None, languages=None) -> pd.DataFrame:
    """Mean accuracy over seeds, one column per language."""
    languages = _languages(evals, languages)
    table = evals.pivot_table(index=KEYS, columns="language", values="accuracy", aggfunc="mean")
    return _order(table[languages].reset_index(), methods)


def degradation_table(evals: pd.DataFrame, train_language: str, methods=None, languages=None) -> pd.DataFrame:
    """Dense minus pruned accuracy per language (paired by seed, mean over seeds), and on average."""
    dense = evals[evals["method"] == "dense"].set_index(["seed", "language"])["accuracy"]
    pruned = evals[evals["method"] != "dense"].copy()
    pruned["degradation"] = dense.reindex(
        pd.MultiIndex.from_frame(pruned[["seed", "language"]])
    ).to_numpy() - pruned["accuracy"].to_numpy()
    languages = _languages(evals, languages)
    table = pruned.pivot_table(index=KEYS, columns="language", values="degradation", aggfunc="mean")[languages]
    others = [lang for lang in languages if lang != train_language]
    per_seed = pruned[pruned["language"].isin(others)].groupby(KEYS + ["seed"])["degradation"].mean()
    table["zero_shot_avg"] = per_seed.groupby(KEYS).mean()
    return _order(table.reset_index(), methods)


def _markdown(table: pd.DataFrame, paired: list[str] | None = None) -> str:
    """Markdown, accuracies to one decimal; ``paired`` columns X_mean/X_std print as 'm ± s'."""
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        name = column.removesuffix("_mean")
        if column.endswith("_std") and column.removesuffix("_std") in (paired or []):
            continue
        if name in (paired or []):
            mean, std = table[column], table[f"{name}_std"]
            shown[name] = [f"{m:.1f}" if pd.isna(s) else f"{m:.1f} ± {s:.1f}" for m, s in zip(mean, std)]
        elif column == "sparsity_target":
            shown["sparsity"] = table[column].map("{:.2f}".format)
        elif pd.api.types.is_float_dtype(table[column]):
            shown[column] = table[column].map("{:.1f}".format)
        else:
            shown[column] = table[column].astype(str)
    # numbers are already formatted: keep "0.50" from being printed as "0.5"
    align = ["left"] + ["right"] * (len(shown.columns) - 1)
    return shown.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def write_tables(
    evals_csv,
    outputs,
    *,
    train_language: str,
    split: str,
    methods: list[str] | None = None,
    languages: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """summary / per_language / degradation, each as .csv and .md among ``outputs``."""
    evals = load_evals(evals_csv, split)
    if train_language not in set(evals["language"]):
        raise ValueError(f"{evals_csv}: no evaluation in the training language {train_language!r}")
    tables = {
        "summary": (summary_table(evals, train_language, methods), ["english", "zero_shot"]),
        "per_language": (per_language_table(evals, methods, languages), None),
        "degradation": (degradation_table(evals, train_language, methods, languages), None),
    }
    by_name = {Path(p).name: Path(p) for p in outputs}
    for name, (table, paired) in tables.items():
        with atomic_path(by_name[f"{name}.csv"]) as tmp:
            table.to_csv(tmp, index=False)
        with atomic_path(by_name[f"{name}.md"]) as tmp:
            tmp.write_text(_markdown(table, paired))
    return {name: table for name, (table, _) in tables.items()}
