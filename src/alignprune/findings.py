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
   test sets' sizes; for the mean, the mean of its languages' errors) has no share. The two rows
   are read together (as claim 3's correlations, below): the zero-shot margin is the smaller, so
   equal points lost make the shares row positive, and equal shares make the points row negative.
2. The alignment regularizers reduce that: per regularized method and target, its drop minus the
   drop of the unregularized method of the same criterion and scope, zero-shot and English, and
   the same for claim 1's excess (zero-shot drop - English drop), which is what "reduce that"
   asks: a regularizer that spares every language alike lowers both drops and not the excess.
   Supported when < 0. A verdict on the excess stands only where the zero-shot drop moved its
   way: one that costs English more lowers the excess and spares no one. (l2 is the classic
   baseline, not one of the paper's two; its rows say so.)
3. Degradation differs by language: the spread of the per-language zero-shot drops (max - min,
   shown without an interval: it is never below 0; verdict from a repeated-measures F-test of
   language x seed with the Greenhouse-Geisser correction, supported when p < 0.05, else
   inconclusive, and none with fewer seeds than languages, where the correction leaves it almost
   no power),
   and whether the drops follow the dense model's transfer: Spearman correlation
   over languages between dense retention (acc - chance) / (acc_en - chance) and drop, per seed;
   supported when < 0 (the languages that transfer worst lose most), contradicted when > 0, by a
   permutation test of the mean over seeds (the languages' labels shuffled, one shuffle for all
   seeds: the languages are the units; p < 0.05, so at least 4 languages): a correlation over a
   few languages takes a handful of values, where a t-interval can have width 0. And the same
   with each drop a share of that language's control accuracy above
   chance: in points a language near chance has little to lose, so the drops rise with retention
   whatever pruning does (a floor); in shares they need not. Each has its own null: every language
   losing the same points (the correlation in shares is then < 0), or the same share of its
   margin (the one in points is then > 0), where the drops are positive and the control's margins
   rank the languages as dense retention does. So the two are read together: a verdict stands
   where both give it, else the row says "inconclusive (... in points, ... in shares: read
   together)". A language whose control is within two binomial standard errors of chance on a
   seed has no share there; a seed with fewer than 3 languages left, or whose values do not
   differ, has no correlation; a seed without its dense model is left out.

4. Not a claim of the paper but a check that claim 2's test needs: did the regularizer act on
   what it penalises? Per regularized method and target, from the weight-alignment files (M the
   pruned model's non-zeros, W0 the dense weights), regularized minus unregularized, paired by
   seed, each the mean over the prunable matrices measured in both models: for Frobenius and l2
   the kept weights' change |W - M*W0|_F / |M*W0|_F (percent), for cosine, which penalises
   direction alone, their turn 1 - kept cosine (per mille); supported when < 0 (the kept weights
   stayed closer). A regularizer too weak to move the weights leaves claim 2 untested whatever its
   accuracy rows say. Measured after the rung's last step, which is the same for both models
   (the prune job measures it before model selection takes the model back to its best English-dev
   step): the saved models' kept steps can differ, and a model kept earlier moved less. On the
   ladder a rung starts from the kept model of the one before, so the detail names the seeds whose
   models kept different steps at a target before. Without the last step's measures (models made
   by older code, methods aligned to the pretrained model) the measure is the kept steps', the
   detail says so and names the seeds whose kept steps differ there. Only with the alignment
   analysis on (``weights``).

Each row has its test's p (t-test, permutation or F) and Holm's adjustment over the rows with a p
of claims 1-3; claim 4's rows, a check and not a claim, are adjusted among themselves (adding them
does not change the claims' adjusted p). The verdicts below are each at 0.05; the adjusted p says
which hold family-wise.

Verdict: supported / contradicted when the interval lies on one side of 0, inconclusive when it
spans 0, "inconclusive (1 seed)" when there is one seed and "inconclusive (no spread over seeds:
no interval)" when every seed gives the same value. Every target a compared method was
evaluated at gets its rows ("not tested" where they share no seed). Which methods are the
control, magnitude pruning and its regularized variants comes from their config fields
(criterion, scope, regularizer, weight), never from their names.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .analysis import collect_weight_alignment
from .chosen_weights import regularized, unregularized_bases
from .criteria import NO_PRUNING
from .io import atomic_path
from .results import (chance_accuracy, code_versions, code_warning, dense_retention, load_evals, per_seed_scores,
                      preferred_order)

log = logging.getLogger(__name__)

LEVEL = 0.95
# decimals values are compared at: equal values that went through different float subtractions
# differ by ~1e-14, real differences of accuracies in points are >= 1e-3
DECIMALS = 9
PERMUTATIONS = 10_000  # draws of the correlations' permutation test (fixed seed: the table is reproducible)
PAPER_REGULARIZERS = ("cosine", "frobenius")  # the paper's two; l2 is the classic baseline
STATEMENTS = {
    1: "magnitude pruning degrades zero-shot languages more than English",
    2: "the alignment regularizers reduce the degradation",
    3: "degradation differs by language and follows the dense model's transfer",
    4: "the alignment regularizers hold the kept weights closer to the dense ones (a check that they acted, "
       "not a claim of the paper)",
}
CHECK = 4  # the claim number of the check rows: their own Holm family
COLUMNS = [
    "claim", "statement", "method", "compared_with", "target", "measure", "seeds",
    "mean", "ci_low", "ci_high", "p", "p_holm", "verdict", "detail",
]


def t_interval(values) -> tuple[int, float, float, float, float]:
    """(n, mean, low, high, p): the 95% t-interval of the mean and the two-sided p of the t-test
    of mean 0 that it inverts (the interval excludes 0 exactly where p < 0.05); low, high and p
    NaN with one value, or with values that do not differ (a t-interval of width 0 would claim a
    certainty that a few seeds cannot give, e.g. a rank correlation over 3 languages, which takes
    4 values)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(values.mean())
    # rounded: equal values that went through different float subtractions are still equal
    if n == 1 or np.ptp(np.round(values, DECIMALS)) == 0:
        return n, mean, math.nan, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    p = float(stats.ttest_1samp(values, 0.0).pvalue)
    return n, mean, mean - half, mean + half, p


def holm(p: pd.Series) -> pd.Series:
    """Holm's step-down adjustment of the p-values (NaN: no test, left out of the family): a
    verdict whose adjusted p is < 0.05 holds at a family-wise 0.05 over the table's tests, under
    any dependence between them. Written out (five lines) rather than adding statsmodels for it."""
    tested = p.dropna().sort_values(kind="stable")
    m = len(tested)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * tested.to_numpy()))
    return pd.Series(adjusted, index=tested.index).reindex(p.index)


def verdict(n: int, low: float, high: float, expected: int) -> str:
    """``expected``: the sign (+1 or -1) the claim predicts for the measure."""
    if n == 0:
        return "not tested (no paired seeds)"
    if n == 1:
        return "inconclusive (1 seed)"
    if math.isnan(low):
        return "inconclusive (no spread over seeds: no interval)"
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
    n, mean, low, high, p = t_interval(values)
    row = {
        "claim": claim, "statement": STATEMENTS[claim], "method": method, "compared_with": compared_with,
        "target": target, "measure": measure, "seeds": n, "mean": mean, "ci_low": low, "ci_high": high,
        "p": p, "p_holm": math.nan, "verdict": verdict(n, low, high, expected), "detail": detail,
    }
    return row | override


def _fixed(value: float, digits: int) -> str:
    """``value`` at ``digits`` decimals, without the sign of a value that rounds to 0 ("-0.0")."""
    return f"{round(value, digits) + 0.0:.{digits}f}"


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


def _paired_by_seed(retention: pd.DataFrame, values: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(retention, values): seeds (rows of ``values``) x its languages, as arrays, NaN where a
    seed lacks one; rounded, so that two drops equal in points (accuracies are multiples of
    1/n) tie, not ranked by the float error of their subtractions."""
    paired = retention.reindex(index=values.index, columns=values.columns)
    return paired.to_numpy(dtype=float).round(DECIMALS), values.to_numpy(dtype=float).round(DECIMALS)


def _centred_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks (ties: average ranks, as scipy's) minus their mean: Spearman's rho is the cosine of
    two of these."""
    ranks = stats.rankdata(x)
    return ranks - ranks.mean()


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho over the languages that have both values; NaN with fewer than 3 such
    languages, or where either side does not differ."""
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    rx, ry = _centred_ranks(x), _centred_ranks(y)
    return float(rx @ ry / math.sqrt((rx @ rx) * (ry @ ry)))


def _mean_spearman(retention: np.ndarray, values: np.ndarray) -> float:
    """Mean over the seeds that have a correlation (NaN where none has)."""
    rho = [_spearman(r, v) for r, v in zip(retention, values)]
    rho = [r for r in rho if not math.isnan(r)]
    return sum(rho) / len(rho) if rho else math.nan


def _permutation_p(retention: np.ndarray, values: np.ndarray) -> float:
    """Two-sided p-value of the mean Spearman correlation over seeds, under the null that the
    languages' values owe nothing to their retention: the languages' labels are shuffled, one
    shuffle for every seed at once. The languages are the units, the same on every seed: a
    language that loses more on every seed for reasons of its own moves every seed's
    correlation together, and shuffling each seed apart would count those as independent
    evidence (a 6-language, 3-seed null with such effects rejected 10-27% of the time at 0.05;
    this test 3-5%). So the smallest p is 1 / k! for k languages, 2 / k! where the dense
    retention or the values rank the languages alike on every seed (then the reversed labelling
    ties): 3 languages can never give a verdict (1/6), 4 only where neither does (1/24), 5 can
    (2/120). Exact, over every ordering, where they number at
    most PERMUTATIONS; else PERMUTATIONS random shuffles, with the observed one counted (p = (1 +
    as extreme) / (1 + draws)).
    (Written here: scipy's permutation_test shuffles one sample's values, not the labels of
    several samples' values at once.) Its verdict replaces the t-interval's for correlations,
    which take a handful of values over a few languages (4 over 3), where a t-interval can have
    width 0 or cover impossible values."""
    observed = _mean_spearman(retention, values)
    k = values.shape[1]
    if math.factorial(k) <= PERMUTATIONS:
        orders, counted = np.array(list(itertools.permutations(range(k)))), 0
    else:
        rng = np.random.default_rng(0)
        orders, counted = np.array([rng.permutation(k) for _ in range(PERMUTATIONS)]), 1
    total, seeds = np.zeros(len(orders)), np.zeros(len(orders))
    for r, v in zip(retention, values):
        if np.isnan(r).any() or np.isnan(v).any():  # which languages have both moves with the order
            rho = np.array([_spearman(r, v[order]) for order in orders])
        elif math.isnan(_spearman(r, v)):  # no correlation in any order: too few languages, or constant
            continue
        else:  # the ranks of reordered values are the reordered ranks: every order at once
            rx, ry = _centred_ranks(r), _centred_ranks(v)
            rho = ry[orders] @ rx / math.sqrt((rx @ rx) * (ry @ ry))
        has = ~np.isnan(rho)
        total[has] += rho[has]
        seeds[has] += 1
    null = total[seeds > 0] / seeds[seeds > 0]  # an ordering that leaves no seed a correlation counts for nothing
    extreme = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return (counted + extreme) / (counted + len(null))


def _correlation_row(method, control, target, measure, retention, values, detail) -> dict:
    """A claim-3 correlation row: mean Spearman over seeds, its t-interval (clipped to [-1, 1];
    none without spread) and a verdict from the permutation test (supported when < 0)."""
    paired_retention, paired_values = _paired_by_seed(retention, values)
    rho = [_spearman(r, v) for r, v in zip(paired_retention, paired_values)]
    row = _row(3, method, control, target, measure, rho, -1, detail)
    row["ci_low"], row["ci_high"] = max(row["ci_low"], -1.0), min(row["ci_high"], 1.0)
    n = row["seeds"]
    if n == 0 and len(rho):
        row["verdict"] = "not tested (on no seed 3 languages with values that differ)"
    elif n >= 2:
        p = _permutation_p(paired_retention, paired_values)
        row["p"] = p
        row["detail"] += f"; permutation p = {p:.3g} (languages shuffled)"
        row["verdict"] = ("inconclusive" if p >= 1 - LEVEL else "supported" if row["mean"] < 0 else "contradicted")
    return row


def _read_together(in_points: dict, in_shares: dict) -> None:
    """A measure in points and its twin in shares of the margin above chance stand or fall
    together. Each has its own null: languages losing the same points lose unequal shares (the
    smaller margin a larger one), and the same shares unequal points. So claim 1 in shares is
    positive, and claim 3's correlation in shares negative, where every language loses the same
    points; claim 1 in points is negative, and claim 3's correlation in points positive, where every
    language loses the same share. A verdict stands only where both give it; where the other
    does not, a row says inconclusive and what each found."""
    points, shares = in_points["verdict"], in_shares["verdict"]
    if points != shares:
        found = f"{points.split(' (')[0]} in points, {shares.split(' (')[0]} in shares"
        for row in (in_points, in_shares):
            if row["verdict"] in ("supported", "contradicted"):
                row["verdict"] = f"inconclusive ({found}: read together)"


def _repeated_measures_f(drops: pd.DataFrame) -> tuple[float, float, float, float]:
    """One-way repeated-measures ANOVA of the drops (rows: seeds, columns: languages): F, its p,
    the Greenhouse-Geisser epsilon and the p with both degrees of freedom times epsilon. The
    uncorrected F assumes sphericity (every pair of languages' differences equally variable over
    seeds), which languages that vary by 3 points over seeds beside others that vary by 8 break,
    and then rejects too often; epsilon (1 under sphericity, 1 / (k - 1) at worst) takes it back.
    With fewer seeds n than languages k the covariance it is estimated from has rank n - 1 and
    epsilon <= (n - 1) / (k - 1), sphericity or not: the caller gives no verdict there."""
    # rounded as the paired differences are: drops equal in exact arithmetic differ by ~1e-14 in
    # floats, and an F-test of that residue alone can come out "significant"
    values = drops.dropna().to_numpy(dtype=float).round(DECIMALS)
    n, k = values.shape
    if n < 2 or k < 2:
        return math.nan, math.nan, math.nan, math.nan
    grand = values.mean()
    between = n * ((values.mean(axis=0) - grand) ** 2).sum()
    residual = values - values.mean(axis=1, keepdims=True) - values.mean(axis=0, keepdims=True) + grand
    error = (residual**2).sum()
    df1, df2 = k - 1, (k - 1) * (n - 1)
    if error < 1e-12:
        # no seed-to-seed variation to test against: as a t-interval of width 0, no test (a p of 0
        # would claim a certainty that a few seeds cannot give)
        return math.nan, math.nan, math.nan, math.nan
    f = (between / df1) / (error / df2)
    # epsilon = tr(S)^2 / ((k - 1) tr(S^2)), S the covariance of k - 1 orthonormal contrasts
    contrasts = np.linalg.qr(np.eye(k) - 1 / k)[0][:, : k - 1]
    s = contrasts.T @ np.cov(values, rowvar=False) @ contrasts
    epsilon = float(np.trace(s) ** 2 / (df1 * np.trace(s @ s)))
    return float(f), float(stats.f.sf(f, df1, df2)), epsilon, float(stats.f.sf(f, epsilon * df1, epsilon * df2))


def _targets(evals: pd.DataFrame, *methods: str) -> list[float]:
    """Every target any of ``methods`` was evaluated at: each gets its rows, "not tested" where
    the methods compared share no seed there."""
    return sorted(set(evals.loc[evals["method"].isin(methods), "sparsity_target"]))


#: Claim 4's measure per regularizer, what its penalty above its floor grows with (alignment.py):
#: (column of the weight files, per-matrix transform, unit, name). Frobenius and l2 penalise the
#: kept weights' distance from M*W0; cosine their direction alone (a kept unit may grow or shrink
#: unpenalised), so its row measures the turn, 1 - kept cosine, in per mille (0.9987: 1.3).
KEPT_MEASURES = {
    "cosine": ("kept_cosine", lambda c: 1000 * (1 - c), "per mille points", "1 - kept cosine (per mille)"),
}
KEPT_CHANGE = ("kept_change", lambda c: 100 * c, "percent points", "|W - M*W0| / |M*W0| (percent)")


def _paired_weights(weights: pd.DataFrame, method: str, baseline: str, column: str, transform) -> pd.DataFrame:
    """Per (sparsity_target, seed): the mean over the prunable matrices measured in both models
    (a matrix with nothing kept has no kept measure: it is left out of both means) of ``column``
    transformed, for the method and its baseline, and the seeds' kept and last steps."""
    keys = ["sparsity_target", "seed", "parameter"]
    pair = weights[weights["method"] == method].merge(weights[weights["method"] == baseline], on=keys,
                                                      suffixes=("", "_baseline"))
    pair = pair.dropna(subset=[column, f"{column}_baseline"])
    pair = pair.assign(value=transform(pair[column]), value_baseline=transform(pair[f"{column}_baseline"]))
    steps = [c for c in ("kept_step", "kept_step_baseline", "last_step") if c in pair]
    return pair.groupby(["sparsity_target", "seed"]).agg(
        value=("value", "mean"), value_baseline=("value_baseline", "mean"),
        **{c: (c, "first") for c in steps}).reset_index()


def _step_note(paired: pd.DataFrame, target: float, at_last_step: bool, ladder: bool) -> str:
    """Seeds whose two models kept different retraining steps at this target or one before it
    (on the ladder each rung starts from the one before's kept model): there the measure also
    counts retraining steps, not only the regularizer. Measured after the rung's last step, this
    target's own kept steps do not enter: only those of the targets before (the start models),
    and on the independent schedule (every rung from the dense model) none."""
    if "kept_step" not in paired or "kept_step_baseline" not in paired or (at_last_step and not ladder):
        return ""
    targets = paired["sparsity_target"]
    if at_last_step:
        earlier = paired[targets < target]
    else:
        earlier = paired[(targets <= target) if ladder else (targets == target)]
    earlier = earlier.dropna(subset=["kept_step", "kept_step_baseline"])
    if earlier.empty:
        return ""
    differ = earlier[earlier["kept_step"] != earlier["kept_step_baseline"]]
    seeds = sorted(set(differ["seed"]) & set(paired.loc[paired["sparsity_target"] == target, "seed"]))
    where = ("the targets before" if at_last_step else "this target and those before") if ladder else "this target"
    if not seeds:
        return f"; both kept the same retraining steps on every seed ({where})"
    named = (f"; model selection kept different retraining steps on seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(map(str, seeds))}")
    if at_last_step:
        return named + " at a target before: there the two start models differ in retraining length"
    return named + f" ({'this target or one before' if ladder else 'this target'}): there the retraining differs in length too"


def _weight_rows(weights: pd.DataFrame | None, evals: pd.DataFrame, methods: dict[str, dict],
                 regularized_methods: dict, ladder: bool = True) -> list[dict]:
    """Claim 4: regularized minus unregularized, in what the regularizer penalises, paired by seed;
    after the rung's last step where both models' files have it on every seed (the same step for
    both: what model selection kept does not enter), else at the steps model selection kept."""
    if weights is None:
        return [_untested(CHECK, None, "the alignment analysis is off (analysis.enabled: false): "
                                       "no weight-alignment files")]
    if weights["kept_change"].isna().all():
        return [_untested(CHECK, None, "weight-alignment files written before the kept weights' measures: "
                                       "add --forcerun weight_alignment")]
    rows = []
    for method, baseline in regularized_methods.items():
        if baseline is None:
            continue  # claim 2 has its "not tested" row
        spec = methods[method]
        column, transform, unit, name = KEPT_MEASURES.get(spec["regularizer"], KEPT_CHANGE)
        kept = _paired_weights(weights, method, baseline, column, transform)
        last = (_paired_weights(weights, method, baseline, f"last_{column}", transform)
                if f"last_{column}" in weights else kept.iloc[:0])
        baseline_note = ("" if spec["regularizer"] in PAPER_REGULARIZERS else
                         f"; {spec['regularizer']}: a baseline regularizer, not one of the paper's two")
        evaluated = set(evals.loc[evals["method"].isin([method, baseline]), "seed"])
        for target in _targets(evals, method, baseline):
            part = kept[kept["sparsity_target"] == target]
            part_last = last[last["sparsity_target"] == target]
            at_last_step = len(part_last) > 0 and set(part_last["seed"]) == set(part["seed"])
            if at_last_step:
                part = part_last
            detail = ""
            if len(part):
                ours, theirs = part["value"].mean(), part["value_baseline"].mean()
                relative = f": {100 * (ours / theirs - 1):+.0f}%" if theirs else ""
                if at_last_step:
                    when = f"after the rung's last step ({_steps(part['last_step'])})"
                elif spec.get("reference") == "pretrained":
                    when = ("at the steps model selection kept (aligned to the pretrained model: its prune jobs "
                            "measure no last step against the dense one)")
                else:
                    lacking = sorted(set(part["seed"]) - set(part_last["seed"]))
                    when = (f"at the steps model selection kept (no last step's measures on seed"
                            f"{'s' if len(lacking) > 1 else ''} {', '.join(map(str, lacking))}: models made before "
                            "the prune job took them; rerun those prune jobs to get them)")
                detail = (f"{_fixed(ours, 2)} regularized, {_fixed(theirs, 2)} unregularized (mean over the "
                          f"matrices measured in both, then seeds){relative}; {when}"
                          + _step_note(kept, target, at_last_step, ladder))
                missing = sorted(evaluated - set(part["seed"]))
                if missing:
                    detail += f"; seeds without both weight files left out: {', '.join(map(str, missing))}"
            rows.append(_row(CHECK, method, baseline, target, f"kept weights' {name}: regularized - unregularized ({unit})",
                             part["value"] - part["value_baseline"], -1, (detail + baseline_note).removeprefix("; ")))
    return rows


def _steps(steps: pd.Series) -> str:
    """"step 150", or the range where the seeds' files differ (written under other budgets)."""
    values = sorted({int(step) for step in steps.dropna()})
    if len(values) == 1:
        return f"step {values[0]}"
    return f"steps {values[0]}-{values[-1]}" if values else "step unknown"


def findings_table(
    evals: pd.DataFrame, methods: dict[str, dict], train_language: str, languages: list[str] | None = None,
    weights: pd.DataFrame | None = None, ladder: bool = True,
) -> pd.DataFrame:
    """One row per (claim, method, target, measure); see the module docstring. ``weights``: the
    per-matrix weight-alignment frame (analysis.collect_weight_alignment) for claim 4; None
    where the alignment analysis is off. ``ladder``: the models were pruned on the ladder (each
    rung from the one before), not the independent schedule (each from the dense model)."""
    role = roles(methods)
    control = role["control"]
    missing = {control, "dense"} - set(evals["method"])
    if missing:
        raise ValueError(f"the eval table has no rows of {sorted(missing)}: evaluate them before the findings")
    scores = per_seed_scores(evals, train_language)
    order = preferred_order(evals["language"], languages)
    others = [lang for lang in order if lang != train_language]
    chance = chance_accuracy(evals)
    noise = _chance_noise(evals, train_language, chance)
    rows: list[dict] = []

    # 1. zero-shot drop minus English drop, against the control
    if not role["magnitude"]:
        rows.append(_untested(1, None, "no magnitude method without a regularizer is enabled"))
    for method in role["magnitude"]:
        drops, shares = _drops(scores, control, method), _share_lost(scores, control, method, chance, noise)
        for target in _targets(evals, control, method):
            part = drops[drops["sparsity_target"] == target]
            detail = (f"zero-shot drop {_fixed(part['zero_shot'].mean(), 2)}, English drop {_fixed(part['english'].mean(), 2)} "
                      f"(points, mean over seeds)" if len(part) else "")
            in_points = _row(1, method, control, target, "zero-shot drop - English drop (points)",
                             part["zero_shot"] - part["english"], +1, detail)
            share = shares[shares["sparsity_target"] == target]
            detail = (f"zero-shot {_fixed(share['zero_shot'].mean(), 1)}%, English {_fixed(share['english'].mean(), 1)}% of the "
                      f"control's accuracy above chance lost (mean over seeds)" if len(share) else
                      "the control is within two standard errors of chance on every seed: no share to lose"
                      if len(part) else "")
            in_shares = _row(1, method, control, target, "share lost above chance: zero-shot - English (percent)",
                             share["zero_shot"] - share["english"], +1, detail)
            _read_together(in_points, in_shares)
            rows += [in_points, in_shares]

    # 2. regularized minus unregularized drop: zero-shot, English, and claim 1's excess
    if not role["regularized"]:
        rows.append(_untested(2, None, "no method with a regularizer is enabled"))
    for method, baseline in role["regularized"].items():
        spec = methods[method]
        if baseline is None:
            rows.append(_untested(2, method, f"no unregularized {spec['criterion']} method with scope "
                                             f"{spec['scope']} is enabled"))
            continue
        # (control - regularized) - (control - baseline): paired on the seeds all three share
        drops = _drops(scores, control, method).merge(
            _drops(scores, control, baseline), on=["sparsity_target", "seed"], suffixes=("", "_baseline")
        )
        detail = ("" if spec["regularizer"] in PAPER_REGULARIZERS else
                  f"{spec['regularizer']}: a baseline regularizer, not one of the paper's two")
        for target in _targets(evals, control, method, baseline):
            part = drops[drops["sparsity_target"] == target]
            change = {column: part[column] - part[f"{column}_baseline"] for column in ("zero_shot", "english")}
            for column, name in (("zero_shot", "zero-shot"), ("english", "English")):
                rows.append(_row(2, method, baseline, target, f"{name} drop: regularized - unregularized (points)",
                                 change[column], -1, detail))
            # "reduce that": the excess of claim 1, not each drop alone (a regularizer that spares
            # English and the zero-shot languages alike reduces both drops and not the excess)
            excess = (part["zero_shot"] - part["english"]) - (part["zero_shot_baseline"] - part["english_baseline"])
            row = _row(2, method, baseline, target,
                       "zero-shot drop - English drop: regularized - unregularized (points)", excess, -1, detail)
            # The excess also shrinks where the regularizer spares no zero-shot language and only
            # costs English more: that is no reduction of the zero-shot degradation. A verdict on the
            # excess stands where the zero-shot drop moved the same way (on the mean over seeds).
            # rounded as the paired differences are: changes that cancel over languages leave ~1e-16
            zero_shot = round(float(change["zero_shot"].mean()), DECIMALS) if len(part) else math.nan
            if (row["verdict"] in ("supported", "contradicted")
                    and np.sign(zero_shot) != (-1 if row["verdict"] == "supported" else 1)):
                row["verdict"] = (f"inconclusive ({row['verdict']} by English's drop: the zero-shot drop "
                                  f"{'grew' if zero_shot > 0 else 'shrank' if zero_shot < 0 else 'did not move'}, "
                                  f"{_fixed(zero_shot, 2)} points)")
            rows.append(row)

    # 3. per-language drops: their spread, and their rank correlation with dense retention
    retention = dense_retention(evals, train_language)
    retention = retention[[lang for lang in others if lang in retention.columns]]
    margins = _control_margins(evals, control, others, chance)
    for method in role["magnitude"]:
        by_target = _language_drops(evals, control, method, others)
        for target in _targets(evals, control, method):
            drops = by_target.get(target, pd.DataFrame(columns=others, dtype=float))
            means = drops.mean()
            listed = ", ".join(f"{lang} {_fixed(means[lang], 2)}" for lang in drops.columns)
            f, p_uncorrected, epsilon, p = _repeated_measures_f(drops)
            spread = drops.max(axis=1) - drops.min(axis=1)
            n = int(spread.notna().sum())
            complete = len(drops.dropna())
            test = ("" if math.isnan(p) else f"; repeated-measures F = {f:.3g}, p = {p_uncorrected:.3g}"
                    + ("" if math.isnan(epsilon) else f", Greenhouse-Geisser epsilon = {epsilon:.2f}: p = {p:.3g}"))
            # With fewer seeds than languages the covariance epsilon is estimated from has rank
            # seeds - 1, so epsilon <= (seeds - 1) / (languages - 1) however alike the languages
            # vary: the corrected test then almost never rejects (3 seeds, 6 languages: epsilon <=
            # 0.4; 1 of 2,000 simulated nulls with equal variances, about 10% power at the demo's
            # drops at 0.9, 93% with 6 seeds), and the uncorrected one rejects too often where
            # they vary unalike. From as many seeds as languages on, the corrected test is
            # conservative (6 x 6: 1.9% of nulls) but has power.
            enough_seeds = not math.isnan(p) and complete >= drops.shape[1]
            # a max - min is never below 0, noise alone widens it: no interval, the F-test decides
            rows.append(_row(
                3, method, control, target, "spread of zero-shot drops, max - min over languages (points)",
                spread, +1, f"drops: {listed}{test}" if n else "", ci_low=math.nan, ci_high=math.nan,
                p=p if enough_seeds else math.nan,
                verdict=("not tested (no paired seeds)" if n == 0 else "inconclusive (1 seed)" if n == 1 else
                         "inconclusive (no F-test: fewer than 2 seeds with every language, or drops that do "
                         "not vary from seed to seed)"
                         if math.isnan(p) else
                         f"inconclusive (no F-test verdict: {complete} seeds with every language for "
                         f"{drops.shape[1]} languages; the sphericity correction needs as many seeds as languages)"
                         if not enough_seeds else "supported" if p < 1 - LEVEL else "inconclusive"),
            ))
            # the correlations need the dense model of the seed: a seed without one is left out there
            no_dense = sorted(set(drops.index) - set(retention.index))
            drops = drops.loc[[seed for seed in drops.index if seed in retention.index]]
            n = len(drops)
            left_out = f"; seeds without a dense model left out: {', '.join(map(str, no_dense))}" if no_dense else ""
            kept = retention.loc[drops.index, drops.columns].mean()
            in_points = _correlation_row(
                method, control, target, "Spearman correlation of dense retention and drop over languages",
                retention, drops,
                "dense retention: " + ", ".join(f"{lang} {kept[lang]:.2f}" for lang in drops.columns) + left_out
                if n else "",
            )
            # In points a language near chance cannot lose much, so the drops follow the transfer
            # whatever pruning does; in shares of each language's margin above chance they need not.
            shares = 100 * drops / margins[target].reindex_like(drops) if n else drops
            mean_share = shares.mean()
            listed = ", ".join(f"{lang} {_fixed(mean_share[lang], 1)}%" for lang in shares.columns
                               if not math.isnan(mean_share[lang]))
            # a NaN share is a margin within noise: per_seed_scores refused unpaired languages
            gated = [f"{lang} ({shares[lang].isna().sum()} of {len(shares)} seeds)" for lang in shares.columns
                     if shares[lang].isna().any()]
            in_shares = _correlation_row(
                method, control, target,
                "Spearman correlation of dense retention and share lost above chance over languages",
                retention, shares,
                f"share lost (mean over seeds): {listed or 'none'}" + (
                    "; left out where the control is within two standard errors of chance: " + ", ".join(gated)
                    if gated else "") + left_out if n else "",
            )
            _read_together(in_points, in_shares)
            rows += [in_points, in_shares]
    if role["regularized"]:
        rows += _weight_rows(weights, evals, methods, role["regularized"], ladder)
    table = pd.DataFrame(rows, columns=COLUMNS)
    # two families: the claims', and the check's (which says whether claim 2 was put to the test)
    p, check = table["p"].astype(float), table["claim"] == CHECK
    table["p_holm"] = pd.concat([holm(p[~check]), holm(p[check])]).reindex(table.index)
    return table


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
        "p (Holm)": ["" if pd.isna(p) else f"{p:.2g} ({holm:.2g})" for p, holm in zip(table["p"], table["p_holm"])],
        "verdict": table["verdict"],
        "detail": table["detail"].fillna(""),
    })
    claims = "\n".join(f"{n}. {text}" for n, text in STATEMENTS.items())
    return f"Claims:\n\n{claims}\n\n" + shown.to_markdown(index=False, disable_numparse=True) + "\n"


def multiplicity(table: pd.DataFrame) -> str:
    """The multiplicity caveat with this table's own counts (39 rows in the demo, 198 in the full
    study), and which verdicts hold at a family-wise 0.05 (Holm's p < 0.05), per family."""
    judged = int((~table["verdict"].str.startswith("not tested")).sum())

    def kept(rows: pd.DataFrame) -> tuple[int, str]:
        tested = rows.dropna(subset=["p_holm"])
        held = tested[(tested["p_holm"] < 1 - LEVEL) & tested["verdict"].isin(["supported", "contradicted"])]
        listed = "; ".join(f"claim {r.claim} {r.method} {_fixed(r.target, 2)} {r.measure}: {r.verdict}"
                           for r in held.itertuples())
        return len(tested), (f"{len(held)} verdict{'' if len(held) == 1 else 's'} at a family-wise 0.05: {listed}."
                             if listed else "no verdict at a family-wise 0.05.")

    check = table["claim"] == CHECK
    claims, claims_kept = kept(table[~check])
    text = (f"{judged} rows judged, each verdict at 0.05 with no correction for their number: where nothing "
            f"is true, about 1 in 20 would still give one. Over the {claims} rows of claims 1-3 with a p, Holm's "
            f"correction (the p in brackets) keeps {claims_kept}")
    checks, checks_kept = kept(table[check])
    if checks:
        text += (f" Claim {CHECK} (a check, not a claim) is corrected over its own {checks} rows with a p: "
                 f"it keeps {checks_kept}")
    return text


def write_findings(
    evals_csv, outputs, *, methods: dict[str, dict], train_language: str, split: str,
    languages: list[str] | None = None, weight_files: list | None = None, ladder: bool = True,
) -> pd.DataFrame:
    """findings.csv (every number) and findings.md among ``outputs``; claim 4 from
    ``weight_files`` (none: the alignment analysis is off); ``ladder`` as findings_table's."""
    evals = load_evals(evals_csv, split)
    weights = collect_weight_alignment(weight_files) if weight_files else None
    table = findings_table(evals, methods, train_language, languages, weights, ladder)
    by_name = {Path(p).name: Path(p) for p in outputs}
    with atomic_path(by_name["findings.csv"]) as tmp:
        table.to_csv(tmp, index=False)
    # the code of every file read: eval rows and (claim 4) weight-alignment rows
    read = evals if weights is None else pd.concat([evals.reindex(columns=["code"]), weights.reindex(columns=["code"])])
    versions = code_versions(read)
    files = "" if weights is None else f" and {len(weight_files)} weight-alignment files"
    made_by = (f"\nFrom {len(evals)} evaluations{files} made by the code {', '.join(versions)} "
               "(`python -m alignprune.code_version` prints the current one).\n")
    made_by += "\n" + multiplicity(table) + "\n"
    warning = code_warning(read)
    if warning:
        log.warning("%s: %s", evals_csv, warning)
        made_by += f"\n**Warning**: {warning}.\n"
    with atomic_path(by_name["findings.md"]) as tmp:
        tmp.write_text(markdown(table) + made_by)
    for _, row in table.iterrows():
        log.info("claim %s %s %s %s: %s", row["claim"], row["method"], row["target"], row["measure"], row["verdict"])
    return table
