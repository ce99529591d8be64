"""The findings table, built from fabricated eval rows whose answers are known: for every claim one
case supported, one contradicted and one inconclusive; one seed: inconclusive (1 seed)."""

import math

import pandas as pd
import pytest

from workflow_helpers import config_section

from alignprune.findings import findings_table, roles, write_findings

T975 = {2: 4.302652729911275}  # t quantile 0.975 for 2 degrees of freedom (3 seeds)
SEEDS = (1, 2, 3)
N_TEST = 1000  # examples per test set: a model at 3-label chance scores 33.3 +- 1.49 points (1 standard error)
LANGS = ["en", "fr", "de", "sw"]
# dense accuracy (points): retention (acc - 33.3) / (acc_en - 33.3) is fr 0.8 > de 0.6 > sw 0.3
DENSE = {"en": 90.0, "fr": 80.0, "de": 65.0, "sw": 50.0}
RETRAINING = {"en": 1.0, "fr": -2.0, "de": -3.0, "sw": 0.5}  # what retraining alone does (any value)
# Drops of magnitude pruning against the control, by target, seed and language:
DROPS = {
    # claim 1 supported (zero-shot 6 vs English 2 +- 0.5); claim 3: drops fall with retention
    # (the languages' drops vary a little from seed to seed, so that the F-test has an error term)
    0.5: {1: {"en": 2.0, "fr": 4.0, "de": 6.0, "sw": 8.0},
          2: {"en": 2.5, "fr": 4.5, "de": 5.5, "sw": 8.0},
          3: {"en": 1.5, "fr": 3.5, "de": 6.5, "sw": 8.0}},
    # noise: every claim inconclusive
    0.7: {1: {"en": 5.0, "fr": 9.0, "de": 3.0, "sw": 6.0},
          2: {"en": 5.0, "fr": 2.0, "de": 8.0, "sw": 3.0},
          3: {"en": 5.0, "fr": 5.0, "de": 4.0, "sw": 6.0}},
    # claim 1 contradicted (English loses more); claim 3: drops rise with retention
    0.9: {1: {"en": 10.0, "fr": 7.0, "de": 5.0, "sw": 3.0},
          2: {"en": 10.5, "fr": 7.0, "de": 5.0, "sw": 3.0},
          3: {"en": 9.5, "fr": 7.0, "de": 5.0, "sw": 3.0}},
}
# The l2 variant's extra drop over plain magnitude per seed (every language): claim 2 supported at
# 0.5 (less drop), inconclusive at 0.7, contradicted at 0.9.
L2_SHIFT = {0.5: [-1.0, -1.2, -0.8], 0.7: [1.0, -1.0, 0.2], 0.9: [1.0, 1.2, 0.8]}
# names say nothing: the config fields decide who is who (methods entries as the config gives them)
METHODS = {name: config_section("methods.*", spec) for name, spec in {
    "baseline_run": {"criterion": "none"},
    "rand": {"criterion": "random", "scope": "layer"},
    "plain": {"criterion": "magnitude", "scope": "global", "regularizer": "none", "weight": 0.0},
    "aligned": {"criterion": "magnitude", "scope": "global", "regularizer": "l2", "weight": 0.1},
    "orphan": {"criterion": "magnitude", "scope": "layer", "regularizer": "cosine", "weight": 10.0},
}.items()}


def fabricated(seeds=SEEDS) -> pd.DataFrame:
    rows = []

    def add(method, target, seed, lang, accuracy):
        rows.append({"task": "xnli", "split": "test", "method": method, "sparsity_target": target,
                     "seed": seed, "language": lang, "accuracy": accuracy / 100, "n_examples": N_TEST})

    for seed in seeds:
        for lang in LANGS:
            dense = DENSE[lang] + 0.3 * seed
            add("dense", 0.0, seed, lang, dense)
            for target, drops in DROPS.items():
                control = dense + RETRAINING[lang] - target  # the control moves along the ladder
                add("baseline_run", target, seed, lang, control)
                add("plain", target, seed, lang, control - drops[seed][lang])
                add("aligned", target, seed, lang, control - drops[seed][lang] - L2_SHIFT[target][seed - 1])
                add("rand", target, seed, lang, control - 20)
                add("orphan", target, seed, lang, control - 1)
    return pd.DataFrame(rows)


def points(frame):
    return frame.assign(accuracy=100 * frame["accuracy"])


def interval(values):
    """mean, low, high; no interval (NaN) when the values do not differ."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if sd == 0:
        return mean, math.nan, math.nan
    return mean, mean - T975[n - 1] * sd / math.sqrt(n), mean + T975[n - 1] * sd / math.sqrt(n)


def exact_permutation_p(retention_by_seed, values_by_seed):
    """The permutation test's p by enumeration: every ordering of the languages, one for all
    seeds at once, the mean Spearman over seeds as extreme as the observed (two-sided)."""
    from itertools import permutations

    def mean_rho(order):
        return sum(spearman(r, [v[i] for i in order]) for r, v in zip(retention_by_seed, values_by_seed)) / len(values_by_seed)

    k = len(values_by_seed[0])
    observed = mean_rho(range(k))
    means = [mean_rho(order) for order in permutations(range(k))]
    return sum(abs(m) >= abs(observed) - 1e-12 for m in means) / len(means)


def detail_p(detail):
    return float(detail.rsplit("permutation p = ", 1)[1].split()[0])


@pytest.fixture(scope="module")
def table():
    return findings_table(points(fabricated()), METHODS, "en", LANGS)


def rows(table, claim, method, target, measure_start):
    part = table[(table["claim"] == claim) & (table["method"] == method) & (table["target"] == target)
                 & table["measure"].fillna("").str.startswith(measure_start)]
    assert len(part) == 1, part
    return part.iloc[0]


def test_roles_come_from_the_config_fields_not_the_names():
    assert roles(METHODS) == {"control": "baseline_run", "magnitude": ["plain"],
                              "regularized": {"aligned": "plain", "orphan": None}}
    with pytest.raises(ValueError, match="criterion: none"):
        roles({name: spec for name, spec in METHODS.items() if name != "baseline_run"})


# At 0.9 English loses more points (10 against 5), and the same share of its larger margin as the
# zero-shot languages (17.5% against 16.7%): "contradicted in points" is the null of equal shares,
# so the two read together give no verdict (both lost the same share: see the test below for a
# contradiction in both).
@pytest.mark.parametrize("target, expected", [
    (0.5, "supported"), (0.7, "inconclusive"),
    (0.9, "inconclusive (contradicted in points, inconclusive in shares: read together)"),
])
def test_claim_1_excess_zero_shot_drop_against_the_control(table, target, expected):
    row = rows(table, 1, "plain", target, "zero-shot drop - English drop")
    excess = [sum(DROPS[target][s][l] for l in ("fr", "de", "sw")) / 3 - DROPS[target][s]["en"] for s in SEEDS]
    mean, low, high = interval(excess)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high), abs=1e-9)
    assert row["seeds"] == 3 and row["compared_with"] == "baseline_run"
    assert row["verdict"] == expected


# fr, de, sw have 30 points above chance at the control, English 57: the same points are a larger
# share. At 0.7 the zero-shot languages lose a larger share but not more points: the null of equal
# points, read together no verdict.
@pytest.mark.parametrize("target, expected", [
    (0.5, "supported"), (0.7, "inconclusive (inconclusive in points, supported in shares: read together)"),
    (0.9, "inconclusive"),
])
def test_claim_1_in_shares_of_the_control_s_accuracy_above_chance(table, target, expected):
    row = rows(table, 1, "plain", target, "share lost above chance")
    chance = 100 / 3
    control = {s: {l: DENSE[l] + 0.3 * s + RETRAINING[l] - target for l in LANGS} for s in SEEDS}
    excess = [100 * (sum(DROPS[target][s][l] for l in ("fr", "de", "sw")) / 3
                     / (sum(control[s][l] for l in ("fr", "de", "sw")) / 3 - chance)
                     - DROPS[target][s]["en"] / (control[s]["en"] - chance)) for s in SEEDS]
    mean, low, high = interval(excess)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high), abs=1e-9)
    assert row["seeds"] == 3 and row["verdict"] == expected


def test_claim_1_equal_points_are_a_larger_share_near_chance_no_verdict_and_a_control_at_chance_is_skipped():
    """Both lose 5 points; zero-shot had 6.7 above chance (3-label chance 33.3), English 56.7: in
    shares the zero-shot languages lose far more, which is what equal points give, not a finding."""
    def evals(zero_shot_control, zero_shot_lost=5.0):
        rows = []
        for seed in SEEDS:
            for method, pruned in (("dense", False), ("baseline_run", False), ("plain", True)):
                target = 0.0 if method == "dense" else 0.5
                fr_lost = zero_shot_lost[seed] if isinstance(zero_shot_lost, dict) else zero_shot_lost
                for lang, accuracy, lost in (("en", 90.0 + 0.1 * seed, 5.0), ("fr", zero_shot_control, fr_lost)):
                    rows.append({"task": "xnli", "split": "test", "method": method, "sparsity_target": target,
                                 "seed": seed, "language": lang, "accuracy": accuracy - lost * pruned,
                                 "n_examples": N_TEST})
        return pd.DataFrame(rows)

    near = findings_table(evals(40.0), METHODS, "en", ["en", "fr"])
    in_points = rows(near, 1, "plain", 0.5, "zero-shot drop - English drop")
    assert in_points["mean"] == pytest.approx(0.0) and in_points["verdict"].startswith("inconclusive")
    in_shares = rows(near, 1, "plain", 0.5, "share lost above chance")
    assert in_shares["mean"] == pytest.approx(100 * 5 / (40 - 100 / 3) - sum(
        100 * 5 / (90 + 0.1 * s - 100 / 3) for s in SEEDS) / 3)
    assert in_shares["verdict"] == "inconclusive (inconclusive in points, supported in shares: read together)"
    # 0.2-0.3 of 6.7 points (3-4.5%) is less than 5 of English's 56.7 (8.8%): contradicted in
    # shares, and in points: the verdict stands
    less = findings_table(evals(40.0, {1: 0.25, 2: 0.2, 3: 0.3}), METHODS, "en", ["en", "fr"])
    for measure in ("share lost", "zero-shot drop - English drop"):
        assert rows(less, 1, "plain", 0.5, measure)["verdict"] == "contradicted"
    at_chance = rows(findings_table(evals(100 / 3), METHODS, "en", ["en", "fr"]), 1, "plain", 0.5, "share lost")
    assert at_chance["seeds"] == 0 and at_chance["verdict"].startswith("not tested")
    assert "within two standard errors of chance" in at_chance["detail"]
    # two standard errors at chance on 1,000 examples: 200 * sqrt((1/3)(2/3)/1000) = 2.98 points;
    # a control 2.5 points above chance could be at chance (no share), one 3.5 points above is not
    se2 = 200 * math.sqrt((1 / 3) * (2 / 3) / N_TEST)
    assert se2 == pytest.approx(2.981, abs=1e-3)
    inside = rows(findings_table(evals(100 / 3 + 2.5, 0.5), METHODS, "en", ["en", "fr"]), 1, "plain", 0.5,
                  "share lost")
    assert inside["seeds"] == 0 and inside["verdict"].startswith("not tested")
    outside = rows(findings_table(evals(100 / 3 + 3.5, 0.5), METHODS, "en", ["en", "fr"]), 1, "plain", 0.5,
                   "share lost")
    assert outside["seeds"] == 3 and outside["mean"] == pytest.approx(100 * 0.5 / 3.5 - sum(
        100 * 5 / (90 + 0.1 * s - 100 / 3) for s in SEEDS) / 3)


@pytest.mark.parametrize("target, expected", [(0.5, "supported"), (0.7, "inconclusive"), (0.9, "contradicted")])
@pytest.mark.parametrize("setting", ["zero-shot", "English"])
def test_claim_2_regularized_minus_unregularized_drop(table, target, expected, setting):
    row = rows(table, 2, "aligned", target, f"{setting} drop: regularized - unregularized")
    mean, low, high = interval(L2_SHIFT[target])
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high), abs=1e-9)
    assert row["compared_with"] == "plain" and row["verdict"] == expected


def test_claim_2_rows_keep_zero_shot_and_english_apart():
    """English shifted by half the zero-shot languages' shift: each row its own setting's change
    (the fixture's equal shifts could not tell the two rows apart)."""
    evals = fabricated()
    english = (evals["method"] == "aligned") & (evals["language"] == "en")
    shift = evals.loc[english].apply(lambda r: L2_SHIFT[r["sparsity_target"]][r["seed"] - 1], axis=1)
    evals.loc[english, "accuracy"] += shift / 200  # half the shift back, in fractions
    table = findings_table(points(evals), METHODS, "en", LANGS)
    for target in L2_SHIFT:
        zero_shot = rows(table, 2, "aligned", target, "zero-shot drop: regularized - unregularized")
        english_row = rows(table, 2, "aligned", target, "English drop: regularized - unregularized")
        excess = rows(table, 2, "aligned", target, "zero-shot drop - English drop: regularized - unregularized")
        assert zero_shot["mean"] == pytest.approx(interval(L2_SHIFT[target])[0])
        assert english_row["mean"] == pytest.approx(interval(L2_SHIFT[target])[0] / 2)
        assert excess["mean"] == pytest.approx(interval(L2_SHIFT[target])[0] / 2)


def test_claim_2_without_an_unregularized_counterpart_is_not_tested(table):
    orphan = table[(table["claim"] == 2) & (table["method"] == "orphan")]
    assert len(orphan) == 1 and orphan.iloc[0]["verdict"].startswith("not tested (no unregularized magnitude")
    # random pruning and the control are no claim's subject
    assert not table["method"].isin(["rand", "baseline_run"]).any()


# Three languages, the same on every seed, cannot give a verdict: one shuffle of their labels for
# all seeds has 3! = 6 orderings, so even -1 on every seed has p = 2/6, and at best 1/6 (six_languages below can).
@pytest.mark.parametrize("target, rho, expected", [
    (0.5, [-1.0] * 3, "inconclusive"),
    (0.7, [0.5, -0.5, -0.5], "inconclusive"),
    (0.9, [1.0] * 3, "inconclusive"),
])
def test_claim_3_rank_correlation_of_dense_retention_and_drop(table, target, rho, expected):
    row = rows(table, 3, "plain", target, "Spearman correlation of dense retention and drop")
    mean, low, high = interval(rho)
    low, high = max(low, -1.0), min(high, 1.0)  # a correlation's interval, clipped to [-1, 1]
    assert row["mean"] == pytest.approx(mean, abs=1e-9)
    # every seed -1 (or +1): no spread, no interval; the permutation test still decides
    assert (math.isnan(row["ci_low"]), math.isnan(row["ci_high"])) == (math.isnan(low), math.isnan(high))
    if not math.isnan(low):
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-9)
    assert row["verdict"] == expected
    retention = {l: [(DENSE[l] + 0.3 * s - 100 / 3) / (DENSE["en"] + 0.3 * s - 100 / 3) for s in SEEDS]
                 for l in ("fr", "de", "sw")}
    assert row["detail"].startswith("dense retention: " + ", ".join(f"{l} {sum(r) / 3:.2f}" for l, r in retention.items()))
    exact = exact_permutation_p([[retention[l][s - 1] for l in retention] for s in SEEDS],
                                [[DROPS[target][s][l] for l in retention] for s in SEEDS])
    assert detail_p(row["detail"]) == pytest.approx(exact, abs=1e-3)
    assert exact == pytest.approx({0.5: 2 / 6, 0.7: 1.0, 0.9: 2 / 6}[target])


def ranks(values):
    order = sorted(values)
    return [order.index(v) + 1 for v in values]  # no ties here


def spearman(xs, ys):
    """1 - 6 sum d^2 / (n (n^2 - 1)), the rank correlation without ties."""
    n = len(xs)
    return 1 - 6 * sum((a - b) ** 2 for a, b in zip(ranks(xs), ranks(ys))) / (n * (n * n - 1))


# At 0.9 the drops fall with retention in points (fr 7, de 5, sw 3) but rise with it in shares of
# each language's margin above chance (fr 16%, de 18%, sw 18.4%): the floor case (with 3
# languages no verdict either way; six_languages below reads the two together).
@pytest.mark.parametrize("target, expected", [(0.5, "inconclusive"), (0.7, "inconclusive"), (0.9, "inconclusive")])
def test_claim_3_rank_correlation_of_dense_retention_and_share_lost(table, target, expected):
    row = rows(table, 3, "plain", target, "Spearman correlation of dense retention and share lost")
    chance = 100 / 3
    zero_shot = ("fr", "de", "sw")
    rho, shares = [], {l: [] for l in zero_shot}
    for s in SEEDS:
        retention = [(DENSE[l] + 0.3 * s - chance) / (DENSE["en"] + 0.3 * s - chance) for l in zero_shot]
        share = [100 * DROPS[target][s][l] / (DENSE[l] + 0.3 * s + RETRAINING[l] - target - chance)
                 for l in zero_shot]
        rho.append(spearman(retention, share))
        for l, value in zip(zero_shot, share):
            shares[l].append(value)
    mean, low, high = interval(rho)
    assert row["mean"] == pytest.approx(mean, abs=1e-9)
    if math.isnan(low):
        assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    else:
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((max(low, -1.0), min(high, 1.0)), abs=1e-9)
    assert row["seeds"] == 3 and row["verdict"] == expected
    assert row["detail"].startswith("share lost (mean over seeds): " + ", ".join(
        f"{l} {sum(v) / 3:.1f}%" for l, v in shares.items()) + "; permutation p = ")


def test_claim_3_in_shares_leaves_out_a_language_at_chance():
    """fr, de, ja well above chance lose 10%, 20%, 30% of their margins; sw's control is 4.5
    points above chance, within two standard errors at chance on its 250 examples (5.96; 2.98 on
    the others' 1,000) and loses 2 points: as a share (44%) it would top the ranking; left out,
    the ranking is the three others' alone."""
    chance = 100 / 3
    margins = {"en": 60.0, "fr": 40.0, "de": 30.0, "ja": 20.0, "sw": 2.5}
    lost = {"en": 6.0, "fr": 4.0, "de": 6.0, "ja": 6.0, "sw": 2.0}
    dense_margin = {"en": 60.0, "fr": 30.0, "de": 40.0, "ja": 20.0, "sw": 2.5}  # de transfers best

    def evals(sw_margin):
        rows = []
        for seed in SEEDS:
            for method in ("dense", "baseline_run", "plain"):
                for lang in margins:
                    margin = {"dense": dense_margin[lang]}.get(method, sw_margin if lang == "sw" else margins[lang])
                    rows.append({"task": "xnli", "split": "test", "method": method,
                                 "sparsity_target": 0.0 if method == "dense" else 0.5, "seed": seed,
                                 "language": lang, "n_examples": 250 if lang == "sw" else N_TEST,
                                 "accuracy": chance + margin + 0.1 * seed - lost[lang] * (method == "plain")})
        return pd.DataFrame(rows)

    table = findings_table(evals(4.5), METHODS, "en", list(margins))
    row = rows(table, 3, "plain", 0.5, "Spearman correlation of dense retention and share lost")
    # retention de > fr > ja; shares fr 10% < de 20% < ja 30%: ranks (2, 3, 1) vs (1, 2, 3)
    assert row["mean"] == pytest.approx(spearman([30, 40, 20], [10, 20, 30])) == pytest.approx(-0.5)
    assert row["seeds"] == 3
    assert ("left out where the control is within two standard errors of chance: sw (3 of 3 seeds); "
            "permutation p = ") in row["detail"]
    # sw 7 points above chance is kept: 2 of 7 (29%) ranks second, and sw has the worst retention
    kept = rows(findings_table(evals(7.0), METHODS, "en", list(margins)), 3, "plain", 0.5,
                "Spearman correlation of dense retention and share lost")
    assert kept["mean"] == pytest.approx(spearman([30, 40, 20, 2.5], [10, 20, 30, 100 * 2 / 7.0]))
    # two languages left: no correlation on any seed
    few = evals(4.5)
    few = few[~few["language"].isin(["ja"])]
    none = rows(findings_table(few, METHODS, "en", ["en", "fr", "de", "sw"]), 3, "plain", 0.5,
                "Spearman correlation of dense retention and share lost")
    assert none["seeds"] == 0 and none["verdict"].startswith("not tested")


@pytest.mark.parametrize("target, expected", [(0.5, "supported"), (0.7, "inconclusive")])
def test_claim_3_spread_of_drops_over_languages(table, target, expected):
    row = rows(table, 3, "plain", target, "spread")
    spread = [max(DROPS[target][s][l] for l in ("fr", "de", "sw")) - min(DROPS[target][s][l] for l in ("fr", "de", "sw"))
              for s in SEEDS]
    assert row["mean"] == pytest.approx(sum(spread) / 3)
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])  # max - min is never below 0
    assert row["verdict"] == expected
    means = {l: sum(DROPS[target][s][l] for s in SEEDS) / 3 for l in ("fr", "de", "sw")}
    assert row["detail"].startswith("drops: " + ", ".join(f"{l} {m:.2f}" for l, m in means.items()))


def test_one_seed_gives_no_interval_and_says_so():
    table = findings_table(points(fabricated(seeds=(2,))), METHODS, "en", LANGS)
    tested = table[~table["verdict"].str.startswith("not tested")]
    # claim 1: in points and in shares; claim 2: zero-shot, English, excess; claim 3: spread and two correlations
    assert len(tested) == 3 + 3 + 9 + 9
    assert (tested["verdict"] == "inconclusive (1 seed)").all()
    assert tested["ci_low"].isna().all() and (tested["seeds"] == 1).all()
    row = rows(table, 1, "plain", 0.5, "zero-shot drop - English drop")
    assert row["mean"] == pytest.approx(6.0 - 2.5)


def test_written_as_csv_and_markdown_from_the_eval_table(tmp_path):
    csv = tmp_path / "evals.csv"
    validation = fabricated().assign(split="validation", accuracy=0.5)  # must not leak in
    pd.concat([fabricated(), validation]).to_csv(csv, index=False)
    outputs = [tmp_path / "findings.csv", tmp_path / "findings.md"]
    written = write_findings(csv, outputs, methods=METHODS, train_language="en", split="test", languages=LANGS)
    again = pd.read_csv(outputs[0])
    assert len(again) == len(written)
    assert again["verdict"].tolist() == written["verdict"].tolist()
    markdown = outputs[1].read_text()
    row = rows(written, 1, "plain", 0.5, "zero-shot drop")
    assert f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in markdown
    assert "| supported" in markdown and "| contradicted" in markdown
    assert "made by the code unrecorded " in markdown  # fabricated rows carry no code digest
    assert "Warning" not in markdown
    # the multiplicity caveat counts this table's rows that were judged, and Holm's correction keeps
    # the verdicts whose adjusted p is < 0.05: here claim 1 at 0.5 in shares alone
    judged = len(written) - written["verdict"].str.startswith("not tested").sum()
    assert f"\n{judged} rows judged, each verdict at 0.05 with no correction" in markdown
    with_p = written["p"].notna().sum()
    # claim 1: 6 t-tests; claim 2: 6 (the l2 excess does not vary over seeds: no test); claim 3:
    # 2 spreads (F-test; none at 0.9, where the drops do not vary) and 6 permutation tests
    assert with_p == 20
    # Holm: the smallest of 20 p-values times 20, the next times 19, ..., never decreasing
    ordered = written["p"].dropna().sort_values()
    assert written["p_holm"].min() == pytest.approx(20 * ordered.iloc[0])
    assert written.loc[ordered.index[1], "p_holm"] == pytest.approx(max(20 * ordered.iloc[0], 19 * ordered.iloc[1]))
    held = written[written["p_holm"] < 0.05]
    assert held[["claim", "target", "measure"]].values.tolist() == [
        [1, 0.5, "share lost above chance: zero-shot - English (percent)"]]
    assert (f"Over the {with_p} rows of claims 1-3 with a p, Holm's correction (the p in brackets) keeps 1 "
            "verdict at a family-wise 0.05: claim 1 plain 0.50 share lost above chance") in markdown
    # no weight files (the alignment analysis off): claim 4 is not tested, and says why
    check = written[written["claim"] == 4]
    assert len(check) == 1 and check["verdict"].iloc[0].startswith("not tested (the alignment analysis is off")
    assert "Claim 4" not in markdown.split("Over the")[1]


def test_the_markdown_names_the_code_and_warns_when_two_versions_made_the_evaluations(tmp_path):
    csv = tmp_path / "evals.csv"
    evals = fabricated().assign(code="aaaaaaaaaaaa")
    evals.assign(code="012345678901").to_csv(csv, index=False)  # digits only: read back as text, not a number
    write_findings(csv, [tmp_path / "findings.csv", tmp_path / "findings.md"], methods=METHODS,
                   train_language="en", split="test", languages=LANGS)
    assert "made by the code 012345678901 " in (tmp_path / "findings.md").read_text()
    evals.to_csv(csv, index=False)
    outputs = [tmp_path / "findings.csv", tmp_path / "findings.md"]
    write_findings(csv, outputs, methods=METHODS, train_language="en", split="test", languages=LANGS)
    one = outputs[1].read_text()
    assert f"From {len(evals)} evaluations made by the code aaaaaaaaaaaa " in one and "Warning" not in one
    # one model re-evaluated after an edit, another pruned from a model of the old code
    evals.loc[evals.index[:7], "code"] = "bbbbbbbbbbbb"
    evals.loc[evals.index[7:9], "code"] = "aaaaaaaaaaaa+bbbbbbbbbbbb"
    evals.to_csv(csv, index=False)
    write_findings(csv, outputs, methods=METHODS, train_language="en", split="test", languages=LANGS)
    two = outputs[1].read_text()
    assert "made by the code aaaaaaaaaaaa, bbbbbbbbbbbb " in two
    assert "**Warning**: the evaluations were made by 2 versions of the code (aaaaaaaaaaaa, bbbbbbbbbbbb" in two
    assert two.split("\nFrom ")[0] == one.split("\nFrom ")[0]  # the same numbers: the code is not an input


def test_an_eval_table_without_the_control_is_refused():
    evals = points(fabricated())
    with pytest.raises(ValueError, match=r"no rows of \['baseline_run'\]"):
        findings_table(evals[evals["method"] != "baseline_run"], METHODS, "en", LANGS)


def test_a_model_missing_a_language_is_refused_naming_it():
    """A zero-shot mean over fewer languages is another quantity: pairing it with the control's
    full set would credit the method with the missing language's difference."""
    evals = points(fabricated())
    hard = (evals["method"] == "plain") & (evals["sparsity_target"] == 0.9) & (evals["seed"] == 2)
    with pytest.raises(ValueError, match=r"plain at 0\.9 seed 2: sw\. Evaluate those languages"):
        findings_table(evals[~(hard & (evals["language"] == "sw"))], METHODS, "en", LANGS)
    # a language left out of every model is another language set, not a gap
    table = findings_table(evals[evals["language"] != "sw"], METHODS, "en", ["en", "fr", "de"])
    row = rows(table, 1, "plain", 0.5, "zero-shot drop - English drop")
    excess = [sum(DROPS[0.5][s][l] for l in ("fr", "de")) / 2 - DROPS[0.5][s]["en"] for s in SEEDS]
    assert row["mean"] == pytest.approx(sum(excess) / 3)


def test_the_noise_at_chance_is_two_binomial_standard_errors_of_each_mean():
    """English: its test set's; the zero-shot mean: the mean of its languages' (their sets are
    translations of one set, so a near-chance model may fail the same items in all of them)."""
    from alignprune.findings import _chance_noise

    sizes = {"en": 1000, "fr": 500, "de": 1000, "sw": 2000}
    evals = pd.DataFrame([{"method": "plain", "sparsity_target": 0.5, "seed": 1, "language": lang,
                           "accuracy": 50.0, "n_examples": n} for lang, n in sizes.items()])
    noise = _chance_noise(evals, "en", 100 / 3).loc[("plain", 0.5, 1)]
    p = 1 / 3
    assert noise["english"] == pytest.approx(200 * math.sqrt(p * (1 - p) / 1000))
    assert noise["zero_shot"] == pytest.approx(
        sum(200 * math.sqrt(p * (1 - p) / n) for n in (500, 1000, 2000)) / 3)
    for broken in (evals.drop(columns="n_examples"), evals.assign(n_examples=[1000, None, 1000, 1000]),
                   evals.assign(n_examples=[1000, 0, 1000, 1000])):
        with pytest.raises(ValueError, match="lack n_examples .* rerun their evaluation"):
            _chance_noise(broken, "en", 100 / 3)


def test_each_share_is_gated_by_its_own_noise():
    """English on 1,000 examples (two standard errors at chance 2.98 points), two zero-shot
    languages on 250 each (5.96): a zero-shot margin of 4.5 could be nothing, one of 7 could not;
    an English margin of 2.5 could be nothing whatever the zero-shot languages have."""
    def evals(english_control, zero_shot_control):
        rows = []
        for seed in SEEDS:
            for method, lost in (("dense", 0.0), ("baseline_run", 0.0), ("plain", 1.0)):
                target = 0.0 if method == "dense" else 0.5
                for lang, accuracy, n in (("en", english_control + 0.1 * seed, 1000),
                                          ("fr", zero_shot_control, 250), ("de", zero_shot_control, 250)):
                    rows.append({"task": "xnli", "split": "test", "method": method, "sparsity_target": target,
                                 "seed": seed, "language": lang, "accuracy": accuracy - lost, "n_examples": n})
        return pd.DataFrame(rows)

    def share(english_control, zero_shot_control):
        table = findings_table(evals(english_control, zero_shot_control), METHODS, "en", ["en", "fr", "de"])
        return rows(table, 1, "plain", 0.5, "share lost above chance")

    chance = 100 / 3
    assert share(90.0, chance + 4.5)["seeds"] == 0  # within the zero-shot mean's 5.96
    kept = share(90.0, chance + 7.0)
    assert kept["seeds"] == 3 and kept["mean"] == pytest.approx(
        100 / 7.0 - sum(100 / (90 + 0.1 * s - chance) for s in SEEDS) / 3)
    assert share(chance + 2.5 - 0.2, 80.0)["seeds"] == 0  # English within its 2.98 on every seed
    assert share(chance + 3.5 - 0.2, 80.0)["seeds"] == 3


def test_claim_2_asks_whether_the_excess_shrinks_not_each_drop():
    """The fabricated l2 variant shifts every language alike: both drops change, the excess of
    claim 1 does not (0 on every seed: no interval). Sparing the zero-shot languages alone by
    1.0, 1.2, 0.8 points shrinks it: supported."""
    table = findings_table(points(fabricated()), METHODS, "en", LANGS)
    same = rows(table, 2, "aligned", 0.5, "zero-shot drop - English drop: regularized - unregularized")
    assert same["mean"] == pytest.approx(0.0, abs=1e-9) and same["verdict"].startswith("inconclusive")
    assert rows(table, 2, "aligned", 0.5, "zero-shot drop: regularized")["verdict"] == "supported"
    assert same["detail"] == "l2: a baseline regularizer, not one of the paper's two"
    evals = points(fabricated())
    spared = (evals["method"] == "aligned") & (evals["sparsity_target"] == 0.5) & (evals["language"] != "en")
    evals.loc[spared, "accuracy"] += evals.loc[spared, "seed"].map({1: 1.0, 2: 1.2, 3: 0.8})
    row = rows(findings_table(evals, METHODS, "en", LANGS), 2, "aligned", 0.5, "zero-shot drop - English drop:")
    mean, low, high = interval([-1.0, -1.2, -0.8])
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high), abs=1e-9)
    assert row["verdict"] == "supported" and row["compared_with"] == "plain"


def test_claim_2_s_excess_shrinking_by_english_s_loss_alone_is_no_verdict():
    """At 0.5 the regularized model scores as the unregularized one in every zero-shot language
    and loses 1.0, 1.2, 0.8 points more in English: the excess shrinks (its interval below 0),
    but nothing was spared. The same, with the zero-shot languages spared 0.5 points as well:
    the verdict stands."""
    evals = points(fabricated())
    at = (evals["sparsity_target"] == 0.5)
    plain = evals[at & (evals["method"] == "plain")].set_index(["seed", "language"])["accuracy"]
    aligned = at & (evals["method"] == "aligned")
    keys = list(zip(evals.loc[aligned, "seed"], evals.loc[aligned, "language"]))
    english_cost = evals.loc[aligned, "seed"].map({1: 1.0, 2: 1.2, 3: 0.8}) * (evals.loc[aligned, "language"] == "en")
    evals.loc[aligned, "accuracy"] = plain.loc[keys].to_numpy() - english_cost
    measure = "zero-shot drop - English drop: regularized - unregularized"
    row = rows(findings_table(evals, METHODS, "en", LANGS), 2, "aligned", 0.5, measure)
    assert row["ci_high"] < 0 and row["p"] < 0.05
    assert row["verdict"] == "inconclusive (supported by English's drop: the zero-shot drop did not move, 0.00 points)"
    # zero-shot changes that cancel over the languages (+0.7, +0.1, -0.8) leave a float residue of
    # ~1e-16 in their mean: still "did not move", whatever its sign
    cancelling = evals.copy()
    for lang, shift in (("fr", 0.7), ("de", 0.1), ("sw", -0.8)):
        cancelling.loc[aligned & (evals["language"] == lang), "accuracy"] += shift
    row = rows(findings_table(cancelling, METHODS, "en", LANGS), 2, "aligned", 0.5, measure)
    assert row["verdict"].startswith("inconclusive (supported by English's drop: the zero-shot drop did not move")
    spared = evals.copy()
    spared.loc[aligned & (evals["language"] != "en"), "accuracy"] += 0.5
    row = rows(findings_table(spared, METHODS, "en", LANGS), 2, "aligned", 0.5, measure)
    assert row["verdict"] == "supported"


def test_a_target_or_method_without_paired_seeds_gets_not_tested_rows():
    evals = points(fabricated())
    gone = findings_table(evals[~((evals["method"] == "plain") & (evals["sparsity_target"] == 0.9))],
                          METHODS, "en", LANGS)
    at_09 = gone[(gone["target"] == 0.9) & gone["method"].isin(["plain", "aligned"])]
    # claim 1: 2 rows, claim 2 (aligned against plain): 3, claim 3: 3
    assert len(at_09) == 8 and (at_09["verdict"] == "not tested (no paired seeds)").all()
    assert (at_09["seeds"] == 0).all()
    assert len(gone) == len(findings_table(evals, METHODS, "en", LANGS))
    none = findings_table(evals[evals["method"] != "plain"], METHODS, "en", LANGS)
    plain = none[none["method"] == "plain"]
    assert len(plain) == 3 * (2 + 3) and plain["verdict"].str.startswith("not tested").all()


def test_an_eval_row_without_accuracy_or_twice_is_refused_naming_it():
    evals = points(fabricated())
    broken = evals.copy()
    one = broken.index[(broken["method"] == "plain") & (broken["seed"] == 1) & (broken["language"] == "sw")
                       & (broken["sparsity_target"] == 0.5)]
    broken.loc[one, "accuracy"] = math.nan
    with pytest.raises(ValueError, match=r"without an accuracy: plain at 0\.5 seed 1 sw\. Rerun"):
        findings_table(broken, METHODS, "en", LANGS)
    with pytest.raises(ValueError, match=r"more than one eval row for plain at 0\.5 seed 1 sw:"):
        findings_table(pd.concat([evals, evals.loc[one]]), METHODS, "en", LANGS)


def test_claim_3_leaves_out_a_seed_without_its_dense_model():
    evals = points(fabricated())
    table = findings_table(evals[~((evals["method"] == "dense") & (evals["seed"] == 3))], METHODS, "en", LANGS)
    row = rows(table, 3, "plain", 0.5, "Spearman correlation of dense retention and drop")
    assert row["seeds"] == 2 and "; seeds without a dense model left out: 3;" in row["detail"]
    # claims 1 and 2, and the spread of claim 3, need no dense model: all three seeds
    assert rows(table, 1, "plain", 0.5, "zero-shot drop - English drop")["seeds"] == 3
    assert rows(table, 3, "plain", 0.5, "spread")["seeds"] == 3


MARGINS = {"en": 60.0, "fr": 50.0, "de": 40.0, "es": 30.0, "ja": 20.0, "sw": 10.0}


def six_languages(lost_points, dense_margins=None, seeds=SEEDS):
    """dense retention fr > de > es > ja > sw (margins above chance 50 ... 10 points; English 60),
    or per seed ``dense_margins[seed]``; the control as the dense model; the pruned model loses
    ``lost_points[lang]`` (or ``lost_points[seed][lang]``) on every seed."""
    out = []
    for seed in seeds:
        lost = lost_points.get(seed, lost_points)
        for method in ("dense", "baseline_run", "plain"):
            margins = (dense_margins or {}).get(seed, MARGINS) if method == "dense" else MARGINS
            for lang, margin in margins.items():
                out.append({"task": "xnli", "split": "test", "method": method,
                            "sparsity_target": 0.0 if method == "dense" else 0.5, "seed": seed, "language": lang,
                            "n_examples": N_TEST, "accuracy": 100 / 3 + margin + 0.1 * seed
                            - (lost[lang] * (1 + 0.01 * seed) if method == "plain" else 0)})
    return findings_table(pd.DataFrame(out), METHODS, "en", list(MARGINS))


def test_claim_3_correlations_stand_only_where_points_and_shares_agree():
    measure = "Spearman correlation of dense retention and "
    # every language loses 5 points: no correlation in points (equal drops), -1 in shares (the
    # smaller margins lose larger shares): the null of equal points, not a finding
    equal = six_languages(dict.fromkeys(MARGINS, 5))
    in_points, in_shares = rows(equal, 3, "plain", 0.5, measure + "drop"), rows(equal, 3, "plain", 0.5, measure + "share")
    assert in_points["verdict"] == "not tested (on no seed 3 languages with values that differ)"
    assert in_shares["mean"] == pytest.approx(-1.0)
    assert in_shares["verdict"] == "inconclusive (not tested in points, supported in shares: read together)"
    # the best-transferring languages lose most, in points and in shares (fr 60% ... sw 10%): contradicted
    best_lose = six_languages({"en": 5, "fr": 30, "de": 20, "es": 12, "ja": 6, "sw": 1})
    for kind in ("drop", "share"):
        row = rows(best_lose, 3, "plain", 0.5, measure + kind)
        assert row["mean"] == pytest.approx(1.0) and row["verdict"] == "contradicted"
        # 5 languages in one order on every seed: 2 of the 5! orderings are as extreme
        assert detail_p(row["detail"]) == pytest.approx(2 / 120, abs=1e-4)
    # the worst-transferring lose most, in both: supported
    worst_lose = six_languages({"en": 5, "fr": 1, "de": 2, "es": 3, "ja": 4, "sw": 5})
    assert {rows(worst_lose, 3, "plain", 0.5, measure + kind)["verdict"] for kind in ("drop", "share")} == {"supported"}
    # equal drops tie (average ranks), whatever the float error of the subtractions that made them
    from scipy import stats
    tied = rows(six_languages({"en": 5, "fr": 1.1, "de": 1.1, "es": 2.2, "ja": 3.3, "sw": 4.4}), 3, "plain", 0.5,
                measure + "drop")
    assert tied["mean"] == pytest.approx(stats.spearmanr([50, 40, 30, 20, 10], [1.1, 1.1, 2.2, 3.3, 4.4]).statistic)


def test_claim_3_pairs_each_seed_s_drops_with_that_seed_s_dense_retention():
    """The dense models rank the languages differently on each seed, and each seed's pruned
    model loses most where its own dense model transfers worst: -1 on every seed (paired with
    another seed's retention it would not be)."""
    orders = {1: ["fr", "de", "es", "ja", "sw"], 2: ["sw", "ja", "es", "de", "fr"], 3: ["es", "fr", "sw", "de", "ja"]}
    dense = {seed: {"en": 60.0, **{lang: 50.0 - 10 * i for i, lang in enumerate(order)}} for seed, order in orders.items()}
    lost = {seed: {"en": 5, **{lang: 1 + i for i, lang in enumerate(order)}} for seed, order in orders.items()}
    row = rows(six_languages(lost, dense), 3, "plain", 0.5, "Spearman correlation of dense retention and drop")
    assert row["seeds"] == 3 and row["mean"] == pytest.approx(-1.0)


def test_values_equal_but_for_float_error_have_no_interval():
    from alignprune.findings import t_interval

    values = [0.1, 0.3 - 0.2, 0.7 - 0.6]  # 0.1, 0.09999999999999998, 0.09999999999999998
    n, mean, low, high, p = t_interval(values)
    assert n == 3 and mean == pytest.approx(0.1) and math.isnan(low) and math.isnan(high) and math.isnan(p)


def test_the_permutation_test_shuffles_the_languages_once_for_every_seed():
    """Seeds that repeat one language profile are one profile's evidence: the p of three equal
    seeds is the p of one (a shuffle per seed would make it far smaller)."""
    import numpy as np
    from itertools import permutations

    from alignprune.findings import _permutation_p

    retention = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    drops = np.array([2.0, 1.0, 4.0, 3.0, 6.0, 5.0])  # rho -0.83 with retention
    one = np.mean([abs(spearman(list(retention), [drops[i] for i in order])) >= 0.8285714 - 1e-6
                   for order in permutations(range(6))])
    assert one == pytest.approx(0.05833, abs=1e-4)  # 42 of 720
    three = _permutation_p(np.tile(retention, (3, 1)), np.tile(drops, (3, 1)))
    assert three == pytest.approx(one)


def test_the_permutation_test_is_exact_where_the_orderings_are_few():
    """2 seeds of 3 languages, -1 on each: the 3! orderings of the languages, each applied to
    both seeds. Where the seeds rank the languages alike, the reverse ordering gives +1 on both
    (p = 2/6); where they do not, only the observed one is as extreme (1/6)."""
    import numpy as np

    from alignprune.findings import _permutation_p

    first = np.array([0.8, 0.6, 0.3])
    for second, expected in (([0.8, 0.6, 0.3], 2 / 6), ([0.6, 0.8, 0.3], 1 / 6), ([0.3, 0.6, 0.8], 2 / 6)):
        second = np.array(second)
        drops = np.array([[1.0, 2.0, 3.0], 1.0 + np.argsort(np.argsort(-second))])
        p = _permutation_p(np.array([first, second]), drops)
        assert p == pytest.approx(expected) == pytest.approx(exact_permutation_p([first, second], drops))


def test_the_sampled_permutation_test_counts_the_observed_ordering():
    """8 languages (40,320 orderings): 10,000 random shuffles, the observed one counted."""
    import numpy as np

    from alignprune.findings import PERMUTATIONS, _permutation_p

    retention = np.tile(np.linspace(0.9, 0.2, 8), (3, 1))
    p = _permutation_p(retention, -retention)  # -1 on every seed: nothing drawn beats it
    assert 1 / (PERMUTATIONS + 1) <= p <= 3 / (PERMUTATIONS + 1)


def test_the_spread_s_f_test_is_corrected_for_sphericity():
    """Reference values from pingouin.rm_anova(correction=True) on the same drops: uncorrected
    p 0.042 would call the spread a finding, the Greenhouse-Geisser p 0.150 does not."""
    from alignprune.findings import _repeated_measures_f

    drops = pd.DataFrame([[2.0, 9.5, 4.0, 7.0, 1.0, 6.5], [3.5, 1.0, 5.5, 8.0, 2.0, 3.0],
                          [1.0, 6.0, 4.5, 12.0, 2.5, 4.0]], index=SEEDS, columns=["fr", "es", "de", "zh", "ja", "tr"])
    f, p, epsilon, p_corrected = _repeated_measures_f(drops)
    assert (f, p, epsilon, p_corrected) == pytest.approx((3.5501461, 0.0417987, 0.3312869, 0.1498809), abs=1e-6)
    # 3 seeds, 6 languages: epsilon can be at most (3 - 1) / (6 - 1) = 0.4 whatever the drops, and
    # the corrected test almost never rejects: no verdict from it
    assert epsilon <= 0.4
    lost = {seed: {"en": 0.0, **dict(zip(["fr", "de", "es", "ja", "sw"], row[:5]))} for seed, row in zip(SEEDS, drops.to_numpy())}
    row = rows(six_languages(lost), 3, "plain", 0.5, "spread")
    assert row["verdict"] == ("inconclusive (no F-test verdict: 3 seeds with every language for 5 languages; "
                              "the sphericity correction needs as many seeds as languages)")
    assert "Greenhouse-Geisser epsilon = " in row["detail"] and math.isnan(row["p"])


def test_the_spread_s_f_test_gives_a_verdict_with_as_many_seeds_as_languages():
    """Five seeds of five languages whose drops differ by language far more than by seed: the
    corrected test is calibrated there and finds the spread; with the same drops on 3 seeds it
    does not judge."""
    lost = {seed: {"en": 0.0, "fr": 1.0 + 0.3 * seed, "de": 3.0 - 0.2 * seed, "es": 5.0 + 0.1 * seed * seed,
                   "ja": 7.0 - 0.1 * seed, "sw": 9.0 + 0.2 * (seed % 2)} for seed in range(1, 6)}
    row = rows(six_languages(lost, seeds=range(1, 6)), 3, "plain", 0.5, "spread")
    assert row["seeds"] == 5 and row["verdict"] == "supported" and row["p"] < 0.05
    few = rows(six_languages({s: lost[s] for s in SEEDS}), 3, "plain", 0.5, "spread")
    assert few["verdict"].startswith("inconclusive (no F-test verdict: 3 seeds")


def test_drops_equal_but_for_float_rounding_get_no_f_test():
    """Every language loses exactly 50 of 5,010 examples on every seed: the drops are equal, but
    computed from accuracies in floats they differ by ~1e-14, and on these counts the F-test of
    that residue alone read F = inf, p = 0: "supported"."""
    counts = [[2657, 3319, 3600, 2416, 3451, 2515], [2699, 2436, 2569, 3135, 3600, 2812],
              [3525, 3127, 2926, 2672, 3059, 2958]]
    langs = ["en", "fr", "de", "es", "ja", "sw", "zh"]
    evals = pd.DataFrame([
        {"task": "xnli", "split": "test", "method": method, "sparsity_target": target, "seed": seed,
         "language": lang, "n_examples": 5010, "accuracy": 100 * (count - lost) / 5010}
        for seed, row in zip(SEEDS, counts)
        for method, lost, target in (("dense", 0, 0.0), ("baseline_run", 0, 0.5), ("plain", 50, 0.5))
        for lang, count in zip(langs, [4000, *row])
    ])
    row = rows(findings_table(evals, METHODS, "en", langs), 3, "plain", 0.5, "spread")
    assert row["mean"] == pytest.approx(0.0, abs=1e-9)
    assert row["verdict"] == ("inconclusive (no F-test: fewer than 2 seeds with every language, "
                              "or drops that do not vary from seed to seed)")
    assert "F = " not in row["detail"]


def test_drops_that_differ_by_language_alike_on_every_seed_get_no_f_test():
    """No seed-to-seed variation left to test against (as a t-interval of width 0): no p of 0."""
    from alignprune.findings import _repeated_measures_f

    for drops in ([[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]], [[4.0, 6.0, 8.0]] * 3):
        assert all(math.isnan(v) for v in _repeated_measures_f(pd.DataFrame(drops)))


def test_four_languages_can_give_a_verdict_where_the_seeds_rank_them_differently():
    """rho = -1 on every seed, but by different orderings: only the observed labelling is as
    extreme, p = 1/4! (where every seed ranks them alike, the reversed labelling ties: 2/4!)."""
    import numpy as np

    from alignprune.findings import _permutation_p

    retention = np.array([[0.9, 0.7, 0.5, 0.3], [0.9, 0.5, 0.7, 0.3], [0.5, 0.9, 0.7, 0.3]])
    assert _permutation_p(retention, -retention) == pytest.approx(1 / 24)
    alike = np.tile([0.9, 0.7, 0.5, 0.3], (3, 1))
    assert _permutation_p(alike, -alike) == pytest.approx(2 / 24)


def test_a_verdict_needs_the_interval_off_zero():
    from alignprune.findings import verdict

    assert verdict(3, 0.0, 1.0, +1) == "inconclusive" and verdict(3, -1.0, 0.0, -1) == "inconclusive"
    assert verdict(3, 1e-9, 1.0, +1) == "supported" and verdict(3, 1e-9, 1.0, -1) == "contradicted"


def test_details_print_no_negative_zero():
    from alignprune.findings import _fixed

    assert (_fixed(-0.04, 1), _fixed(-0.004, 2), _fixed(-0.06, 1), _fixed(0.0, 2)) == ("0.0", "0.00", "-0.1", "0.00")


# Claim 4 (the check that the regularizer acted): the kept weights' change |W - M*W0| / |M*W0| of
# each model's prunable matrices. The unregularized method's by seed; the l2 variant's shift from
# it per seed (fraction): closer at 0.5, noise at 0.7, farther at 0.9.
KEPT = {1: 0.04, 2: 0.05, 3: 0.06}
KEPT_SHIFT = {0.5: [-0.004, -0.005, -0.003], 0.7: [0.002, -0.003, 0.001], 0.9: [0.004, 0.005, 0.003]}


def fabricated_weights(code="aaaaaaaaaaaa") -> pd.DataFrame:
    """Per model three matrices: the kept change, twice it, and one with nothing kept (NaN),
    which must be left out of the model's mean, not counted as 0."""
    rows = []
    for seed in SEEDS:
        for target, shifts in KEPT_SHIFT.items():
            for method, change in (("plain", KEPT[seed]), ("aligned", KEPT[seed] + shifts[seed - 1]),
                                   ("baseline_run", 0.03), ("rand", 0.2)):
                for parameter, value in (("q", change), ("k", 2 * change), ("v", math.nan)):
                    rows.append({"task": "xnli", "seed": seed, "method": method, "sparsity_target": target,
                                 "parameter": parameter, "mean_cosine": 0.9,
                                 "kept_cosine": math.nan if math.isnan(value) else 0.99,
                                 "kept_change": value, "kept_step": 150, "code": code})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("target, expected", [(0.5, "supported"), (0.7, "inconclusive"), (0.9, "contradicted")])
def test_claim_4_kept_weights_change_regularized_minus_unregularized(target, expected):
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, fabricated_weights())
    row = rows(table, 4, "aligned", target, "kept weights'")
    # per seed: the mean over the two kept matrices (1.5 x the change) x 100, aligned - plain
    mean, low, high = interval([100 * 1.5 * shift for shift in KEPT_SHIFT[target]])
    assert (row["compared_with"], row["seeds"], row["verdict"]) == ("plain", 3, expected)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high))
    ours = sum(100 * 1.5 * (KEPT[s] + KEPT_SHIFT[target][s - 1]) for s in SEEDS) / 3
    theirs = sum(100 * 1.5 * KEPT[s] for s in SEEDS) / 3
    assert row["measure"] == ("kept weights' |W - M*W0| / |M*W0| (percent): regularized - unregularized "
                              "(percent points)")
    assert row["detail"].startswith(f"{ours:.2f} regularized, {theirs:.2f} unregularized")
    assert "l2: a baseline regularizer" in row["detail"]
    # the fixture's models all kept the same steps
    assert "both kept the same retraining steps on every seed" in row["detail"]


def test_claim_4_measures_the_cosine_regularizer_by_the_kept_weights_turn():
    """Cosine penalises direction alone: its row is 1 - kept cosine (per mille), not the change,
    which a regularizer that only rescaled its units would move as well."""
    methods = {name: spec for name, spec in METHODS.items() if name in ("baseline_run", "plain")}
    methods["turned"] = config_section("methods.*", {"criterion": "magnitude", "scope": "global",
                                                    "regularizer": "cosine", "weight": 1.0})
    evals = points(fabricated())
    evals = evals[evals["method"] != "orphan"].replace({"method": {"aligned": "turned"}})
    weights = fabricated_weights().replace({"method": {"aligned": "turned"}})
    # the regularized models' kept weights: half the turn of the unregularized ones, and a larger change
    turned = weights["method"] == "turned"
    weights.loc[~turned, "kept_cosine"] = 0.998
    weights.loc[turned, "kept_cosine"] = weights.loc[turned, "seed"].map({1: 0.9990, 2: 0.9991, 3: 0.9989})
    weights.loc[turned, "kept_change"] = 0.5
    table = findings_table(evals, methods, "en", LANGS, weights)
    row = rows(table, 4, "turned", 0.5, "kept weights'")
    assert row["measure"] == "kept weights' 1 - kept cosine (per mille): regularized - unregularized (per mille points)"
    mean, low, high = interval([1000 * (c - 0.998) * -1 for c in (0.9990, 0.9991, 0.9989)])
    assert (row["mean"], row["ci_low"], row["ci_high"], row["verdict"]) == (
        pytest.approx(mean), pytest.approx(low), pytest.approx(high), "supported")


def test_claim_4_averages_the_matrices_measured_in_both_models_and_names_what_it_left_out():
    weights = fabricated_weights()
    # seed 1: the regularized model kept nothing of matrix k at 0.5, so k leaves both means there
    gone = (weights["method"] == "aligned") & (weights["seed"] == 1) & (weights["sparsity_target"] == 0.5) \
        & (weights["parameter"] == "k")
    weights.loc[gone, "kept_change"] = math.nan
    # seed 3 has no weight files of the regularized method at 0.9
    weights = weights[~((weights["method"] == "aligned") & (weights["seed"] == 3) & (weights["sparsity_target"] == 0.9))]
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, weights)
    row = rows(table, 4, "aligned", 0.5, "kept weights'")
    shifts = KEPT_SHIFT[0.5]
    assert row["mean"] == pytest.approx((100 * shifts[0] + 150 * shifts[1] + 150 * shifts[2]) / 3)
    row = rows(table, 4, "aligned", 0.9, "kept weights'")
    assert row["seeds"] == 2 and "seeds without both weight files left out: 3" in row["detail"]


def test_claim_4_names_the_seeds_whose_models_kept_different_steps():
    """On the ladder each rung starts from the rung before's kept model: a seed whose two models
    kept different steps at 0.5 differs in retraining at 0.7 and 0.9 too."""
    weights = fabricated_weights().assign(kept_step=150)
    earlier = (weights["method"] == "aligned") & (weights["seed"] == 3) & (weights["sparsity_target"] == 0.5)
    weights.loc[earlier, "kept_step"] = 75
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, weights)
    for target in (0.5, 0.7, 0.9):
        assert ("model selection kept different retraining steps on seed 3 (this target or one before)"
                in rows(table, 4, "aligned", target, "kept weights'")["detail"])


def with_last_step(weights: pd.DataFrame, shift: float) -> pd.DataFrame:
    """The prune job's measures after the rung's last step (150): the kept change, the regularized
    models' ``shift`` lower (the kept steps' files say otherwise where KEPT_SHIFT is > 0)."""
    aligned = weights["method"] == "aligned"
    return weights.assign(last_step=150, last_kept_cosine=weights["kept_cosine"],
                          last_kept_change=weights["kept_change"] - shift * aligned)


def test_claim_4_compares_the_models_after_the_rungs_last_step():
    """Model selection may keep different steps of two models; after the last step both had the
    whole budget: the row reads the last step's measures, and names only the kept steps of the
    targets before (the rung's start models)."""
    weights = with_last_step(fabricated_weights(), 0.01)
    earlier = (weights["method"] == "aligned") & (weights["seed"] == 3) & (weights["sparsity_target"] == 0.5)
    weights.loc[earlier, "kept_step"] = 75
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, weights)
    for target in (0.5, 0.7, 0.9):
        row = rows(table, 4, "aligned", target, "kept weights'")
        mean, low, high = interval([100 * (1.5 * shift - 0.01) for shift in KEPT_SHIFT[target]])
        assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high))
        assert row["verdict"] == "supported"  # 0.9 at the kept steps: contradicted
        assert "after the rung's last step (step 150)" in row["detail"]
        named = "model selection kept different retraining steps on seed 3 at a target before" in row["detail"]
        assert named == (target > 0.5)  # at 0.5 the two models started from the same dense model


def test_claim_4_reads_the_kept_steps_where_a_seed_has_no_last_step_measures():
    weights = with_last_step(fabricated_weights(), 0.01)
    older = (weights["seed"] == 3) & (weights["sparsity_target"] == 0.7)  # written by older code
    weights.loc[older, ["last_kept_change", "last_kept_cosine", "last_step"]] = math.nan
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, weights)
    row = rows(table, 4, "aligned", 0.7, "kept weights'")
    assert row["mean"] == pytest.approx(interval([100 * 1.5 * shift for shift in KEPT_SHIFT[0.7]])[0])
    assert "at the steps model selection kept (no last step's measures on seed 3: models made before" in row["detail"]
    assert "after the rung's last step" in rows(table, 4, "aligned", 0.9, "kept weights'")["detail"]
    # the baseline's file alone without them: the same
    weights = with_last_step(fabricated_weights(), 0.01)
    weights.loc[(weights["method"] == "plain") & (weights["seed"] == 2), "last_kept_change"] = math.nan
    row = rows(findings_table(points(fabricated()), METHODS, "en", LANGS, weights), 4, "aligned", 0.5, "kept weights'")
    assert "no last step's measures on seed 2" in row["detail"]


def test_claim_4_on_the_independent_schedule_names_no_earlier_targets_kept_steps():
    """Every rung from the dense model: what model selection kept at 0.5 does not reach 0.7."""
    weights = with_last_step(fabricated_weights(), 0.01)
    weights.loc[(weights["method"] == "aligned") & (weights["seed"] == 3) & (weights["sparsity_target"] == 0.5),
                "kept_step"] = 75
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, weights, ladder=False)
    assert "model selection kept different" not in rows(table, 4, "aligned", 0.9, "kept weights'")["detail"]
    older = fabricated_weights()  # kept steps only: this target's kept steps alone count
    older.loc[(older["method"] == "aligned") & (older["seed"] == 3) & (older["sparsity_target"] == 0.5),
              "kept_step"] = 75
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, older, ladder=False)
    assert "different retraining steps on seed 3 (this target)" in rows(table, 4, "aligned", 0.5, "kept weights'")["detail"]
    assert "different retraining steps" not in rows(table, 4, "aligned", 0.7, "kept weights'")["detail"]


def test_claim_4_reads_the_cosine_regularizers_turn_after_the_last_step():
    methods = {name: spec for name, spec in METHODS.items() if name in ("baseline_run", "plain")}
    methods["turned"] = config_section("methods.*", {"criterion": "magnitude", "scope": "global",
                                                    "regularizer": "cosine", "weight": 1.0})
    evals = points(fabricated())
    evals = evals[evals["method"] != "orphan"].replace({"method": {"aligned": "turned"}})
    weights = with_last_step(fabricated_weights().replace({"method": {"aligned": "turned"}}), 0.0)
    turned = weights["method"] == "turned"
    weights.loc[~turned, "last_kept_cosine"] = 0.998  # the kept steps' files: 0.99 for both
    weights.loc[turned, "last_kept_cosine"] = weights.loc[turned, "seed"].map({1: 0.9990, 2: 0.9991, 3: 0.9989})
    row = rows(findings_table(evals, methods, "en", LANGS, weights), 4, "turned", 0.5, "kept weights'")
    assert row["mean"] == pytest.approx(-1000 * (0.9990 - 0.998)) and row["verdict"] == "supported"


def test_claim_4_is_its_own_holm_family_and_leaves_the_claims_unchanged():
    evals = points(fabricated())
    without = findings_table(evals, METHODS, "en", LANGS)
    with_weights = findings_table(evals, METHODS, "en", LANGS, fabricated_weights())
    claims = with_weights[with_weights["claim"] != 4]
    pd.testing.assert_frame_equal(claims.reset_index(drop=True), without[without["claim"] != 4].reset_index(drop=True))
    check = with_weights[with_weights["claim"] == 4]
    # one row per target for the one regularized method with a baseline (orphan has none: its claim 2 row says so)
    assert check["method"].tolist() == ["aligned"] * 3 and check["p"].notna().all()
    p = check["p"].sort_values()
    assert check.loc[p.index[0], "p_holm"] == pytest.approx(3 * p.iloc[0])
    assert check.loc[p.index[2], "p_holm"] == pytest.approx(max(3 * p.iloc[0], 2 * p.iloc[1], p.iloc[2]))


def test_claim_4_not_tested_on_weight_files_without_the_kept_measures():
    older = fabricated_weights().assign(kept_change=math.nan)
    table = findings_table(points(fabricated()), METHODS, "en", LANGS, older)
    check = table[table["claim"] == 4]
    assert len(check) == 1 and check["verdict"].iloc[0] == ("not tested (weight-alignment files written before the kept weights' measures: "
                              "add --forcerun weight_alignment)")


def test_claim_4_written_from_the_weight_files(tmp_path):
    csv = tmp_path / "evals.csv"
    fabricated().assign(code="aaaaaaaaaaaa").to_csv(csv, index=False)
    weights, files = fabricated_weights(), []
    for (method, target, seed), frame in weights.groupby(["method", "sparsity_target", "seed"]):
        files.append(tmp_path / f"{method}-{target}-{seed}.csv")
        frame.to_csv(files[-1], index=False)
    outputs = [tmp_path / "findings.csv", tmp_path / "findings.md"]
    written = write_findings(csv, outputs, methods=METHODS, train_language="en", split="test", languages=LANGS,
                             weight_files=files)
    expected = findings_table(points(fabricated()), METHODS, "en", LANGS, weights)
    assert written["verdict"].tolist() == expected["verdict"].tolist()
    assert written["mean"].tolist() == pytest.approx(expected["mean"].tolist(), nan_ok=True)
    markdown = outputs[1].read_text()
    assert "4. the alignment regularizers hold the kept weights closer" in markdown
    assert f"and {len(files)} weight-alignment files made by the code aaaaaaaaaaaa " in markdown
    assert "Claim 4 (a check, not a claim) is corrected over its own 3 rows with a p" in markdown
    # weight files of another code version than the evaluations': the same warning as for evaluations
    weights.assign(code="bbbbbbbbbbbb").iloc[:3].to_csv(files[0], index=False)
    write_findings(csv, outputs, methods=METHODS, train_language="en", split="test", languages=LANGS,
                   weight_files=files)
    assert "**Warning**: the evaluations were made by 2 versions of the code" in outputs[1].read_text()
