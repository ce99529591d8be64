"""The alignment analysis as tables: from per-model measurements to one table per question.

- weight alignment: mean unit cosine with the dense weights, per method and sparsity;
- representational alignment: similarity to English (CKA, cosine), per method and
  sparsity, over the encoder layers (the embedding layer is not pruned);
- alignment vs accuracy: per language, the correlation between the loss of
  alignment (dense minus pruned, paired by seed) and the loss of accuracy
  (dense minus pruned accuracy, from the eval files).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import read_json
from .results import FORMATS, KEYS, load_evals, order_methods, preferred_order, write_table

def collect_weight_alignment(files) -> pd.DataFrame:
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    frame["module"] = frame["parameter"].str.replace(r"^.*layer\.\d+\.|\.weight$", "", regex=True)
    return frame


def weight_alignment_table(frame: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Mean unit cosine over all prunable matrices (mean ± std over seeds), and per module kind."""
    per_seed = frame.groupby(KEYS + ["seed"])["mean_cosine"].mean()
    table = per_seed.groupby(KEYS).agg(cosine_mean="mean", cosine_std="std", seeds="count")
    per_module = frame.pivot_table(index=KEYS, columns="module", values="mean_cosine", aggfunc="mean")
    modules = list(dict.fromkeys(frame["module"]))  # model order: query, key, value, ...
    return order_methods(table.join(per_module[modules]).reset_index(), methods)


def collect_representation_alignment(files) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-layer measurements of parallel test sets, one row per file with its parallel flag)."""
    records = [read_json(f) for f in files]
    keys = ["task", "seed", "method", "sparsity_target", "split", "language"]
    status = pd.DataFrame([{k: r[k] for k in [*keys, "parallel", "reason", "n_examples"]} for r in records])
    layers = pd.DataFrame(
        [{**{k: r[k] for k in keys}, **layer} for r in records if r["parallel"] for layer in r["layers"]],
        columns=[*keys, "layer", "cosine", "cka"],
    )
    return layers, status


def _encoder_mean(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (model, seed, language): cosine and CKA averaged over the encoder layers (1..L)."""
    encoder = layers[layers["layer"] > 0]
    return encoder.groupby(KEYS + ["seed", "language"])[["cosine", "cka"]].mean().reset_index()


def representation_table(layers: pd.DataFrame, methods=None, languages=None) -> pd.DataFrame:
    """CKA and cosine to English, mean over languages and encoder layers (± std over seeds);
    then CKA per language (mean over seeds)."""
    scores = _encoder_mean(layers)
    per_seed = scores.groupby(KEYS + ["seed"])[["cka", "cosine"]].mean()
    table = per_seed.groupby(KEYS).agg(
        cka_mean=("cka", "mean"), cka_std=("cka", "std"), cosine_mean=("cosine", "mean"),
        cosine_std=("cosine", "std"), seeds=("cka", "count"),
    )
    per_language = scores.pivot_table(index=KEYS, columns="language", values="cka", aggfunc="mean")
    per_language = per_language[preferred_order(per_language.columns, languages)].add_prefix("cka_")
    return order_methods(table.join(per_language).reset_index(), methods)


def _losses(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Dense minus pruned ``value`` per (method, sparsity, seed, language)."""
    dense = frame[frame["method"] == "dense"].set_index(["seed", "language"])[value]
    pruned = frame[frame["method"] != "dense"].copy()
    index = pd.MultiIndex.from_frame(pruned[["seed", "language"]])
    pruned[f"{value}_loss"] = dense.reindex(index).to_numpy() - pruned[value].to_numpy()
    return pruned.drop(columns=value)


def _correlations(part: pd.DataFrame) -> dict:
    row = {"models": len(part)}
    for measure in ("cka", "cosine"):
        x, y = part[f"{measure}_loss"], part["accuracy_loss"]
        row[f"pearson_{measure}"] = x.corr(y) if len(part) > 2 else float("nan")
        row[f"spearman_{measure}"] = x.rank().corr(y.rank()) if len(part) > 2 else float("nan")
    return row


def alignment_accuracy_points(layers: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """One row per (pruned model, seed, language): loss of CKA, of cosine and of accuracy."""
    scores = _encoder_mean(layers)
    alignment = _losses(scores, "cka").merge(_losses(scores, "cosine"), on=KEYS + ["seed", "language"])
    accuracy = _losses(evals[KEYS + ["seed", "language", "accuracy"]], "accuracy")
    return alignment.merge(accuracy, on=KEYS + ["seed", "language"], how="inner")


def alignment_accuracy_table(points: pd.DataFrame, status: pd.DataFrame, languages=None) -> pd.DataFrame:
    """Per language: Pearson and Spearman correlation of alignment loss with accuracy loss over
    every pruned model and seed measured; a language whose test set is not parallel says why."""
    rows = []
    for language in preferred_order(status["language"], languages):
        reasons = status.loc[(status["language"] == language) & ~status["parallel"], "reason"]
        row = {"language": language, "parallel": reasons.empty}
        row.update(_correlations(points[points["language"] == language]))
        row["note"] = "" if reasons.empty else reasons.iloc[0]
        rows.append(row)
    everything = {"language": "all", "parallel": bool(status["parallel"].all())}
    rows.append({**everything, **_correlations(points), "note": ""})
    return pd.DataFrame(rows)


def write_analysis_tables(
    weight_files, representation_files, evals_csv, outputs, *, split: str, methods=None, languages=None
) -> dict[str, pd.DataFrame]:
    """The three analysis tables as .csv/.md/.tex, plus the per-layer and per-point CSVs the plots use.

    ``outputs`` holds {name}.{csv,md,tex} for each table, representation_layers.csv and
    alignment_points.csv. Returns the tables by name and the frames the figures draw:
    ``weights`` (per matrix), ``layers`` (per layer) and ``points`` (per model and language).
    """
    by_name = {Path(p).name: Path(p) for p in outputs}
    weights = collect_weight_alignment(weight_files)
    layers, status = collect_representation_alignment(representation_files)
    evals = load_evals(evals_csv, split)
    points = alignment_accuracy_points(layers, evals)
    tables = {
        "weight_alignment": (weight_alignment_table(weights, methods), ["cosine"]),
        "representation_alignment": (representation_table(layers, methods, languages), ["cka", "cosine"]),
        "alignment_vs_accuracy": (alignment_accuracy_table(points, status, languages), None),
    }
    for name, (table, paired) in tables.items():
        write_table(table, {fmt: by_name[f"{name}.{fmt}"] for fmt in FORMATS}, paired, digits=3)
    write_table(layers, {"csv": by_name["representation_layers.csv"]})
    write_table(points, {"csv": by_name["alignment_points.csv"]})
    return {name: table for name, (table, _) in tables.items()} | {
        "weights": weights, "layers": layers, "points": points
    }
