"""The findings table: the seed paper's three claims answered from the eval files.

Every number is a difference paired by seed (the same seed's models, which share their dense
model and, by common random numbers, the data order and dropout of every rung), then a mean and
a 95% t-interval over seeds: mean +- t(0.975, n-1) * sd / sqrt(n). Drops are measured against the
retraining control at the same rung (control minus pruned accuracy, points), so English-only
retraining is not counted as pruning's doing.

1. Magnitude pruning degrades zero-shot languages more than English: per unregularized
   magnitude method and target, (zero-shot drop) - (English drop); supported when > 0. And the
   same in shares: of the control's accuracy above chance, the share the zero-shot mean loses
   minus the share English loses (percent). Points alone cannot show the claim once the
   zero-shot mean nears chance (nothing left to lose, a floor); shares can. A seed whose control,
   in English or in the zero-shot mean, is within two binomial standard errors of chance (on its
   test sets' sizes; for the mean, the mean of its languages' errors) has no share.
2. The alignment regularizers reduce that: per regularized method and target, its drop minus the
   drop of the unregularized method of the same criterion and scope, zero-shot and English;
   supported when < 0.
3. Degradation differs by language: the spread of the per-language zero-shot drops (max - min;
   verdict from a repeated-measures F-test of language x seed: supported when p < 0.05, else
   inconclusive), and whether the drops follow the dense model's transfer: Spearman correlation
   over languages between dense retention (acc - chance) / (acc_en - chance) and drop, per seed;
   supported when < 0 (the languages that transfer worst lose most), contradicted when > 0. And
   the same with each drop a share of that language's control accuracy above chance: in points a
   language near chance has little to lose, so the drops rise with retention whatever pruning
   does (a floor); in shares they need not. Each has its own null: every language losing the
   same points (the correlation in shares is then < 0), or the same share of its margin (the
   one in points is then > 0), where the drops are positive and the control's margins rank the
   languages as dense retention does. A language whose control is within two binomial
   standard errors of chance on a seed has no share there; a seed with fewer than 3 languages
   left has no correlation.

Verdict: supported / contradicted when the interval lies on one side of 0, inconclusive when it
spans 0, "inconclusive (1 seed)" when there is one seed (no interval). Which methods are the
control, magnitude pruning and its regularized variants comes from their config fields
(criterion, scope, regularizer, weight), never from their names.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .chosen_weights import regularized, unregularized_bases
from .criteria import NO_PRUNING
from .io import atomic_path
from .results import code_versions, code_warning, load_evals, per_seed_scores, preferred_order
from .tasks import task_spec

log = logging.getLogger(__name__)

LEVEL = 0.95
STATEMENTS = {
    1: "magnitude pruning degrades zero-shot languages more than English",
    2: "the alignment regularizers reduce the degradation",
    3: "degradation differs by language and follows the dense model's transfer",
}
COLUMNS = [
    "claim", "statement", "method", "compared_with", "target", "measure", "seeds",
    "mean", "ci_low", "ci_high", "verdict", "detail",
]
FORMATS = ("csv", "md")


def t_interval(values) -> tuple[int, float, float, float]:
    """(n, mean, low, high): the 95% t-interval of the mean; low = high = NaN with one value."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n == 1:
        return 1, mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return n, mean, mean - half, mean + half


def verdict(n: int, low: float, high: float, expected: int) -> str:
    """``expected``: the sign (+1 or -1) the claim predicts for the measure."""
    if n == 0:
        return "not tested (no paired seeds)"
    if n == 1:
        return "inconclusive (1 seed)"
    if low > 0 or high < 0:
        return "supported" if (low > 0) == (expected > 0) else "contradicted"
    return "inconclusive"


def roles(methods: dict[str, dict]) -> dict:
    """The control, the unregularized magnitude methods and each regularized method's baseline,
    from the methods' config fields (enabled methods, config order)."""

    controls = [name for name, spec in methods.items() if spec["criterion"] == NO_PRUNING]
    if not controls:
        raise ValueError(
            "the findings measure drops against the retraining control, and no enabled method has "
            f"criterion: {NO_PRUNING}; add one to methods (config.yaml has retrain_only: {{criterion: none}})"
        )
    return {
        "control": controls[0],
        "magnitude": [name for name, spec in methods.items()
                      if spec["criterion"] == "magnitude" and not regularized(spec)],
        "regularized": unregularized_bases(methods),
    }


def _row(claim, method, compared_with, target, measure, values, expected, detail="", **override) -> dict:
    n, mean, low, high = t_interval(values)
    row = {
        "claim": claim, "statement": STATEMENTS[claim], "method": method, "compared_with": compared_with,
        "target": target, "measure": measure, "seeds": n, "mean": mean, "ci_low": low, "ci_high": high,
        "verdict": verdict(n, low, high, expected), "detail": detail,
    }
    return row | override


def _untested(claim, method, reason) -> dict:
    return {**dict.fromkeys(COLUMNS), "claim": claim, "statement": STATEMENTS[claim], "method": method,
            "seeds": 0, "verdict": f"not tested ({reason})"}


def _control_and_method(scores: pd.DataFrame, control: str, method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """English and zero-shot scores of the control and of the method, indexed by (target, seed)."""
    keys = ["sparsity_target", "seed"]
    base = scores[scores["method"] == control].set_index(keys)[["english", "zero_shot"]]
    other = scores[scores["method"] == method].set_index(keys)[["english", "zero_shot"]]
    return base, other


def _drops(scores: pd.DataFrame, control: str, method: str) -> pd.DataFrame:
    """Per (target, seed): control minus method, English and zero-shot (points); seeds paired."""
    base, other = _control_and_method(scores, control, method)
    return (base - other).dropna().reset_index()


def _two_standard_errors(evals: pd.DataFrame, chance: float) -> pd.Series:
    """Per eval row: two binomial standard errors (points) of a model at chance on its test set."""
    n = evals["n_examples"] if "n_examples" in evals.columns else pd.Series(dtype=float)
    if n.empty or n.isna().any() or (n <= 0).any():
        raise ValueError("the eval files lack n_examples (or have none): rerun their evaluation")
    p = chance / 100
    return 200 * np.sqrt(p * (1 - p) / n)


def _chance_noise(evals: pd.DataFrame, train_language: str, chance: float) -> pd.DataFrame:
    """Per (method, target, seed): two binomial standard errors (points) of the English accuracy
    and of the zero-shot mean that a model at chance would show on these test sets; a margin
    above chance no larger than this is not told apart from chance."""
    frame = evals.assign(two_se=_two_standard_errors(evals, chance))
    keys = ["method", "sparsity_target", "seed"]
    english = frame["language"] == train_language
    # The zero-shot mean's standard error is at most the mean of the languages' standard errors,
    # reached when the languages fail the same items: their test sets are translations of one
    # set, so a near-chance model's errors need not be independent across them (the bound for
    # independent sets, sqrt(sum se_i^2) / k, would be sqrt(k) times smaller).
    return pd.DataFrame({
        "english": frame[english].groupby(keys)["two_se"].mean(),
        "zero_shot": frame[~english].groupby(keys)["two_se"].mean(),
    })


def _share_lost(
    scores: pd.DataFrame, control: str, method: str, chance: float, noise: pd.DataFrame
) -> pd.DataFrame:
    """Per (target, seed): the drop as a share of the control's accuracy above chance (percent),
    English and zero-shot. A seed is left out where the control's margin above chance is within
    two standard errors of chance (``noise``) in either, as _drops leaves out a seed either
    model lacks: a margin that could be nothing would make any drop a share in the thousands."""
    base, other = _control_and_method(scores, control, method)
    above = (base - chance).where(base - chance > noise.loc[control].reindex(base.index))
    return (100 * (base - other) / above).dropna().reset_index()


def _language_drops(evals: pd.DataFrame, control: str, method: str, languages: list[str]) -> pd.DataFrame:
    """seed x language table of control minus method accuracy, one per target: {target: frame}."""
    keys = ["sparsity_target", "seed", "language"]
    part = evals[evals["language"].isin(languages)]
    base = part[part["method"] == control].set_index(keys)["accuracy"]
    other = part[part["method"] == method].set_index(keys)["accuracy"]
    drops = (base - other).dropna().unstack("language")
    return {target: frame.droplevel(0)[[l for l in languages if l in frame.columns]]
            for target, frame in drops.groupby(level=0)}


def _control_margins(evals: pd.DataFrame, control: str, languages: list[str], chance: float) -> dict:
    """seed x language table of the control's accuracy above chance, one per target: {target:
    frame}; NaN where that margin is within two standard errors of chance on the language's test
    set (a margin that could be nothing would make any drop a share in the thousands)."""
    part = evals[(evals["method"] == control) & evals["language"].isin(languages)]
    margin = (part["accuracy"] - chance).where(part["accuracy"] - chance > _two_standard_errors(part, chance))
    margins = part.assign(margin=margin).set_index(["sparsity_target", "seed", "language"])["margin"]
    return {target: frame.droplevel(0) for target, frame in margins.unstack("language").groupby(level=0)}


def _spearman_by_seed(retention: pd.DataFrame, values: pd.DataFrame) -> list[float]:
    """Per seed (row of ``values``): Spearman correlation over languages of dense retention and
    the value; NaN with fewer than 3 languages or a constant column."""
    rho = []
    for seed, row in values.iterrows():
        paired = pd.concat([retention.loc[seed, values.columns], row], axis=1).dropna()
        constant = paired.nunique().min() < 2 if len(paired) else True
        rho.append(math.nan if len(paired) < 3 or constant else
                   stats.spearmanr(paired.iloc[:, 0], paired.iloc[:, 1]).statistic)
    return rho


def _correlation_row(method, control, target, measure, rho, detail) -> dict:
    row = _row(3, method, control, target, measure, rho, -1, detail)
    # a correlation lies in [-1, 1]; clipping the interval there changes no verdict
    row["ci_low"], row["ci_high"] = max(row["ci_low"], -1.0), min(row["ci_high"], 1.0)
    return row


def _repeated_measures_f(drops: pd.DataFrame) -> tuple[float, float]:
    """One-way repeated-measures ANOVA of the drops (rows: seeds, columns: languages): F, p."""
    values = drops.dropna().to_numpy(dtype=float)
    n, k = values.shape
    if n < 2 or k < 2:
        return math.nan, math.nan
    grand = values.mean()
    between = n * ((values.mean(axis=0) - grand) ** 2).sum()
    residual = values - values.mean(axis=1, keepdims=True) - values.mean(axis=0, keepdims=True) + grand
    error = (residual**2).sum()
    df1, df2 = k - 1, (k - 1) * (n - 1)
    if error == 0:
        return (math.inf, 0.0) if between > 0 else (math.nan, math.nan)
    f = (between / df1) / (error / df2)
    return float(f), float(stats.f.sf(f, df1, df2))


def _retention(evals: pd.DataFrame, train_language: str, languages: list[str], chance: float) -> pd.DataFrame:
    """Dense model's retention per seed (rows) and zero-shot language (columns)."""
    dense = evals[evals["method"] == "dense"]
    accuracy = dense.pivot_table(index="seed", columns="language", values="accuracy", aggfunc="mean")
    above = accuracy.sub(chance)
    return above[[l for l in languages if l in above.columns]].div(above[train_language], axis=0)


def findings_table(
    evals: pd.DataFrame, methods: dict[str, dict], train_language: str, languages: list[str] | None = None
) -> pd.DataFrame:
    """One row per (claim, method, target, measure); see the module docstring."""
    role = roles(methods)
    control = role["control"]
    missing = {control, "dense"} - set(evals["method"])
    if missing:
        raise ValueError(f"the eval table has no rows of {sorted(missing)}: evaluate them before the findings")
    scores = per_seed_scores(evals, train_language)
    order = preferred_order(evals["language"], languages)
    others = [lang for lang in order if lang != train_language]
    chance = 100.0 / task_spec(evals["task"].iloc[0]).num_labels
    noise = _chance_noise(evals, train_language, chance)
    rows: list[dict] = []

    # 1. zero-shot drop minus English drop, against the control
    if not role["magnitude"]:
        rows.append(_untested(1, None, "no magnitude method without a regularizer is enabled"))
    for method in role["magnitude"]:
        shares = _share_lost(scores, control, method, chance, noise)
        for target, part in _drops(scores, control, method).groupby("sparsity_target"):
            excess = part["zero_shot"] - part["english"]
            detail = (f"zero-shot drop {part['zero_shot'].mean():.2f}, English drop {part['english'].mean():.2f} "
                      f"(points, mean over seeds)")
            rows.append(_row(1, method, control, target, "zero-shot drop - English drop (points)", excess, +1, detail))
            share = shares[shares["sparsity_target"] == target]
            detail = (f"zero-shot {share['zero_shot'].mean():.1f}%, English {share['english'].mean():.1f}% of the "
                      f"control's accuracy above chance lost (mean over seeds)" if len(share) else
                      "the control is within two standard errors of chance on every seed: no share to lose")
            rows.append(_row(1, method, control, target, "share lost above chance: zero-shot - English (percent)",
                             share["zero_shot"] - share["english"], +1, detail))

    # 2. regularized minus unregularized drop, zero-shot and English
    if not role["regularized"]:
        rows.append(_untested(2, None, "no method with a regularizer is enabled"))
    for method, baseline in role["regularized"].items():
        if baseline is None:
            spec = methods[method]
            rows.append(_untested(2, method, f"no unregularized {spec['criterion']} method with scope "
                                             f"{spec['scope']} is enabled"))
            continue
        # (control - regularized) - (control - baseline): paired on the seeds all three share
        drops = _drops(scores, control, method).merge(
            _drops(scores, control, baseline), on=["sparsity_target", "seed"], suffixes=("", "_baseline")
        )
        for target, part in drops.groupby("sparsity_target"):
            for column, name in (("zero_shot", "zero-shot"), ("english", "English")):
                difference = part[column] - part[f"{column}_baseline"]
                rows.append(_row(2, method, baseline, target,
                                 f"{name} drop: regularized - unregularized (points)", difference, -1))

    # 3. per-language drops: their spread, and their rank correlation with dense retention
    retention = _retention(evals, train_language, others, chance)
    margins = _control_margins(evals, control, others, chance)
    for method in role["magnitude"]:
        for target, drops in _language_drops(evals, control, method, others).items():
            means = drops.mean()
            listed = ", ".join(f"{lang} {means[lang]:.2f}" for lang in drops.columns)
            f, p = _repeated_measures_f(drops)
            spread = drops.max(axis=1) - drops.min(axis=1)
            n = int(spread.notna().sum())
            test = "" if math.isnan(p) else f"; repeated-measures F = {f:.3g}, p = {p:.3g}"
            rows.append(_row(
                3, method, control, target, "spread of zero-shot drops, max - min over languages (points)",
                spread, +1, f"drops: {listed}{test}",
                verdict="inconclusive (1 seed)" if n == 1 else ("supported" if p < 0.05 else "inconclusive"),
            ))
            kept = retention.loc[drops.index, drops.columns].mean()
            rows.append(_correlation_row(
                method, control, target, "Spearman correlation of dense retention and drop over languages",
                _spearman_by_seed(retention, drops),
                "dense retention: " + ", ".join(f"{lang} {kept[lang]:.2f}" for lang in drops.columns),
            ))
            # In points a language near chance cannot lose much, so the drops follow the transfer
            # whatever pruning does; in shares of each language's margin above chance they need not.
            shares = 100 * drops / margins[target].reindex_like(drops)
            mean_share = shares.mean()
            listed = ", ".join(f"{lang} {mean_share[lang]:.1f}%" for lang in shares.columns
                               if not math.isnan(mean_share[lang]))
            # a NaN share is a margin within noise: per_seed_scores refused unpaired languages
            left_out = [f"{lang} ({shares[lang].isna().sum()} of {len(shares)} seeds)" for lang in shares.columns
                        if shares[lang].isna().any()]
            rows.append(_correlation_row(
                method, control, target,
                "Spearman correlation of dense retention and share lost above chance over languages",
                _spearman_by_seed(retention, shares),
                f"share lost (mean over seeds): {listed or 'none'}" + (
                    "; left out where the control is within two standard errors of chance: " + ", ".join(left_out)
                    if left_out else ""),
            ))
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown: one interval column, two decimals."""

    def number(value):
        return "" if value is None or pd.isna(value) else f"{value:.2f}"

    shown = pd.DataFrame({
        "claim": table["claim"].astype(str),
        "method": table["method"].fillna(""),
        "compared with": table["compared_with"].fillna(""),
        "target": table["target"].map(number),
        "measure": table["measure"].fillna(""),
        "seeds": table["seeds"].astype(str),
        "mean": table["mean"].map(number),
        "95% interval": [
            "" if pd.isna(low) else f"[{low:.2f}, {high:.2f}]" for low, high in zip(table["ci_low"], table["ci_high"])
        ],
        "verdict": table["verdict"],
        "detail": table["detail"].fillna(""),
    })
    claims = "\n".join(f"{n}. {text}" for n, text in STATEMENTS.items())
    return f"Claims:\n\n{claims}\n\n" + shown.to_markdown(index=False, disable_numparse=True) + "\n"


def write_findings(
    evals_csv, outputs, *, methods: dict[str, dict], train_language: str, split: str,
    languages: list[str] | None = None,
) -> pd.DataFrame:
    """findings.csv (every number) and findings.md among ``outputs``."""
    evals = load_evals(evals_csv, split)
    table = findings_table(evals, methods, train_language, languages)
    by_name = {Path(p).name: Path(p) for p in outputs}
    with atomic_path(by_name["findings.csv"]) as tmp:
        table.to_csv(tmp, index=False)
    versions = code_versions(evals)
    made_by = (f"\nFrom {len(evals)} evaluations made by the code {', '.join(versions)} "
               "(`python -m alignprune.code_version` prints the current one).\n")
    warning = code_warning(evals)
    if warning:
        log.warning("%s: %s", evals_csv, warning)
        made_by += f"\n**Warning**: {warning}.\n"
    with atomic_path(by_name["findings.md"]) as tmp:
        tmp.write_text(markdown(table) + made_by)
    for _, row in table.iterrows():
        log.info("claim %s %s %s %s: %s", row["claim"], row["method"], row["target"], row["measure"], row["verdict"])
    return table
