"""From eval files to the study's tables.

Accuracies are reported in points (percent). For each (method, sparsity) a
per-seed English accuracy and a per-seed zero-shot average (mean over every
language but the training language) are computed first, then mean and
standard deviation over seeds (sample std; undefined with one seed).
Degradation is dense minus pruned, paired by seed. A retraining control (a method with
criterion none: retrained along the same ladder, nothing pruned) is listed right after the dense
model, never marked best, and splits degradation into what English-only retraining did (dense
minus control) and what pruning did (control minus pruned) in the degradation_split table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from . import formatting
from .code_version import UNRECORDED
from .io import atomic_path, read_json
from .tasks import task_spec

log = logging.getLogger(__name__)

KEYS = ["method", "sparsity_target"]


def collect_evals(files, out_csv: str | Path) -> pd.DataFrame:
    frame = pd.DataFrame([read_json(f) for f in files])
    frame = frame.sort_values(["task", "split", "method", "sparsity_target", "seed", "language"])
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def load_evals(csv: str | Path, split: str) -> pd.DataFrame:
    # digests stay text: one of only decimal digits would otherwise be read as a number
    frame = pd.read_csv(csv, dtype={"code": str, "model_commit": str, "data_commit": str})
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
    """English accuracy and zero-shot average per (method, sparsity, seed).

    Every model must have been evaluated on the same languages: a zero-shot average over fewer
    languages is another quantity, and a paired difference with it would be the languages'
    difference, not the methods'."""
    check_one_accuracy_each(evals)
    check_same_languages(evals, train_language)
    english = evals[evals["language"] == train_language]
    other = evals[evals["language"] != train_language]
    scores = english.groupby(KEYS + ["seed"])["accuracy"].mean().rename("english").to_frame()
    scores["zero_shot"] = other.groupby(KEYS + ["seed"])["accuracy"].mean()
    return scores.reset_index()


def check_one_accuracy_each(evals: pd.DataFrame) -> None:
    """Raise, naming them, where a (model, language) has no accuracy or more than one row: a mean
    would skip the missing one (another language set, as check_same_languages refuses) or
    average the two silently."""
    keys = [*KEYS, "seed", "language"]
    duplicated = evals[evals.duplicated(keys, keep=False)]
    if len(duplicated):
        raise ValueError(f"more than one eval row for {_named(duplicated)}: each model and language is "
                         "evaluated once (two eval files for one model? remove the stale one and rerun the aggregate)")
    missing = evals[evals["accuracy"].isna()]
    if len(missing):
        raise ValueError(f"eval rows without an accuracy: {_named(missing)}. Rerun those models' evaluate jobs")


def _named(rows: pd.DataFrame, limit: int = 5) -> str:
    """The first ``limit`` (model, language) pairs of ``rows``, for an error message."""
    keys = rows[[*KEYS, "seed", "language"]].drop_duplicates()
    listed = "; ".join(f"{r.method} at {r.sparsity_target} seed {r.seed} {r.language}"
                       for r in keys[:limit].itertuples())
    return listed + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def check_same_languages(evals: pd.DataFrame, train_language: str) -> None:
    """Raise, naming the models and languages, where a model lacks an evaluated language."""
    expected = set(evals["language"]) | {train_language}
    have = evals.groupby(KEYS + ["seed"])["language"].agg(frozenset)
    lacking = {key: sorted(expected - languages) for key, languages in have.items() if languages != expected}
    if lacking:
        listed = "; ".join(f"{method} at {target} seed {seed}: {', '.join(langs)}"
                           for (method, target, seed), langs in sorted(lacking.items())[:5])
        more = f" (and {len(lacking) - 5} more models)" if len(lacking) > 5 else ""
        raise ValueError(
            f"models evaluated on different languages would average different zero-shot sets; "
            f"missing evals: {listed}{more}. Evaluate those languages (rerun the models' evaluate "
            f"jobs) or leave the languages out of every model"
        )


def measured_sparsity(evals: pd.DataFrame) -> pd.DataFrame:
    """Per (method, target): measured sparsity in percent over the prunable weights and over all
    weights (embeddings, biases, LayerNorm and the head included), mean over the evaluated models."""
    columns = {"sparsity_prunable": "sparsity_prunable_pct", "sparsity_all": "sparsity_all_pct"}
    missing = sorted(set(columns) - set(evals.columns))
    if missing:
        raise ValueError(f"the eval files lack {missing}: rerun their evaluation to measure sparsity")
    return 100.0 * evals.groupby(KEYS)[list(columns)].mean().rename(columns=columns)


def with_measured_sparsity(table: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """``table`` (with KEYS columns) with the two measured sparsities right after the target."""
    sparsity = measured_sparsity(evals)
    table = table.merge(sparsity.reset_index(), on=KEYS, how="left")
    first = [*KEYS, *sparsity.columns]
    return table[first + [c for c in table.columns if c not in first]]


def summary_table(evals: pd.DataFrame, train_language: str, methods=None) -> pd.DataFrame:
    scores = per_seed_scores(evals, train_language)
    table = scores.groupby(KEYS).agg(
        english_mean=("english", "mean"),
        english_std=("english", "std"),
        zero_shot_mean=("zero_shot", "mean"),
        zero_shot_std=("zero_shot", "std"),
        seeds=("seed", "nunique"),
    )
    return order_methods(with_measured_sparsity(table.reset_index(), evals), methods)


def preferred_order(found, preferred: list[str] | None = None) -> list[str]:
    """What was found in the ``preferred`` (config) order, then anything else found, alphabetically."""
    found = set(found)
    return [x for x in (preferred or []) if x in found] + sorted(found - set(preferred or []))


def per_language_table(evals: pd.DataFrame, methods=None, languages=None) -> pd.DataFrame:
    """Mean accuracy over seeds, one column per language."""
    languages = preferred_order(evals["language"], languages)
    table = evals.pivot_table(index=KEYS, columns="language", values="accuracy", aggfunc="mean")
    return order_methods(table[languages].reset_index(), methods)


def chance_accuracy(evals: pd.DataFrame) -> float:
    """Accuracy (points) of guessing: 100 / the number of labels of the evaluations' task."""
    return 100.0 / task_spec(evals["task"].iloc[0]).num_labels


def dense_accuracy(evals: pd.DataFrame) -> pd.DataFrame:
    """The dense model's accuracy per seed (rows) and language (columns)."""
    dense = evals[evals["method"] == "dense"]
    check_one_accuracy_each(dense)
    return dense.pivot(index="seed", columns="language", values="accuracy")


def dense_retention(evals: pd.DataFrame, train_language: str) -> pd.DataFrame:
    """The dense model's retention r = (acc - chance) / (acc of the training language - chance)
    per seed (rows) and language (columns; the training language's is 1): the share of its margin
    above chance that the fine-tuned model carries to the language."""
    above = dense_accuracy(evals).sub(chance_accuracy(evals))
    return above.div(above[train_language], axis=0)


def dense_transfer_table(evals: pd.DataFrame, train_language: str, languages=None) -> pd.DataFrame:
    """The dense model on each language (the training language first) and seed: accuracy and
    retention (dense_retention), then r's mean and range (max - min) over seeds. What claim 3
    ranks the languages by, per seed, and the profile the demo's testbed is calibrated to (XLM-R
    base on XNLI: r 0.63-0.90)."""
    accuracy = dense_accuracy(evals).T
    retention = dense_retention(evals, train_language).T
    table = pd.concat([accuracy.add_prefix("accuracy_seed"), retention.add_prefix("retention_seed")], axis=1)
    table["retention_mean"] = retention.mean(axis=1)
    table["retention_range"] = retention.max(axis=1) - retention.min(axis=1)
    order = preferred_order(table.index, list(dict.fromkeys([train_language, *(languages or [])])))
    return table.loc[order].rename_axis("language").reset_index()


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


def degradation_split_table(evals: pd.DataFrame, train_language: str, methods=None, controls=()) -> pd.DataFrame:
    """Per pruned method and target, degradation split in two, paired by seed (mean and std over
    seeds): retraining = dense minus control at the same target (what English-only retraining
    did), pruning = control minus pruned (what pruning did); they add up to the degradation.
    English and zero-shot average; without a control, no rows."""
    parts = ("retraining", "pruning")
    columns = [*KEYS, *(f"{s}_{p}_{f}" for s in ("english", "zero_shot") for p in parts for f in ("mean", "std")),
               "seeds"]
    if not controls:
        return pd.DataFrame(columns=columns)
    scores = per_seed_scores(evals, train_language).set_index(["method", "sparsity_target", "seed"])
    dense = scores.loc["dense"].droplevel("sparsity_target")
    control = scores.loc[controls[0]]
    pruned = scores.drop(index=["dense", *controls], level="method").reset_index()
    rows = pruned.merge(control.reset_index(), on=["sparsity_target", "seed"], suffixes=("", "_control"))
    rows = rows.merge(dense.reset_index(), on="seed", suffixes=("", "_dense")).dropna()
    for setting in ("english", "zero_shot"):
        rows[f"{setting}_retraining"] = rows[f"{setting}_dense"] - rows[f"{setting}_control"]
        rows[f"{setting}_pruning"] = rows[f"{setting}_control"] - rows[setting]
    table = rows.groupby(KEYS).agg(
        **{f"{s}_{p}_{f}": (f"{s}_{p}", f) for s in ("english", "zero_shot") for p in parts for f in ("mean", "std")},
        seeds=("seed", "nunique"),
    )
    return order_methods(table.reset_index(), methods)[columns]


#: Decimals the result tables print (write_table), and at which mark_best compares.
TABLE_DIGITS = 1


def mark_best(table: pd.DataFrame, column: str, higher_is_better: bool = True, controls=(),
              digits: int = TABLE_DIGITS) -> pd.DataFrame:
    """Add ``best_{name}``: True on the best pruned method of each sparsity (ties: all of them);
    the dense model and the retraining controls are not pruned methods. Values are compared
    at the ``digits`` the tables print (write_table's): two that print alike tie, so no bold
    cell sits beside one that reads the same."""
    name = column.removesuffix("_mean")
    pruned = ~table["method"].isin(["dense", *controls])
    values = table[column].round(digits)
    best = values[pruned].groupby(table.loc[pruned, "sparsity_target"]).transform(
        "max" if higher_is_better else "min"
    )
    table[f"best_{name}"] = False
    table.loc[pruned, f"best_{name}"] = values[pruned] == best
    return table


TABLES = ("summary", "per_language", "degradation", "gap", "degradation_split", "dense_transfer", "inputs")
FORMATS = ("csv", "md", "tex")
# the tables printed with other than TABLE_DIGITS decimals: retention is a ratio near 1, printed
# to two as the README and the calibration print it
DIGITS = {"dense_transfer": 2}


#: Where an evaluation's inputs came from (``alignprune.hub.provenance``), as eval-file fields.
PROVENANCE = [f"{what}_{field}" for what in ("model", "data") for field in ("source", "revision", "commit")]
#: ... and the code that made its model and evaluated it (``alignprune.code_version``).
INPUT_COLUMNS = [*PROVENANCE, "code"]


def inputs_table(evals: pd.DataFrame) -> pd.DataFrame:
    """Each distinct set of inputs (pretrained model, task data: source, revision asked for,
    commit or digest got; the code digests of the jobs that made the model and evaluated it)
    and how many evaluations used it; more than one row means the inputs or the code changed
    between jobs (e.g. a branch moved between downloads, or a module was edited and only some
    jobs reran), as does a "+" in ``code``. "-": not applicable or not recorded (eval files
    written before inputs were recorded); ``code`` says ``unrecorded`` there instead, as the
    tables job's warning and findings.md do."""
    frame = evals.reindex(columns=INPUT_COLUMNS).astype(object)
    frame["code"] = frame["code"].fillna(UNRECORDED)
    frame = frame.fillna("-")
    return frame.groupby(INPUT_COLUMNS, sort=False).size().rename("evaluations").reset_index()


def code_versions(frame: pd.DataFrame) -> list[str]:
    """The code digests in the ``code`` column of eval rows or of inputs_table, sorted; a row
    without one (written before code was recorded) counts as ``unrecorded``."""
    if "code" not in frame:
        return [UNRECORDED]
    return sorted({version for cell in frame["code"]
                   for version in (cell.split("+") if isinstance(cell, str) else [UNRECORDED])})


def code_warning(frame: pd.DataFrame) -> str | None:
    """A warning when the evaluations (eval rows or inputs_table) were made by more than one
    version of the code, else None."""
    versions = code_versions(frame)
    if len(versions) < 2:
        return None
    return (f"the evaluations were made by {len(versions)} versions of the code ({', '.join(versions)}; "
            "the inputs table says which): rerun the stale jobs with --forcerun <rule or file>, "
            "or ignore this if the edits changed no result")


def write_table(
    table: pd.DataFrame, paths: dict[str, Path], paired: list[str] | None = None, digits: int = TABLE_DIGITS
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
    controls: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """summary / per_language / degradation / gap / degradation_split / dense_transfer / inputs,
    each as .csv, .md and .tex among ``outputs``.

    Best pruned method per sparsity: highest English and zero-shot accuracy
    (summary) and lowest zero-shot degradation (degradation). ``controls``: the retraining
    controls among ``methods`` (listed after dense, never best).
    """
    evals = load_evals(evals_csv, split)
    if train_language not in set(evals["language"]):
        raise ValueError(f"{evals_csv}: no evaluation in the training language {train_language!r}")
    controls = [c for c in controls or [] if c in set(evals["method"])]
    methods = [*controls, *(m for m in methods or [] if m not in controls)]
    summary = summary_table(evals, train_language, methods)
    summary = mark_best(mark_best(summary, "english_mean", controls=controls), "zero_shot_mean", controls=controls)
    degradation = degradation_table(evals, train_language, methods, languages)
    degradation = mark_best(degradation, "zero_shot_avg", higher_is_better=False, controls=controls)
    # no "best" gap: a negative gap can come from a collapse in English, not from a good method
    gap = gap_table(evals, train_language, methods)
    inputs = inputs_table(evals)
    warning = code_warning(inputs)
    if warning:
        log.warning("%s: %s", evals_csv, warning)
    tables = {
        "inputs": (inputs, None),
        "dense_transfer": (dense_transfer_table(evals, train_language, languages), None),
        "summary": (summary, ["english", "zero_shot"]),
        "per_language": (per_language_table(evals, methods, languages), None),
        "degradation": (degradation, None),
        "gap": (gap, ["supervised", "zero_shot", "gap"]),
        "degradation_split": (
            degradation_split_table(evals, train_language, methods, controls),
            [f"{s}_{p}" for s in ("english", "zero_shot") for p in ("retraining", "pruning")],
        ),
    }
    by_name = {Path(p).name: Path(p) for p in outputs}
    for name, (table, paired) in tables.items():
        write_table(table, {fmt: by_name[f"{name}.{fmt}"] for fmt in FORMATS}, paired, DIGITS.get(name, TABLE_DIGITS))
    return {name: table for name, (table, _) in tables.items()}
