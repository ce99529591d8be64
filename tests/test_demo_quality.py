"""The demo's dense models at full demo size transfer like XLM-R: calibration on every demo seed.

Builds the testbed exactly as profiles/demo configures it, fine-tunes every demo seed on
English for every enabled task with the demo's settings and evaluates every language's test
set (alignprune.calibrate, the same code as ``python -m alignprune.calibrate --split test``).
Pruned models play no part. Several minutes on 2 CPU cores.
"""

import pandas as pd
import pytest
import torch

from alignprune import calibrate

DEMO = calibrate.load()
TASKS = calibrate.enabled_tasks(DEMO)
TARGETS = calibrate.Targets()


PAWS_OFF = ("the PAWS-like task reaches 78-96% English accuracy on seeds 1-3 with its own fine-tuning "
            "(2e-4, 12 epochs) but does not transfer (r <= 0.12 for fr, de, ja, tr): profiles/demo disables it")


def test_the_demo_runs_enough_languages_and_seeds():
    assert "xnli" in TASKS  # else every test parametrized over TASKS would be skipped, none failed
    assert len(DEMO["seeds"]) >= 3
    for task in DEMO["tasks"]:
        assert len(set(DEMO["tasks"][task]["languages"]) - {"en"}) >= TARGETS.languages


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=PAWS_OFF)
def test_the_demo_runs_both_tasks():
    assert TASKS == ["xnli", "pawsx"]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    # the testbed builds on the demo profile's cores (2), as its rule does; fine-tuning on threads.train.
    # The test sets, as the demo's findings: what these tests check is what the README reports of them
    # (a calibration that chooses settings scores the validation sets, calibrate's default).
    table, timings = calibrate.measure(DEMO, DEMO["seeds"], TASKS, tmp_path_factory.mktemp("calibration"),
                                       split="test")
    print(calibrate.render(table))
    print(timings)
    return table


def cell(table, task, seed):
    found = table[(table["task"] == task) & (table["seed"] == seed)]
    assert set(found["language"]) == set(DEMO["tasks"][task]["languages"])
    return found.set_index("language")


# The floor the demo's dense models hold on every seed: English well above chance, zero-shot
# languages well above chance and graded. (English dev 95.2-98.2% on seeds 1-3 with the demo's
# fine-tuning; the 90% target, on the test sets, is checked below.)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("seed", DEMO["seeds"])
def test_dense_demo_model_learns_english_and_transfers_with_graded_accuracy(calibration, task, seed):
    found = cell(calibration, task, seed)
    zero_shot = found.drop(index="en")["retention"]
    assert found["dev_accuracy"].iloc[0] >= 0.94
    assert zero_shot.mean() >= 0.35
    assert zero_shot.max() >= 0.75 and zero_shot.max() - zero_shot.min() >= 0.30


@pytest.mark.parametrize("task", TASKS)
def test_every_seed_is_calibrated(calibration, task):
    assert len(calibration.loc[calibration["task"] == task, "seed"].unique()) == len(DEMO["seeds"]) >= 3


# Met since dropout and the data order draw separate streams (b2920f4; the widest range over seeds
# 1-3 on the test sets is zh's 0.19, fr's had been 0.46): the findings pair every comparison by seed
# all the same.
@pytest.mark.parametrize("task", TASKS)
def test_each_languages_retention_is_stable_across_seeds(calibration, task):
    """Paired comparisons over seeds need a dense profile that the fine-tuning seed barely moves."""
    found = calibration[(calibration["task"] == task) & (calibration["language"] != "en")]
    ranges = found.groupby("language")["retention"].agg(lambda r: r.max() - r.min())
    assert ranges.max() <= 0.25, ranges.to_dict()


# The calibration targets (XLM-R's transfer profile, calibrate.Targets) hold on seeds 1 and 3; on
# seed 2 de keeps r 0.39 (57.6%, English 96.2%) (profiles/demo/testbed.yaml, README): de just
# below the retention range, and no other target missed.
MISSES = {("xnli", 2): {"de"}}
# how far outside its range a known miss's retention may fall before it counts as a worse
# calibration (de: 0.01 below it now)
MISS_MARGIN = 0.15


@pytest.mark.parametrize("task, seed", [(task, seed) for task in TASKS for seed in DEMO["seeds"]])
def test_dense_demo_model_transfers_like_xlmr_but_for_the_known_misses(calibration, task, seed):
    found = cell(calibration, task, seed)
    missed = MISSES.get((task, seed), set())
    low, high = TARGETS.retention
    english = found.loc["en", "accuracy"]
    assert calibrate.problems(found.reset_index(), TARGETS) == (
        [f"{task} seed {seed}: English accuracy {english:.3f} < {TARGETS.english}"] if "en" in missed else []
    ) + [
        f"{task} seed {seed}: {lang} retention {r:.2f} outside [{low}, {high}]"
        for lang, r in found["retention"].items() if lang in missed - {"en"}
    ]
    assert found.loc[sorted(missed - {"en"}), "retention"].between(low - MISS_MARGIN, high + MISS_MARGIN).all()
    assert ("en" in missed) == (TARGETS.english - 0.01 <= english < TARGETS.english)  # a near miss


# Every NLI-like pair of the demo is labelled by two surface cues, with no word of the pair
# compared (testbed.surface_cue_label: negation in one sentence only, a shorter hypothesis), and
# the dense models answer by them: 0.0% English on 1,000 pairs those cues label wrong, on each of seeds 1-3
# (testbed.cue_contrast_frame; README, the offline demo). A model that compared the words would
# score near 100%; always one label, or "identical sentences: entailment, else the cues", 50%.
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="the dense NLI models read length and negation, not the words: "
                          "0.0% English on pairs those cues label wrong (seeds 1-3)")
@pytest.mark.parametrize("seed", DEMO["seeds"])
def test_dense_nli_model_compares_the_two_sentences_words(calibration, seed):
    assert cell(calibration, "xnli", seed).loc["en", "cue_contrast_accuracy"] >= 0.9


def fabricated(accuracies: dict, task="pawsx"):
    """A calibration table of one seed from literal accuracies (English's under "en")."""
    rows = [{"task": task, "seed": 1, "language": lang, "accuracy": acc} for lang, acc in accuracies.items()]
    return calibrate.with_retention(pd.DataFrame(rows))


def test_chance_is_one_over_the_number_of_labels():
    assert calibrate.chance("xnli") == 1 / 3
    assert calibrate.chance("pawsx") == 0.5


# PAWS-like (chance 0.5), English 0.95: accuracy 0.5 + r * 0.45, so r fr 0.9 es 0.85 de 0.7 zh 0.6 ja 0.5
GOOD = {"en": 0.95, "fr": 0.905, "es": 0.8825, "de": 0.815, "zh": 0.77, "ja": 0.725}


def test_retention_is_measured_against_chance_and_english():
    table = fabricated(GOOD)
    assert table.set_index("language")["retention"].round(6).to_dict() == {
        "en": 1.0, "fr": 0.9, "es": 0.85, "de": 0.7, "zh": 0.6, "ja": 0.5}
    assert calibrate.problems(table) == []
    # NLI-like (chance 1/3), English 0.9: r = (acc - 1/3) / (0.9 - 1/3), e.g. 0.7 -> 11/17
    nli = fabricated({"en": 0.9, "fr": 0.7, "es": 0.85, "de": 0.6, "zh": 0.8, "ja": 0.62}, task="xnli")
    assert nli.set_index("language")["retention"].to_dict() == pytest.approx(
        {"en": 1.0, "fr": 11 / 17, "es": 31 / 34, "de": 8 / 17, "zh": 14 / 17, "ja": 43 / 85})
    assert calibrate.problems(nli) == []


@pytest.mark.parametrize("accuracies, message", [
    ({**GOOD, "ja": 0.635}, "ja retention 0.30 outside"),
    ({**GOOD, "fr": 0.9455}, "fr retention 0.99 outside"),
    ({**GOOD, "fr": 0.8375, "es": 0.815}, "best retention 0.75 < 0.8"),
    ({**GOOD, "de": 0.86, "zh": 0.8375, "ja": 0.8375}, "retention spread 0.15 < 0.2"),
    ({k: v for k, v in GOOD.items() if k != "ja"}, "4 languages besides English < 5"),
    # English 0.88: r as GOOD's at 0.5 + r * 0.38
    ({"en": 0.88, "fr": 0.842, "es": 0.823, "de": 0.766, "zh": 0.728, "ja": 0.69}, "English accuracy 0.880 < 0.9"),
])
def test_each_missed_target_is_named(accuracies, message):
    found = calibrate.problems(fabricated(accuracies))
    assert len(found) == 1 and message in found[0], found
