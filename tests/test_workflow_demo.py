"""The demo workflow end to end at CI size, then its outputs checked against their sources."""

import json
from pathlib import Path
import re
import struct

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from alignprune import code_version

from workflow_helpers import ROOT, job_counts, load_config, snakemake

SEEDS = [1, 2]
SPARSITIES = ["0.50", "0.90"]
LANGUAGES = {"xnli": ["en", "de", "zh"], "pawsx": ["en", "fr", "ja"]}
# The demo's own methods: the retraining control, global magnitude, and global magnitude with each
# of the paper's regularizers.
DEMO = load_config("config.yaml", "profiles/demo/testbed.yaml")
METHODS = [name for name, spec in DEMO["methods"].items() if spec["enabled"]]
CONTROLS = [name for name in METHODS if DEMO["methods"][name]["criterion"] == "none"]
SWEEP_WEIGHTS = {"l2": [0.01], "cosine": [1.0, 100.0], "frobenius": [100.0]}
DEMO_SWEEP_SEEDS = [1]
# the CI overlay's one `weight: sweep` method: the sweep retrains it alone (Frobenius keeps its number)
SWEPT = ["magnitude_global_cosine"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run the demo profile at CI size into a temporary folder; return that folder and the config."""
    root = tmp_path_factory.mktemp("demo")
    overlay = {
        "paths": {k: str(root / k) for k in ("resources", "results", "logs", "benchmarks")},
        "seeds": SEEDS,
        "sparsities": [float(s) for s in SPARSITIES],
        "tasks": {
            "xnli": {"enabled": True, "languages": LANGUAGES["xnli"]},
            # its own fine-tuning, over finetune below and the profile's: 38 steps
            "pawsx": {"enabled": True, "languages": LANGUAGES["pawsx"], "finetune": {"epochs": 3, "learning_rate": 1e-4}},
        },
        "finetune": {"epochs": 2, "eval_every": 20},  # 25 steps of 400 rows
        "retrain": {"steps": 10, "eval_every": 5},
        "testbed": {"pretrain_steps": 60, "sizes": {"train": 400, "validation": 100, "test": 150}},
        "sweep": {"seeds": DEMO_SWEEP_SEEDS, "sparsities": [], "weights": SWEEP_WEIGHTS},
        # cosine's weight from the sweep (its checkpoint runs inside the study); Frobenius keeps its number
        "methods": {SWEPT[0]: {"weight": "sweep"}},
    }
    (root / "ci.yaml").write_text(yaml.safe_dump(overlay))
    configfiles = ["config.yaml", "profiles/demo/testbed.yaml", str(root / "ci.yaml")]
    snakemake("--profile", "profiles/demo", "--configfile", *configfiles)
    # the study ran the sweep: its target has nothing left to do
    swept = snakemake("sweep", "--profile", "profiles/demo", "--configfile", *configfiles)
    assert "Nothing to be done" in swept.stdout + swept.stderr
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    return root, configfiles, config


def test_demo_runs_the_control_global_magnitude_and_the_papers_regularizers():
    regularizers = {DEMO["methods"][m]["regularizer"] for m in METHODS if DEMO["methods"][m]["criterion"] == "magnitude"}
    assert CONTROLS == ["retrain_only"] and "magnitude_global" in METHODS
    assert regularizers == {"none", "cosine", "frobenius"}
    assert DEMO["seeds"] == [1, 2, 3]
    for method in METHODS:
        if DEMO["methods"][method]["regularizer"] != "none":
            assert DEMO["methods"][method]["weight"] > 0 and DEMO["methods"][method]["scope"] == "global"


def variants():
    return ["dense"] + [f"method~{m}/sparsity~{s}" for m in METHODS for s in SPARSITIES]


def eval_path(root, task, seed, variant, lang):
    return root / f"results/{task}/seed~{seed}/{variant}/eval/test/{lang}.json"


def test_one_evaluation_and_one_representation_job_per_model(demo):
    root, configfiles, _ = demo
    plan = snakemake("-n", "--forceall", "--quiet", "rules", "--profile", "profiles/demo", "--configfile", *configfiles)
    counts = job_counts(plan.stdout + plan.stderr)
    models = len(SEEDS) * len(variants())
    # the sweep's models (cosine's weight: sweep puts the sweep table into the study), one job
    # each, and the unregularized reference ladder (magnitude_global at weight 0) once
    swept = len(DEMO_SWEEP_SEEDS) * len(SPARSITIES) * (1 + sum(
        len(SWEEP_WEIGHTS[DEMO["methods"][m]["regularizer"]]) for m in SWEPT))
    assert {rule: n for rule, n in counts.items() if rule.startswith(("evaluate", "representation"))} == {
        "evaluate_xnli": models, "evaluate_pawsx": models,  # one per model, not per language
        "evaluate_sweep_xnli": swept, "evaluate_sweep_pawsx": swept,
        "representation_alignment_xnli": len(variants()), "representation_alignment_pawsx": len(variants()),
    }


def test_every_eval_file_exists_with_its_measured_sparsity(demo):
    root, _, _ = demo
    for task, langs in LANGUAGES.items():
        for seed in SEEDS:
            for variant in variants():
                for lang in langs:
                    record = json.loads(eval_path(root, task, seed, variant, lang).read_text())
                    assert (record["task"], record["seed"], record["language"]) == (task, seed, lang)
                    assert 0.0 <= record["accuracy"] <= 1.0
                    assert record["correct"] == round(record["accuracy"] * record["n_examples"])
                    assert record["n_examples"] == 150
                    target = 0.0 if variant == "dense" else float(variant[-4:])
                    assert record["sparsity_target"] == target
                    # the retraining control prunes nothing at any rung
                    measured = 0.0 if variant.split("/")[0].removeprefix("method~") in CONTROLS else target
                    assert record["sparsity_prunable"] == pytest.approx(measured, abs=1e-3)
                    # the inputs it was made from, as recorded by the testbed job: the testbed and its seed
                    source = f"testbed (seed {DEMO['testbed']['seed']})"
                    assert (record["model_source"], record["data_source"]) == (source, source)
        inputs = pd.read_csv(root / f"results/tables/{task}/inputs.csv", dtype={"code": str})
        assert inputs[["model_source", "data_source"]].values.tolist() == [[source, source]]
        # every model and evaluation made by this code: one digest, no "+"
        assert inputs["code"].tolist() == [code_version.package_digest()]


def test_pruned_models_have_exact_sparsity_and_zeros_where_masked(demo):
    root, _, config = demo
    for task in LANGUAGES:
        for seed in SEEDS:
            for method in METHODS:
                previous = None
                for sparsity in SPARSITIES:
                    model_dir = root / f"results/{task}/seed~{seed}/method~{method}/sparsity~{sparsity}/model"
                    report = json.loads((model_dir / "sparsity.json").read_text())
                    weights = load_file(model_dir / "model.safetensors")
                    masks = load_file(model_dir / "masks.safetensors")
                    names = sorted(masks)
                    zeros = sum(int((weights[n] == 0).sum()) for n in names)
                    total = sum(weights[n].numel() for n in names)
                    assert report["zeros_prunable"] == zeros
                    # exact up to half a weight per layer; the retraining control prunes nothing
                    expected = 0.0 if method in CONTROLS else float(sparsity)
                    assert abs(zeros / total - expected) <= len(names) / total
                    for n in names:
                        assert torch.all(weights[n][~masks[n]] == 0.0)
                        if previous is not None:
                            assert not (masks[n] & ~previous[n]).any(), "ladder masks must be nested"
                    previous = masks
                    if method not in CONTROLS and report["scope"] == "global":  # the control has no scope
                        assert (total - int(sum(m.sum() for m in masks.values()))) == round(float(sparsity) * total)


def test_prunable_weights_are_the_encoder_linear_weights(demo):
    root, _, config = demo
    masks = load_file(root / "results/xnli/seed~1/method~magnitude_global/sparsity~0.50/model/masks.safetensors")
    kinds = {name.split(".", 4)[-1] for name in masks}
    assert kinds == {
        "attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight",
        "attention.output.dense.weight", "intermediate.dense.weight", "output.dense.weight",
    }


def test_tables_equal_the_eval_files_they_came_from(demo):
    root, _, _ = demo
    for task, langs in LANGUAGES.items():
        records = {
            (variant, seed, lang): json.loads(eval_path(root, task, seed, variant, lang).read_text())
            for variant in variants() for seed in SEEDS for lang in langs
        }
        per_language = pd.read_csv(root / f"results/tables/{task}/per_language.csv")
        summary = pd.read_csv(root / f"results/tables/{task}/summary.csv")
        degradation = pd.read_csv(root / f"results/tables/{task}/degradation.csv")
        assert len(per_language) == len(summary) == len(variants())
        for variant in variants():
            method = "dense" if variant == "dense" else variant.split("/")[0].removeprefix("method~")
            sparsity = 0.0 if variant == "dense" else float(variant[-4:])
            pick = lambda t: t[(t["method"] == method) & (t["sparsity_target"] == sparsity)].iloc[0]
            acc = {(s, l): 100 * records[(variant, s, l)]["accuracy"] for s in SEEDS for l in langs}
            for lang in langs:
                assert pick(per_language)[lang] == pytest.approx(sum(acc[(s, lang)] for s in SEEDS) / len(SEEDS))
            english = [acc[(s, "en")] for s in SEEDS]
            zero_shot = [sum(acc[(s, l)] for l in langs[1:]) / (len(langs) - 1) for s in SEEDS]
            row = pick(summary)
            assert row["english_mean"] == pytest.approx(sum(english) / 2)
            assert row["zero_shot_mean"] == pytest.approx(sum(zero_shot) / 2)
            assert row["zero_shot_std"] == pytest.approx(pd.Series(zero_shot).std())
            if variant != "dense":
                dense = {(s, l): 100 * records[("dense", s, l)]["accuracy"] for s in SEEDS for l in langs}
                for lang in langs:
                    expected = sum(dense[(s, lang)] - acc[(s, lang)] for s in SEEDS) / len(SEEDS)
                    assert pick(degradation)[lang] == pytest.approx(expected)


def test_gap_table_and_latex_tables_come_from_the_same_numbers(demo):
    root, _, _ = demo
    for task, langs in LANGUAGES.items():
        summary = pd.read_csv(root / f"results/tables/{task}/summary.csv").set_index(["method", "sparsity_target"])
        gap = pd.read_csv(root / f"results/tables/{task}/gap.csv")
        records = {
            (variant, seed, lang): 100 * json.loads(eval_path(root, task, seed, variant, lang).read_text())["accuracy"]
            for variant in variants() for seed in SEEDS for lang in langs
        }
        assert len(gap) == len(METHODS) * len(SPARSITIES)
        for row in gap.itertuples():
            variant = f"method~{row.method}/sparsity~{row.sparsity_target:.2f}"
            loss = lambda seed, lang: records[("dense", seed, lang)] - records[(variant, seed, lang)]
            gaps = [sum(loss(s, l) for l in langs[1:]) / (len(langs) - 1) - loss(s, "en") for s in SEEDS]
            assert row.gap_mean == pytest.approx(sum(gaps) / len(gaps))
            assert row.supervised_mean == pytest.approx(sum(loss(s, "en") for s in SEEDS) / len(SEEDS))
        # the best zero-shot method of each target: the highest mean, as printed (1 decimal)
        pruned = summary.drop(index=["dense", *CONTROLS], level="method").reset_index()
        for target, rows in pruned.groupby("sparsity_target"):
            printed = rows["zero_shot_mean"].round(1)
            assert rows["best_zero_shot"].tolist() == (printed == printed.max()).tolist()
        for name in ("summary", "per_language", "degradation", "gap"):
            latex = (root / f"results/tables/{task}/{name}.tex").read_text()
            assert latex.startswith(r"\begin{tabular}") and r"\bottomrule" in latex
            dense_cells = pd.read_csv(root / f"results/tables/{task}/{name}.csv")
            assert latex.split(r"\midrule")[1].count(r"\\") == len(dense_cells)


PNG = b"\x89PNG\r\n\x1a\n"


def figure_files(task):
    names = ["accuracy_vs_sparsity", "supervised_vs_zero_shot", "weight_alignment",
             "representation_alignment", "alignment_vs_accuracy"]
    names += [f"degradation_heatmap/method~{m}" for m in METHODS]
    names += [f"language_bars/sparsity~{s}" for s in SPARSITIES]
    return names


def test_every_figure_is_a_non_empty_png_and_pdf(demo):
    root, _, _ = demo
    for task in LANGUAGES:
        for name in figure_files(task):
            data = (root / f"results/plots/{task}/{name}.png").read_bytes()
            assert data[:8] == PNG, name
            width, height = struct.unpack(">II", data[16:24])
            assert width > 300 and height > 200, name
            pdf = (root / f"results/plots/{task}/{name}.pdf").read_bytes()
            assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-32:] and len(pdf) > 5000, name


def test_alignment_tables_equal_the_per_model_files(demo):
    root, _, _ = demo
    for task, langs in LANGUAGES.items():
        weights = pd.read_csv(root / f"results/tables/{task}/weight_alignment.csv")
        representation = pd.read_csv(root / f"results/tables/{task}/representation_alignment.csv")
        correlation = pd.read_csv(root / f"results/tables/{task}/alignment_vs_accuracy.csv").set_index("language")
        # the weight alignment runs on every seed (the findings pair its models by seed)
        assert set(weights["seeds"]) == {len(SEEDS)} and len(weights) == len(METHODS) * len(SPARSITIES)
        encoder = {}
        for variant in variants():
            method = "dense" if variant == "dense" else variant.split("/")[0].removeprefix("method~")
            target = 0.0 if variant == "dense" else float(variant[-4:])
            if variant != "dense":
                per_seed = [pd.read_csv(root / f"results/{task}/seed~{seed}/{variant}/analysis/weight_alignment.csv")
                            for seed in SEEDS]
                per_matrix = per_seed[0]
                assert len(per_matrix) == 6 * per_matrix["layer"].nunique()  # 6 Linear weights per layer
                row = weights[(weights["method"] == method) & (weights["sparsity_target"] == target)].iloc[0]
                # mean over matrices, then over seeds
                assert row["cosine_mean"] == pytest.approx(sum(f["mean_cosine"].mean() for f in per_seed) / len(SEEDS))
                assert 0.0 < row["cosine_mean"] < 1.0
                for measure in ("kept_cosine", "kept_change"):
                    assert row[f"{measure}_mean"] == pytest.approx(sum(f[measure].mean() for f in per_seed) / len(SEEDS))
                # every model was retrained, so its kept weights moved, and less than the whole units' cosine says
                assert 0.0 < row["kept_change_mean"] and row["cosine_mean"] <= row["kept_cosine_mean"] < 1.0
            row = representation[(representation["method"] == method) & (representation["sparsity_target"] == target)].iloc[0]
            for lang in langs[1:]:
                record = json.loads((root / f"results/{task}/seed~1/{variant}/analysis/test/{lang}.json").read_text())
                assert record["parallel"] and record["n_examples"] == 150
                layers = [layer for layer in record["layers"] if layer["layer"] > 0]
                encoder[(variant, lang)] = sum(layer["cka"] for layer in layers) / len(layers)
                assert row[f"cka_{lang}"] == pytest.approx(encoder[(variant, lang)])
        for lang in langs[1:]:
            accuracy = {v: 100 * json.loads(eval_path(root, task, 1, v, lang).read_text())["accuracy"] for v in variants()}
            # the pruned models: the retraining control prunes nothing and is left out
            pruned = [v for v in variants()[1:] if v.split("/")[0].removeprefix("method~") not in CONTROLS]
            x = pd.Series([encoder[("dense", lang)] - encoder[(v, lang)] for v in pruned])
            y = pd.Series([accuracy["dense"] - accuracy[v] for v in pruned])
            # within each target: each loss minus the mean of its target's losses
            target = pd.Series([v[-4:] for v in pruned])
            within_x = x - x.groupby(target).transform("mean")
            within_y = y - y.groupby(target).transform("mean")
            assert correlation.loc[lang, "models"] == len(pruned)
            assert correlation.loc[lang, "pearson_cka"] == pytest.approx(within_x.corr(within_y), nan_ok=True)
            assert correlation.loc[lang, "pearson_cka_pooled"] == pytest.approx(x.corr(y), nan_ok=True)


def test_report_builds_with_every_table_and_figure(demo):
    root, configfiles, _ = demo
    report = root / "report.html"
    snakemake("--profile", "profiles/demo", "--configfile", *configfiles, "--report", str(report))
    html = report.read_text()
    assert len(html) > 100_000 and html.lstrip().lower().startswith("<!doctype html")
    for task in LANGUAGES:
        for name in ("summary", "gap", "degradation", "degradation_split", "dense_transfer", "findings",
                     "alignment_vs_accuracy", "kept_steps"):
            assert f"{name}.csv" in html, name
        for name in figure_files(task):
            assert f"{name.split('/')[-1]}.png" in html, name


def test_deleted_representation_file_is_rebuilt_by_exactly_one_job(demo):
    root, configfiles, _ = demo
    folder = root / "results/xnli/seed~1/method~magnitude_global_cosine/sparsity~0.90/analysis/test"
    before = {lang: (folder / f"{lang}.json").read_bytes() for lang in LANGUAGES["xnli"][1:]}
    (folder / "zh.json").unlink()
    result = snakemake(str(folder / "zh.json"), "--profile", "profiles/demo", "--configfile", *configfiles)
    # the model's one job, which writes every non-English language again: the same bytes (CPU)
    assert job_counts(result.stdout + result.stderr) == {"representation_alignment_xnli": 1, "total": 1}
    assert {lang: (folder / f"{lang}.json").read_bytes() for lang in before} == before


def test_every_training_and_evaluation_job_has_a_log_and_a_benchmark(demo):
    root, _, _ = demo
    assert (root / "logs/xnli/seed~1/dense/finetune.log").stat().st_size > 0
    assert (root / "benchmarks/xnli/seed~2/method~magnitude_global/sparsity~0.90/prune.tsv").exists()
    # one evaluation job per model: one benchmark, one log naming each language and its accuracy
    assert (root / "benchmarks/pawsx/seed~1/dense/eval.tsv").exists()
    log = (root / "logs/pawsx/seed~1/dense/eval.log").read_text()
    for lang in LANGUAGES["pawsx"]:
        accuracy = json.loads(eval_path(root, "pawsx", 1, "dense", lang).read_text())["accuracy"]
        assert f"test {lang}: accuracy {accuracy:.4f}" in log


def test_deleted_eval_file_is_rebuilt_by_exactly_one_job(demo):
    root, configfiles, _ = demo
    variant = "method~magnitude_global/sparsity~0.90"
    before = {lang: eval_path(root, "xnli", 2, variant, lang).read_bytes() for lang in LANGUAGES["xnli"]}
    target = eval_path(root, "xnli", 2, variant, "de")
    target.unlink()
    result = snakemake(str(target), "--profile", "profiles/demo", "--configfile", *configfiles)
    # the model's one evaluation job, which writes every language again
    assert job_counts(result.stdout + result.stderr) == {"evaluate_xnli": 1, "total": 1}
    # same model, same data: the same numbers, byte for byte
    assert {lang: eval_path(root, "xnli", 2, variant, lang).read_bytes() for lang in before} == before
    # the rebuilt file has the same content, so nothing downstream is out of date
    plan = snakemake("-n", "--profile", "profiles/demo", "--configfile", *configfiles)
    assert "Nothing to be done" in plan.stdout + plan.stderr


def test_notebook_runs_on_the_demo_outputs(demo, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    root, configfiles, _ = demo
    # the results folder from the config (the CI overlay's paths.results), as a user's run finds it
    monkeypatch.delenv("ALIGNPRUNE_RESULTS", raising=False)
    monkeypatch.setenv("ALIGNPRUNE_CONFIG", " ".join(configfiles))
    notebook = nbformat.read(ROOT / "notebooks/explore_results.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # per task, the library's figures: accuracy vs sparsity, zero-shot vs supervised, accuracy per
    # language, CKA with English and alignment vs accuracy
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 5 * len(LANGUAGES)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "plots.plot_" in source and "sns." not in source and "plt.subplots" not in source  # no redrawing


def test_sweep_tables_hold_each_runs_english_dev_accuracy_and_the_best_weight(demo):
    root, _, _ = demo
    runs = pd.read_csv(root / "results/sweep/xnli/runs.csv")
    summary = pd.read_csv(root / "results/sweep/xnli/regularizer_weights.csv")
    regularized = SWEPT  # not Frobenius: a method with a number beside a `weight: sweep` one is not swept
    per_task = sum(len(SWEEP_WEIGHTS[DEMO["methods"][m]["regularizer"]]) for m in regularized) * len(SPARSITIES)
    assert len(runs) == per_task
    for row in runs.itertuples():
        model_dir = root / (
            f"results/sweep/xnli/seed~{row.seed}/method~{row.method}/weight~{row.weight:g}"
            f"/sparsity~{row.sparsity_target:.2f}/model"
        )
        training = json.loads((model_dir / "training.json").read_text())
        pruned = json.loads((model_dir / "sparsity.json").read_text())
        assert row.dev_accuracy == pytest.approx(100 * training["best_dev_accuracy"])
        assert pruned["weight"] == row.weight and pruned["regularizer"] == row.regularizer
        assert pruned["sparsity_prunable"] == pytest.approx(row.sparsity_target, abs=1e-3)
    reference = summary[summary["regularizer"] == "none"]
    grid = summary[summary["regularizer"] != "none"]
    for method, rows in grid.groupby("method"):
        means = runs[runs["method"] == method].groupby("weight")["dev_accuracy"].mean()
        assert rows.set_index("weight")["dev_mean"].to_dict() == pytest.approx(means.to_dict())
        # the strongest weight whose mean English dev is within the tolerance of the best weight's
        tolerance = DEMO["sweep"]["tolerance"]
        expected = means[means >= means.max() - tolerance - 1e-9].index.max()
        assert rows[rows["chosen"]]["weight"].tolist() == [expected]
    chosen = yaml.safe_load((root / "results/sweep/xnli/chosen_weights.yaml").read_text())["methods"]
    assert set(chosen) == set(regularized)
    # the choice names the code that made the runs and chose; cosine's prune jobs (weight: sweep)
    # read the choice, so their models carry that code too (here one version: this checkout's)
    from alignprune import code_version
    from alignprune.chosen_weights import read_chosen_code
    assert read_chosen_code(root / "results/sweep/xnli/chosen_weights.yaml") == [code_version.CURRENT]
    # beside each weight, its zero-shot accuracy from the sweep models' eval files (test split,
    # every language but English): mean over languages per model, then over seeds and targets
    for row in summary.itertuples():
        per_model = []
        for seed in DEMO_SWEEP_SEEDS:
            for target in SPARSITIES:
                folder = root / f"results/sweep/xnli/seed~{seed}/method~{row.method}/weight~{row.weight:g}/sparsity~{target}"
                files = sorted((folder / "eval/test").glob("*.json"))
                assert [f.stem for f in files] == sorted(lang for lang in LANGUAGES["xnli"] if lang != "en")
                per_model.append(sum(100 * json.loads(f.read_text())["accuracy"] for f in files) / len(files))
        assert row.zero_shot_mean == pytest.approx(sum(per_model) / len(per_model))
    assert (root / "results/sweep/xnli/regularizer_weights.png").stat().st_size > 10_000
    # the unregularized reference: magnitude_global's weight-0 ladder, never chosen, and each
    # weight's English dev and zero-shot against it
    assert reference[["method", "weight", "chosen"]].values.tolist() == [["magnitude_global", 0.0, False]]
    base = reference.iloc[0]
    dev = [100 * json.loads((root / f"results/sweep/xnli/seed~{seed}/method~magnitude_global/weight~0/sparsity~{target}"
                                     "/model/training.json").read_text())["best_dev_accuracy"]
           for seed in DEMO_SWEEP_SEEDS for target in SPARSITIES]
    assert base["dev_mean"] == pytest.approx(sum(dev) / len(dev))
    assert (grid["unregularized"] == "magnitude_global").all()
    assert grid["dev_vs_unregularized"].tolist() == pytest.approx((grid["dev_mean"] - base["dev_mean"]).tolist())
    assert grid["zero_shot_vs_unregularized"].tolist() == pytest.approx(
        (grid["zero_shot_mean"] - base["zero_shot_mean"]).tolist())
    # common random numbers: the sweep's targets are the study's here, so its reference ladder is
    # the study's global magnitude ladder, weight for weight
    for seed in DEMO_SWEEP_SEEDS:
        for target in SPARSITIES:
            swept = load_file(root / f"results/sweep/xnli/seed~{seed}/method~magnitude_global/weight~0"
                                     f"/sparsity~{target}/model/model.safetensors")
            study = load_file(root / f"results/xnli/seed~{seed}/method~magnitude_global/sparsity~{target}/model/model.safetensors")
            assert all(torch.equal(swept[name], study[name]) for name in study)
    assert "Unregularized reference (magnitude_global" in (root / "results/sweep/xnli/regularizer_weights.md").read_text()
    # the weight under test reaches training: two cosine weights give two different models
    weights = [
        load_file(root / f"results/sweep/xnli/seed~1/method~magnitude_global_cosine/weight~{w:g}/sparsity~0.90/model/model.safetensors")
        for w in SWEEP_WEIGHTS["cosine"]
    ]
    assert any(not torch.equal(weights[0][n], weights[1][n]) for n in weights[0])


def test_a_method_with_weight_sweep_retrains_with_the_weight_the_sweep_chose(demo):
    """magnitude_global_cosine says `weight: sweep`: its prune jobs ran after the sweep, with the
    chosen weight as their param; a rewritten but equal choice reruns nothing, another choice
    reruns exactly that method's prune jobs (and what reads them)."""
    root, configfiles, _ = demo
    chosen_file = root / "results/sweep/xnli/chosen_weights.yaml"
    text = chosen_file.read_text()
    chosen = yaml.safe_load(text)["methods"]["magnitude_global_cosine"]["weight"]
    for seed in SEEDS:
        for target in SPARSITIES:
            folder = root / f"results/xnli/seed~{seed}/method~{{}}/sparsity~{target}/model"
            cosine = json.loads((Path(str(folder).format("magnitude_global_cosine")) / "sparsity.json").read_text())
            frobenius = json.loads((Path(str(folder).format("magnitude_global_frobenius")) / "sparsity.json").read_text())
            assert (cosine["regularizer"], cosine["weight"]) == ("cosine", chosen)
            assert frobenius["weight"] == DEMO["methods"]["magnitude_global_frobenius"]["weight"]  # its own number
    plan = ("-n", "--profile", "profiles/demo", "--configfile", *configfiles)
    chosen_file.write_text(text)  # rewritten, the same choice
    unchanged = snakemake(*plan)
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    other = next(w for w in SWEEP_WEIGHTS["cosine"] if w != chosen)
    try:
        chosen_file.write_text(text.replace(f"weight: {chosen}", f"weight: {other}"))
        result = snakemake(*plan)
        counts = job_counts(result.stdout + result.stderr)
        assert counts["prune"] == len(SEEDS) * len(SPARSITIES)
        assert re.findall(r"params have changed since last execution:\s+(\S+)", result.stdout + result.stderr) == ["prune"]
        assert not {"testbed_model", "testbed_data", "finetune", "prune_sweep", "sweep_choice"} & set(counts)
        planned = re.findall(r"output: (\S+/method~(\w+)/sparsity~\S+/model)", result.stdout + result.stderr)
        assert {method for _, method in planned} == {"magnitude_global_cosine"}
    finally:
        chosen_file.write_text(text)


def test_each_task_fine_tunes_with_its_own_settings(demo):
    root, _, _ = demo
    for task, total in (("xnli", 25), ("pawsx", 38)):
        log = (root / f"logs/{task}/seed~1/dense/finetune.log").read_text()
        assert re.search(rf"step {total}/{total}  loss", log), (task, log[-500:])


def test_training_logs_hold_plain_progress_lines(demo):
    root, _, _ = demo
    for log, total in (("dense/finetune.log", 25), ("method~magnitude_global/sparsity~0.90/prune.log", 10)):
        text = (root / f"logs/xnli/seed~1/{log}").read_text()
        assert "\r" not in text and "\x1b" not in text and "LOAD REPORT" not in text, log
        steps = re.findall(rf"step (\d+)/{total}  loss \d\.\d{{4}}  lr \S+  [\d.]+ examples/s  "
                           r"elapsed \d+:\d\d:\d\d  ETA \d+:\d\d:\d\d", text)
        # evaluations every 20 (fine-tuning) and 5 (retraining) steps, the last step; log_every is larger
        assert [int(s) for s in steps] == ([20, 25] if total == 25 else [5, 10]), log


def test_training_curves_draw_every_training_job(demo):
    root, _, _ = demo
    for task in LANGUAGES:
        data = (root / f"results/plots/{task}/training_curves.png").read_bytes()
        assert data[:8] == PNG
        assert (root / f"results/plots/{task}/training_curves.pdf").read_bytes().startswith(b"%PDF-")


def test_kept_steps_table_holds_each_models_kept_step(demo):
    root, _, _ = demo
    for task in LANGUAGES:
        table = pd.read_csv(root / f"results/tables/{task}/kept_steps.csv")
        assert table["method"].tolist() == ["dense"] + [m for m in METHODS for _ in SPARSITIES]
        for row in table.to_dict("records"):
            dense = row["method"] == "dense"
            for seed in SEEDS:
                model = (f"results/{task}/seed~{seed}/dense/model" if dense else
                         f"results/{task}/seed~{seed}/method~{row['method']}/sparsity~{row['sparsity_target']:.2f}/model")
                training = json.loads((root / model / "training.json").read_text())
                assert row[f"seed {seed}"] == training["best_step"] > 0
                assert row["steps"] == training["settings"]["max_steps"]
        assert "| method " in (root / f"results/tables/{task}/kept_steps.md").read_text()


def test_control_and_findings_come_from_the_eval_table(demo):
    """The demo runs the retraining control at every rung, and its findings table is the one
    the findings module computes from the eval table."""
    from alignprune.analysis import collect_weight_alignment
    from alignprune.findings import findings_table
    from alignprune.results import load_evals

    root, _, _ = demo
    assert CONTROLS == ["retrain_only"]
    intervals = 0
    for task, langs in LANGUAGES.items():
        evals = load_evals(root / f"results/tables/{task}/evals.csv", "test")
        control = evals[evals["method"] == "retrain_only"]
        assert sorted(control["sparsity_target"].unique()) == [float(s) for s in SPARSITIES]
        assert (control["sparsity_prunable"] < 1e-3).all()
        written = pd.read_csv(root / f"results/tables/{task}/findings.csv")
        methods = {m: DEMO["methods"][m] for m in METHODS}
        weight_files = sorted(root.glob(f"results/{task}/seed~*/method~*/sparsity~*/analysis/weight_alignment.csv"))
        assert len(weight_files) == len(SEEDS) * len(METHODS) * len(SPARSITIES)
        expected = findings_table(evals, methods, "en", langs, collect_weight_alignment(weight_files))
        assert written["verdict"].tolist() == expected["verdict"].tolist()
        assert written["mean"].to_numpy() == pytest.approx(expected["mean"].to_numpy(), nan_ok=True)
        assert set(written["claim"]) == {1, 2, 3, 4}
        # claim 4, the check: one row per regularized method and target, on every seed
        check = written[written["claim"] == 4]
        assert len(check) == 2 * len(SPARSITIES) and (check["seeds"] == len(SEEDS)).all()
        # after the rung's last step, the prune jobs' own measures (not the kept steps')
        assert check["detail"].str.contains("after the rung's last step (step 10)", regex=False).all()  # the overlay's
        # two seeds: every tested row has an interval, but where both seeds give the same value
        # (a drop of 0.00 on this size's small test sets): then the verdict says so, or comes
        # from its own test (a correlation's permutation test, the spread's F-test)
        tested = written[written["seeds"] == len(SEEDS)]
        assert len(tested) > 0
        intervals += int(tested["ci_low"].notna().sum())
        for row in tested[tested["ci_low"].isna()].itertuples():
            assert (row.verdict == "inconclusive (no spread over seeds: no interval)"
                    or "permutation p = " in str(row.detail) or row.measure.startswith("spread")), row
        assert "Claims:" in (root / f"results/tables/{task}/findings.md").read_text()
    assert intervals > 0  # the NLI task's drops differ between seeds (the PAWS-like task, unlearnt here, loses 0.00)
