"""The regularizer-weight sweep's table and choice, on hand-written run folders."""

import pandas as pd
import pytest
import yaml

from alignprune.io import write_json
from alignprune.sweep import collect_runs, summarise, write_sweep


def fake_run(root, method, regularizer, weight, seed, sparsity, dev):
    model_dir = root / f"{method}-{weight}-{seed}-{sparsity}"
    write_json(model_dir / "training.json", {"best_dev_accuracy": dev, "dev_accuracy_before_retraining": dev / 2})
    write_json(model_dir / "sparsity.json", {"regularizer": regularizer, "weight": weight, "sparsity_prunable": sparsity})
    return (method, f"{weight:g}", str(seed), f"{sparsity:.2f}", str(model_dir))


@pytest.fixture
def runs(tmp_path):
    dev = {  # (weight, seed, sparsity) -> English dev accuracy
        (1.0, 1, 0.5): 0.80, (1.0, 1, 0.9): 0.60, (1.0, 2, 0.5): 0.82, (1.0, 2, 0.9): 0.62,
        (10.0, 1, 0.5): 0.84, (10.0, 1, 0.9): 0.64, (10.0, 2, 0.5): 0.80, (10.0, 2, 0.9): 0.60,
        (100.0, 1, 0.5): 0.70, (100.0, 1, 0.9): 0.50, (100.0, 2, 0.5): 0.70, (100.0, 2, 0.9): 0.50,
    }
    cosine = [fake_run(tmp_path, "mg_cosine", "cosine", *key, acc) for key, acc in dev.items()]
    # l2: two weights with the same mean; the smaller one must win
    l2 = [fake_run(tmp_path, "mg_l2", "l2", w, 1, 0.5, 0.75) for w in (0.1, 0.01)]
    return cosine + l2


def test_summary_means_over_seeds_and_targets_and_picks_the_best_weight(runs):
    frame = collect_runs(runs)
    assert len(frame) == 14 and frame["dev_accuracy"].max() == pytest.approx(84.0)
    summary = summarise(frame).set_index(["method", "weight"])
    assert summary.loc[("mg_cosine", 1.0), "dev_at_0.50"] == pytest.approx(81.0)
    assert summary.loc[("mg_cosine", 1.0), "dev_at_0.90"] == pytest.approx(61.0)
    assert summary.loc[("mg_cosine", 10.0), "dev_mean"] == pytest.approx(72.0)
    assert summary.loc[("mg_cosine", 1.0), "dev_mean"] == pytest.approx(71.0)
    chosen = summary[summary["chosen"]].index.tolist()
    assert chosen == [("mg_cosine", 10.0), ("mg_l2", 0.01)]  # best mean; a tie goes to the smaller weight


def test_write_sweep_writes_every_output_and_a_mergeable_yaml(runs, tmp_path):
    outputs = {name: tmp_path / "out" / f"{name}.{ext}" for name, ext in
               [("runs", "csv"), ("summary", "csv"), ("markdown", "md"), ("chosen", "yaml")]}
    write_sweep(runs, outputs)
    assert yaml.safe_load(outputs["chosen"].read_text()) == {
        "methods": {"mg_cosine": {"weight": 10.0}, "mg_l2": {"weight": 0.01}}
    }
    assert len(pd.read_csv(outputs["runs"])) == 14
    markdown = outputs["markdown"].read_text()
    assert "| mg_cosine" in markdown and "72.0" in markdown and "yes" in markdown


def test_a_sweep_without_regularized_methods_is_an_error():
    with pytest.raises(ValueError, match="no enabled method has a regularizer"):
        collect_runs([])
