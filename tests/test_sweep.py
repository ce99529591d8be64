"""The regularizer-weight sweep's table and choice, on hand-written run folders."""

import itertools
import json
import random
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alignprune import code_version
from alignprune.chosen_weights import read_chosen_code, unregularized_bases
from alignprune.io import write_json
from alignprune.model_key import Layout, ModelKey
from alignprune.sweep import collect_runs, collect_zero_shot, summarise, write_sweep


def fake_run(root, method, regularizer, weight, seed, sparsity, dev):
    """A sweep model's folder, named as the workflow names it."""
    model_dir = Layout(str(root), str(root), str(root)).model_dir(ModelKey.of("xnli", seed, method, sparsity, weight))
    write_json(f"{model_dir}/training.json", {"best_dev_accuracy": dev, "dev_accuracy_before_retraining": dev / 2})
    write_json(f"{model_dir}/sparsity.json", {"regularizer": regularizer, "weight": weight, "sparsity_prunable": sparsity})
    return model_dir


@pytest.fixture
def runs(tmp_path):
    dev = {  # (weight, seed, sparsity) -> English dev accuracy
        (1.0, 1, 0.5): 0.80, (1.0, 1, 0.9): 0.60, (1.0, 2, 0.5): 0.82, (1.0, 2, 0.9): 0.62,  # mean 71.0
        (10.0, 1, 0.5): 0.84, (10.0, 1, 0.9): 0.64, (10.0, 2, 0.5): 0.80, (10.0, 2, 0.9): 0.60,  # 72.0, the best
        (30.0, 1, 0.5): 0.82, (30.0, 1, 0.9): 0.62, (30.0, 2, 0.5): 0.818, (30.0, 2, 0.9): 0.61,  # 71.7
        (100.0, 1, 0.5): 0.70, (100.0, 1, 0.9): 0.50, (100.0, 2, 0.5): 0.70, (100.0, 2, 0.9): 0.50,  # 60.0
    }
    cosine = [fake_run(tmp_path, "mg_cosine", "cosine", *key, acc) for key, acc in dev.items()]
    # l2: two weights with the same mean; the stronger one is as good: it is chosen, at the edge
    l2 = [fake_run(tmp_path, "mg_l2", "l2", w, 1, 0.5, 0.75) for w in (0.1, 0.01)]
    return cosine + l2


def chosen(summary):
    return summary[summary["chosen"]].set_index("method")["weight"].to_dict()


def test_summary_means_over_seeds_and_targets(runs):
    frame = collect_runs(runs)
    assert len(frame) == 18 and frame["dev_accuracy"].max() == pytest.approx(84.0)
    summary = summarise(frame).set_index(["method", "weight"])
    assert summary.loc[("mg_cosine", 1.0), "dev_at_0.50"] == pytest.approx(81.0)
    assert summary.loc[("mg_cosine", 1.0), "dev_at_0.90"] == pytest.approx(61.0)
    assert summary.loc[("mg_cosine", 10.0), "dev_mean"] == pytest.approx(72.0)
    assert summary.loc[("mg_cosine", 30.0), "dev_mean"] == pytest.approx(71.7)
    assert summary.loc[("mg_cosine", 1.0), "dev_mean"] == pytest.approx(71.0)


def test_the_strongest_weight_within_the_tolerance_of_the_best_is_chosen(runs):
    frame = collect_runs(runs)
    # 30 loses 0.3 points to the best weight (10): within 0.5, and stronger
    assert chosen(summarise(frame, tolerance=0.5)) == {"mg_cosine": 30.0, "mg_l2": 0.1}
    # tolerance 0: the best English dev itself (equal means: the stronger weight)
    assert chosen(summarise(frame, tolerance=0.0)) == {"mg_cosine": 10.0, "mg_l2": 0.1}
    # 1 point: 1.0 is within too, but 30 is still the strongest within; 100 loses 12 points
    assert chosen(summarise(frame, tolerance=1.0)) == {"mg_cosine": 30.0, "mg_l2": 0.1}
    assert chosen(summarise(frame, tolerance=12.0)) == {"mg_cosine": 100.0, "mg_l2": 0.1}
    with pytest.raises(ValueError, match="negative"):
        summarise(frame, tolerance=-1.0)


def test_english_dev_falling_with_the_weight_does_not_switch_the_regularizer_off(tmp_path):
    """The demo's pattern: every stronger weight costs a little English dev accuracy. Picking the
    best English dev would take the weakest weight, i.e. almost no regularizer."""
    devs = {1.0: 0.900, 10.0: 0.898, 100.0: 0.896, 1000.0: 0.880}
    frame = collect_runs([fake_run(tmp_path, "m", "cosine", w, 1, 0.5, d) for w, d in devs.items()])
    summary = summarise(frame, tolerance=0.5).set_index("weight")
    assert summary.index[summary["chosen"]].tolist() == [100.0]  # 0.4 points below the best; 1000 loses 2
    assert summary["within_tolerance"].tolist() == [True, True, True, False]
    assert summary.loc[100.0, "edge"] == ""


def test_a_choice_at_an_end_of_its_grid_is_flagged(tmp_path):
    weakest = [fake_run(tmp_path, "a", "l2", w, 1, 0.5, d) for w, d in ((0.1, 0.9), (1.0, 0.8), (10.0, 0.7))]
    strongest = [fake_run(tmp_path, "b", "l2", w, 1, 0.5, d) for w, d in ((0.1, 0.7), (1.0, 0.8), (10.0, 0.9))]
    inside = [fake_run(tmp_path, "c", "l2", w, 1, 0.5, d) for w, d in ((0.1, 0.9), (1.0, 0.9), (10.0, 0.7))]
    summary = summarise(collect_runs(weakest + strongest + inside))
    picked = summary[summary["chosen"]].set_index("method")
    assert picked["weight"].to_dict() == {"a": 0.1, "b": 10.0, "c": 1.0}
    assert picked["edge"].to_dict() == {"a": "weakest", "b": "strongest", "c": ""}
    assert (summary.loc[~summary["chosen"], "edge"] == "").all()


def zero_shot_files(root, runs, accuracy):
    """Eval files of every sweep model (a folder of ``runs``) on two zero-shot languages."""
    evaluations = []
    for model_dir in runs:
        key = ModelKey.parse(model_dir)
        for lang in ("de", "sw"):
            path = Layout(str(root), str(root), str(root)).eval_file(key, "test", lang)
            write_json(path, {"accuracy": accuracy(key.method, float(key.weight), key.seed, key.sparsity, lang)})
            evaluations.append(path)
    return evaluations


def test_zero_shot_accuracy_is_reported_and_never_changes_the_choice(runs, tmp_path):
    frame = collect_runs(runs)
    expected = chosen(summarise(frame))
    rng = random.Random(0)
    for trial in range(5):
        table = {key: rng.random() for key in itertools.product(
            ["mg_cosine", "mg_l2"], [0.01, 0.1, 1.0, 10.0, 30.0, 100.0], [1, 2], [0.5, 0.9], ["de", "sw"])}
        if trial == 0:  # the weakest weights far ahead in zero-shot: still not chosen
            table = {key: (0.99 if key[1] in (0.01, 1.0) else 0.1) for key in table}
        zero_shot = collect_zero_shot(zero_shot_files(tmp_path / str(trial), runs, lambda *key: table[key]))
        summary = summarise(frame, zero_shot=zero_shot)
        assert chosen(summary) == expected
        row = summary.set_index(["method", "weight"]).loc[("mg_cosine", 30.0)]
        hand = sum(table[("mg_cosine", 30.0, s, t, lang)] for s in (1, 2) for t in (0.5, 0.9) for lang in ("de", "sw")) / 8
        assert row["zero_shot_mean"] == pytest.approx(100 * hand)


def test_write_sweep_writes_every_output_and_a_mergeable_yaml(runs, tmp_path):
    outputs = {name: tmp_path / "out" / f"{name}.{ext}" for name, ext in
               [("runs", "csv"), ("summary", "csv"), ("markdown", "md"), ("chosen", "yaml"), ("figure", "png")]}
    zero_shot = zero_shot_files(tmp_path, runs, lambda method, weight, *rest: 0.5 - weight / 1000)
    # one run made by another version of the code (the rest have no record: written by hand)
    (Path(runs[0]) / code_version.CODE_FILE).write_text(json.dumps({"code": ["aaaaaaaaaaaa"]}))
    write_sweep(runs, outputs, tolerance=0.5, zero_shot=zero_shot)
    assert yaml.safe_load(outputs["chosen"].read_text()) == {
        "methods": {"mg_cosine": {"weight": 30.0}, "mg_l2": {"weight": 0.1}}
    }
    # the code that made the runs and chose, in a comment: the file stays a config the schema takes
    assert read_chosen_code(outputs["chosen"]) == sorted(["aaaaaaaaaaaa", code_version.CURRENT, code_version.UNRECORDED])
    assert len(pd.read_csv(outputs["runs"])) == 18
    summary = pd.read_csv(outputs["summary"]).set_index(["method", "weight"])
    assert summary.loc[("mg_cosine", 100.0), "zero_shot_mean"] == pytest.approx(40.0)
    markdown = outputs["markdown"].read_text()
    assert "| mg_cosine" in markdown and "72.0" in markdown and "yes" in markdown
    assert "within 0.5 points" in markdown and "never used to choose" in markdown
    assert "**Edge:** mg_l2's choice 0.1 is the strongest weight of its grid" in markdown
    assert outputs["figure"].stat().st_size > 0 and outputs["figure"].with_suffix(".pdf").stat().st_size > 0


def test_a_sweep_without_regularized_methods_is_an_error():
    with pytest.raises(ValueError, match="no enabled method has a regularizer"):
        collect_runs([])


def test_each_regularized_method_gets_the_first_enabled_unregularized_method_of_its_criterion_and_scope():
    def spec(criterion, scope="global", regularizer="none", weight=0.0, enabled=True, **extra):
        return {"enabled": enabled, "criterion": criterion, "scope": scope, "regularizer": regularizer,
                "weight": weight, "reference": "dense", "units": "rows", **extra}

    methods = {
        "retrain_only": spec("none"),  # the control prunes nothing: never a base
        "magnitude_layer": spec("magnitude", "layer", enabled=False),  # disabled: it has no models
        "magnitude_global": spec("magnitude"),
        "magnitude_global_again": spec("magnitude"),  # the first in config order is the base
        "gradient": spec("gradient", gradient_batches=32),
        "mg_cosine": spec("magnitude", regularizer="cosine", weight="sweep", reference="pretrained"),
        "ml_l2": spec("magnitude", "layer", regularizer="l2", weight=0.1),
        "gradient_l2": spec("gradient", regularizer="l2", weight=0.1, gradient_batches=8),
        "lamp_cosine": spec("lamp", regularizer="cosine", weight=1.0),
        "mg_off": spec("magnitude", regularizer="l2", weight=0.1, enabled=False),
    }
    assert unregularized_bases(methods) == {
        "mg_cosine": "magnitude_global", "ml_l2": None, "gradient_l2": "gradient", "lamp_cosine": None}


@pytest.fixture
def with_reference(runs, tmp_path):
    """``runs`` and the unregularized base "mg" on the same seeds and targets: English dev mean 75.0."""
    dev = {(1, 0.5): 0.86, (1, 0.9): 0.66, (2, 0.5): 0.84, (2, 0.9): 0.64}
    return runs + [fake_run(tmp_path, "mg", "none", 0, *key, acc) for key, acc in dev.items()]


REFERENCES = {"mg_cosine": "mg", "mg_l2": "mg"}


def test_the_unregularized_reference_is_reported_against_each_weight_and_never_chosen(runs, with_reference):
    without = summarise(collect_runs(runs))
    summary = summarise(collect_runs(with_reference), references=REFERENCES)
    first = summary.iloc[0]
    assert (first["method"], first["regularizer"], first["weight"], first["chosen"], first["edge"]) == (
        "mg", "none", 0.0, False, "")
    assert first["dev_mean"] == pytest.approx(75.0) and first["dev_at_0.50"] == pytest.approx(85.0)
    assert chosen(summary) == chosen(without) == {"mg_cosine": 30.0, "mg_l2": 0.1}
    regularized = summary.iloc[1:].set_index(["method", "weight"])
    assert (regularized["unregularized"] == "mg").all()
    assert regularized["dev_vs_unregularized"].to_dict() == pytest.approx(
        {("mg_cosine", 1.0): -4.0, ("mg_cosine", 10.0): -3.0, ("mg_cosine", 30.0): -3.3,
         ("mg_cosine", 100.0): -15.0, ("mg_l2", 0.01): 0.0, ("mg_l2", 0.1): 0.0})
    # without the mapping a method has no reference: its difference stays empty
    unmapped = summarise(collect_runs(with_reference), references={"mg_l2": "mg"}).set_index("method")
    assert unmapped.loc["mg_cosine", "dev_vs_unregularized"].isna().all()


def test_the_written_table_and_choice_file_show_the_reference_without_choosing_it(with_reference, tmp_path):
    outputs = {"markdown": tmp_path / "out/table.md", "chosen": tmp_path / "out/chosen.yaml",
               "figure": tmp_path / "out/figure.png"}
    zero_shot = zero_shot_files(tmp_path, with_reference, lambda method, weight, *rest: 0.6 if method == "mg" else 0.5)
    summary = write_sweep(with_reference, outputs, zero_shot=zero_shot, references=REFERENCES)
    assert summary["zero_shot_vs_unregularized"].dropna().tolist() == pytest.approx([-10.0] * 6)
    assert set(yaml.safe_load(outputs["chosen"].read_text())["methods"]) == {"mg_cosine", "mg_l2"}
    markdown = outputs["markdown"].read_text()
    assert "Unregularized reference (mg: regularizer none, weight 0" in markdown
    assert "| mg " in markdown and "-3.3" in markdown and "+0.0" in markdown
    assert outputs["figure"].stat().st_size > 0
