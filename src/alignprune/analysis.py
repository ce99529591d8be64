"""The alignment analysis as tables: from per-model measurements to one table per question.

- weight alignment: mean unit cosine with the dense weights, per method and sparsity, and the
  kept weights' own cosine and relative change (what pruning alone does not move);
- representational alignment: similarity to English (debiased CKA, centred cosine), per
  method and sparsity, over the encoder layers (the embedding layer is not pruned), beside
  the same measures with the other language's rows shuffled (what no pairing scores);
- alignment vs accuracy: per language, the correlation between the loss of
  alignment (dense minus pruned, paired by seed) and the loss of accuracy
  (dense minus pruned accuracy, from the eval files), within each sparsity target:
  both losses grow with sparsity, so a correlation over all targets at once mostly
  says that, not that the models that keep more alignment keep more accuracy.

Tables per (method, sparsity) give the measured sparsity over the prunable weights and
over all weights beside the target (from the eval files).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .io import read_json
from .results import (FORMATS, KEYS, code_warning, load_evals, order_methods, preferred_order,
                      with_measured_sparsity, write_table)

log = logging.getLogger(__name__)

MEASURES = ["cka", "cosine", "cka_shuffled", "cosine_shuffled"]
#: Decimals the analysis tables print (similarities and correlations: a finer scale than accuracy's).
ANALYSIS_DIGITS = 3
#: The tables write_analysis_tables writes, as .csv, .md and .tex (the workflow's rule takes them from here).
TABLES = ("weight_alignment", "representation_alignment", "alignment_vs_accuracy")

#: The prunable matrices of an XLM-R (BERT-like) layer in the order a layer computes them.
MODULE_ORDER = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")
#: Per-matrix columns of a weight-alignment file and their names in the table (``*_mean``, ``*_std``).
WEIGHT_MEASURES = {"mean_cosine": "cosine", "kept_cosine": "kept_cosine", "kept_change": "kept_change"}


def collect_weight_alignment(files) -> pd.DataFrame:
    frames = [pd.read_csv(f, dtype={"code": str}) for f in files]
    older = [str(f) for f, frame in zip(files, frames) if "kept_cosine" not in frame]
    frame = pd.concat(frames, ignore_index=True)
    if older:  # a mean over the newer files alone would compare other models than the cosine's
        log.warning(f"weight-alignment files written before the kept weights' measures ({len(older)}, e.g. "
                    f"{older[0]}): those columns stay empty; add --forcerun weight_alignment to measure them")
        frame["kept_cosine"] = frame["kept_change"] = float("nan")
    frame["module"] = frame["parameter"].str.replace(r"^.*layer\.\d+\.|\.weight$", "", regex=True)
    return frame


def weight_alignment_table(frame: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Over all prunable matrices (mean ± std over seeds): the mean unit cosine, the kept weights'
    cosine and relative change (a matrix with nothing kept has neither and is left out of their
    means); then the mean unit cosine per module kind."""
    per_seed = frame.groupby(KEYS + ["seed"])[list(WEIGHT_MEASURES)].mean()
    table = per_seed.groupby(KEYS).agg(
        **{f"{name}_{stat}": (column, stat) for column, name in WEIGHT_MEASURES.items() for stat in ("mean", "std")},
        seeds=("mean_cosine", "count"),
    )
    per_module = frame.pivot_table(index=KEYS, columns="module", values="mean_cosine", aggfunc="mean")
    # a layer's order (the weight files list them alphabetically); other modules after, alphabetically
    modules = sorted(set(frame["module"]), key=lambda m: (MODULE_ORDER.index(m) if m in MODULE_ORDER else len(MODULE_ORDER), m))
    return order_methods(table.join(per_module[modules]).reset_index(), methods)


def collect_representation_alignment(files) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-layer measurements of parallel test sets, one row per file with its parallel flag)."""
    records = [read_json(f) for f in files]
    keys = ["task", "seed", "method", "sparsity_target", "split", "language"]
    # "code": absent from files written before code was recorded
    status = pd.DataFrame([{**{k: r[k] for k in [*keys, "parallel", "reason", "n_examples"]}, "code": r.get("code")}
                           for r in records])
    layers = pd.DataFrame(
        [{**{k: r[k] for k in keys}, **layer} for r in records if r["parallel"] for layer in r["layers"]],
        columns=[*keys, "layer", *MEASURES],
    )
    return layers, status


def _encoder_mean(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (model, seed, language): each measure averaged over the encoder layers (1..L)."""
    encoder = layers[layers["layer"] > 0]
    return encoder.groupby(KEYS + ["seed", "language"])[MEASURES].mean().reset_index()


def representation_table(layers: pd.DataFrame, methods=None, languages=None) -> pd.DataFrame:
    """CKA and cosine to English, mean over languages and encoder layers (± std over seeds), each
    beside its shuffled-row baseline (mean); then CKA per language (mean over seeds)."""
    scores = _encoder_mean(layers)
    per_seed = scores.groupby(KEYS + ["seed"])[MEASURES].mean()
    table = per_seed.groupby(KEYS).agg(
        cka_mean=("cka", "mean"), cka_std=("cka", "std"), cka_shuffled=("cka_shuffled", "mean"),
        cosine_mean=("cosine", "mean"), cosine_std=("cosine", "std"),
        cosine_shuffled=("cosine_shuffled", "mean"), seeds=("cka", "count"),
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


def _within(values: pd.Series, groups: list[pd.Series], rank: bool) -> pd.Series:
    """``values`` (or their ranks) minus the mean of their group: what is left within a group."""
    grouped = values.groupby(groups)
    values = grouped.rank() if rank else values
    return values - values.groupby(groups).transform("mean")


def _correlations(part: pd.DataFrame, by: list[str]) -> dict:
    """Pearson and Spearman correlation of alignment loss with accuracy loss within the groups
    ``by`` (the pooled within-group correlation: each value minus its group mean, or each rank
    within its group minus the mean rank); the plain Pearson over every point as well."""
    groups = [part[key] for key in by]
    # each group spends one degree of freedom on its mean; a correlation needs two more
    enough = len(part) - part.groupby(by).ngroups >= 2 if len(part) else False
    row = {"models": len(part), "targets": part["sparsity_target"].nunique()}
    for measure in ("cka", "cosine"):
        x, y = part[f"{measure}_loss"], part["accuracy_loss"]
        nan = float("nan")
        row[f"pearson_{measure}"] = _within(x, groups, False).corr(_within(y, groups, False)) if enough else nan
        row[f"spearman_{measure}"] = _within(x, groups, True).corr(_within(y, groups, True)) if enough else nan
        row[f"pearson_{measure}_pooled"] = x.corr(y) if len(part) > 2 else nan
    return row


def alignment_accuracy_points(layers: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """One row per (pruned model, seed, language): loss of CKA, of cosine and of accuracy."""
    scores = _encoder_mean(layers)
    on = [*KEYS, "seed", "language"]
    losses = [_losses(scores[[*on, "cka"]], "cka"), _losses(scores[[*on, "cosine"]], "cosine"),
              _losses(evals[[*on, "accuracy"]], "accuracy")]
    return losses[0].merge(losses[1], on=on).merge(losses[2], on=on, how="inner")


def alignment_accuracy_table(points: pd.DataFrame, status: pd.DataFrame, languages=None, controls=()) -> pd.DataFrame:
    """Per language: Pearson and Spearman correlation of alignment loss with accuracy loss over
    the pruned models and seeds measured, within each sparsity target (``*_pooled``: over all
    targets at once, for contrast); the row "all" correlates within each (target, language).
    The retraining ``controls`` prune nothing and are left out: within a target the control
    against the pruned models would weigh more than the pruned models among themselves.
    A language whose test set is not parallel says why."""
    points = points[~points["method"].isin(controls)]
    rows = []
    for language in preferred_order(status["language"], languages):
        reasons = status.loc[(status["language"] == language) & ~status["parallel"], "reason"]
        row = {"language": language, "parallel": reasons.empty}
        row.update(_correlations(points[points["language"] == language], ["sparsity_target"]))
        row["note"] = "" if reasons.empty else reasons.iloc[0]
        rows.append(row)
    everything = {"language": "all", "parallel": bool(status["parallel"].all())}
    rows.append({**everything, **_correlations(points, ["sparsity_target", "language"]), "note": ""})
    return pd.DataFrame(rows)


def write_analysis_tables(
    weight_files, representation_files, evals_csv, outputs, *, split: str, methods=None, languages=None, controls=()
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
    # the same check as the tables job's, over every file these tables read
    warning = code_warning(pd.concat([frame.reindex(columns=["code"]) for frame in (weights, status, evals)]))
    if warning:
        log.warning(warning)
    points = alignment_accuracy_points(layers, evals)
    # the measured sparsity of the seeds each table analyses (the analysis runs on fewer seeds)
    weight_evals = evals[evals["seed"].isin(weights["seed"])]
    layer_evals = evals[evals["seed"].isin(layers["seed"])]
    tables = {
        "weight_alignment": (
            with_measured_sparsity(weight_alignment_table(weights, methods), weight_evals),
            list(WEIGHT_MEASURES.values()),
        ),
        "representation_alignment": (
            with_measured_sparsity(representation_table(layers, methods, languages), layer_evals), ["cka", "cosine"]
        ),
        "alignment_vs_accuracy": (alignment_accuracy_table(points, status, languages, controls), None),
    }
    assert tuple(tables) == TABLES
    for name, (table, paired) in tables.items():
        write_table(table, {fmt: by_name[f"{name}.{fmt}"] for fmt in FORMATS}, paired, digits=ANALYSIS_DIGITS)
    write_table(layers, {"csv": by_name["representation_layers.csv"]})
    write_table(points, {"csv": by_name["alignment_points.csv"]})
    return {name: table for name, (table, _) in tables.items()} | {
        "weights": weights, "layers": layers, "points": points
    }
