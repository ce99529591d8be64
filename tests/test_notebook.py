"""The exploration notebook on fabricated tables: it reads the config's results, and refuses another
config's."""

import re

import nbformat
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from alignprune.results import FORMATS, TABLES, write_tables

from workflow_helpers import ROOT, load_config

DEMO_CONFIG = ["config.yaml", "profiles/demo/testbed.yaml"]
DEMO = load_config(*DEMO_CONFIG)
METHODS = [name for name, spec in DEMO["methods"].items() if spec["enabled"]]
CONTROLS = [name for name in METHODS if DEMO["methods"][name]["criterion"] == "none"]
LANGUAGES = ["en", "de", "zh"]


def fabricate(results, methods=METHODS):
    """{results}/tables/xnli: an eval table (2 seeds, 2 targets) and the tables job's tables from it."""
    rows = []
    for seed in (1, 2):
        for i, lang in enumerate(LANGUAGES):
            rows.append({"method": "dense", "sparsity_target": 0.0, "seed": seed, "language": lang,
                         "accuracy": 0.9 - 0.1 * i + 0.01 * seed})
            for m, method in enumerate(methods):
                for target in (0.5, 0.9):
                    rows.append({"method": method, "sparsity_target": target, "seed": seed, "language": lang,
                                 "accuracy": 0.9 - 0.1 * i + 0.01 * seed - target * (0.1 + 0.02 * m) - 0.02 * i})
    evals = pd.DataFrame(rows).assign(task="xnli", split="test", n_examples=1000, code="0123abcd")
    evals["correct"] = (evals["accuracy"] * 1000).round().astype(int)
    evals["sparsity_prunable"] = evals["sparsity_target"].where(~evals["method"].isin(CONTROLS), 0.0)
    evals["sparsity_all"] = evals["sparsity_prunable"] / 2
    folder = results / "tables" / "xnli"
    folder.mkdir(parents=True)
    evals.to_csv(folder / "evals.csv", index=False)
    write_tables(folder / "evals.csv", [folder / f"{name}.{fmt}" for name in TABLES for fmt in FORMATS],
                 train_language="en", split="test", methods=METHODS, languages=LANGUAGES, controls=CONTROLS)


def execute(monkeypatch, configfiles, results=None):
    """Run the notebook as the demo test does; returns its code cells' outputs."""
    if results is None:
        monkeypatch.delenv("ALIGNPRUNE_RESULTS", raising=False)
    else:
        monkeypatch.setenv("ALIGNPRUNE_RESULTS", str(results))
    monkeypatch.setenv("ALIGNPRUNE_CONFIG", " ".join(map(str, configfiles)))
    notebook = nbformat.read(ROOT / "notebooks/explore_results.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    return [cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"]


def overlay(tmp_path, results, **settings):
    path = tmp_path / "overlay.yaml"
    config = {"paths": {"results": str(results)}, "tasks": {"xnli": {"languages": LANGUAGES}},
              "seeds": [1, 2], "sparsities": [0.5, 0.9], **settings}
    path.write_text(yaml.safe_dump(config))
    return [*DEMO_CONFIG, path]


@pytest.mark.parametrize("analysis", [True, False])
def test_the_notebook_reads_the_configs_results_and_says_why_an_analysis_is_missing(tmp_path, monkeypatch, analysis):
    results = tmp_path / "study"  # the config's paths.results, no ALIGNPRUNE_RESULTS
    fabricate(results)
    outputs = execute(monkeypatch, overlay(tmp_path, results, analysis={"enabled": analysis}))
    flat = [o for cell in outputs for o in cell]
    assert not [o for o in flat if o.get("output_type") == "error"]
    # accuracy vs sparsity, zero-shot vs supervised, accuracy per language; no alignment figures
    assert sum("image/png" in o.get("data", {}) for o in flat) == 3
    said = "".join(o.get("text", "") for o in outputs[-1])
    if analysis:
        assert "not made yet" in said and "analysis.enabled is false" not in said
    else:
        assert "analysis.enabled is false" in said
    assert "representation_layers.csv, alignment_points.csv, alignment_vs_accuracy.csv" in said


def test_the_notebook_refuses_results_of_a_config_that_does_not_enable_their_task(tmp_path, monkeypatch):
    results = tmp_path / "demo"
    fabricate(results)
    configfiles = [*DEMO_CONFIG, "profiles/demo-paws/testbed.yaml"]  # the PAWS-like task alone
    with pytest.raises(CellExecutionError) as error:
        execute(monkeypatch, configfiles, results=results)
    message = str(error.value)
    assert "task xnli is not enabled in the config" in message
    assert str(results / "tables/xnli/evals.csv") in message and "profiles/demo-paws/testbed.yaml" in message


def test_the_notebook_refuses_results_with_a_method_the_config_does_not_enable(tmp_path, monkeypatch):
    results = tmp_path / "study"
    fabricate(results, methods=[*METHODS, "random"])  # random: disabled in the demo's config
    with pytest.raises(CellExecutionError) as error:
        execute(monkeypatch, overlay(tmp_path, results))
    message = str(error.value)
    assert "methods random are not enabled in the config" in message
    assert str(results / "tables/xnli/evals.csv") in message


def test_the_notebook_shows_the_tables_at_their_written_precision():
    notebook = nbformat.read(ROOT / "notebooks/explore_results.ipynb", as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "round(TABLE_DIGITS)" in source and "round(ANALYSIS_DIGITS)" in source
    assert not re.search(r"\.round\(\d", source)  # no digits of its own
