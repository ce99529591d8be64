"""Alignment analysis tables: every cell recomputed from the per-model files it came from."""

import json

import pandas as pd
import pytest

from alignprune.analysis import alignment_accuracy_table, write_analysis_tables
from alignprune.results import collect_evals

LANGS = ["de", "sw"]
MODELS = [("dense", 0.0)] + [(m, s) for m in ("random", "magnitude") for s in (0.5, 0.9)]


def cka(method, sparsity, seed, lang, layer):
    return 0.9 - 0.3 * sparsity * (2 if method == "random" else 1) - 0.01 * layer - 0.02 * seed - 0.005 * seed * sparsity - (0.1 if lang == "sw" else 0)


def accuracy(method, sparsity, seed, lang):
    return 0.8 - 0.4 * sparsity * (2 if method == "random" else 1) + 0.01 * seed - 0.01 * seed * sparsity - (0.05 * sparsity if lang == "sw" else 0)


def kept_cosine(sparsity, layer, seed):
    return 1 - sparsity * seed / (10 * (layer + 1))


def kept_change(method, sparsity, layer, seed):
    return sparsity * (layer + 1) * seed / (20 if method == "random" else 10)


@pytest.fixture
def inputs(tmp_path):
    weight_files, representation_files, eval_files = [], [], []
    for seed in (1, 2):
        for method, sparsity in MODELS:
            for lang in ["en", *LANGS, "ur"]:
                record = {"task": "xnli", "seed": seed, "method": method, "sparsity_target": sparsity,
                          "split": "test", "language": lang, "accuracy": accuracy(method, sparsity, seed, lang),
                          "sparsity_prunable": sparsity + 0.001 * seed, "sparsity_all": sparsity / 3}
                path = tmp_path / f"eval-{seed}-{method}-{sparsity}-{lang}.json"
                path.write_text(json.dumps(record))
                eval_files.append(path)
            for lang in [*LANGS, "ur"]:
                keys = {"task": "xnli", "seed": seed, "method": method, "sparsity_target": sparsity,
                        "split": "test", "language": lang, "reference_language": "en"}
                if lang == "ur":  # a test set that is not parallel
                    record = {**keys, "parallel": False, "reason": "ur has 9 rows, English 10", "n_examples": 0, "layers": []}
                else:
                    layers = [{"layer": l, "cka": cka(method, sparsity, seed, lang, l),
                               "cosine": cka(method, sparsity, seed, lang, l) / 2,
                               "cka_shuffled": 0.01 * l - 0.001 * seed, "cosine_shuffled": 0.002 * seed}
                              for l in range(3)]
                    record = {**keys, "parallel": True, "reason": None, "n_examples": 10, "layers": layers}
                path = tmp_path / f"rep-{seed}-{method}-{sparsity}-{lang}.json"
                path.write_text(json.dumps(record))
                representation_files.append(path)
            if method != "dense":
                rows = [
                    {"task": "xnli", "seed": seed, "method": method, "sparsity_target": sparsity, "layer": layer,
                     "parameter": f"roberta.encoder.layer.{layer}.{module}.weight", "units": 4,
                     "mean_cosine": 1 - sparsity / (layer + 2 + seed), "kept_cosine": kept_cosine(sparsity, layer, seed),
                     "kept_change": kept_change(method, sparsity, layer, seed), "sparsity": sparsity}
                    for layer in (0, 1) for module in ("intermediate.dense", "attention.self.query")  # not a layer's order
                ]
                path = tmp_path / f"weights-{seed}-{method}-{sparsity}.csv"
                pd.DataFrame(rows).to_csv(path, index=False)
                weight_files.append(path)
    collect_evals(eval_files, tmp_path / "evals.csv")
    names = ["weight_alignment", "representation_alignment", "alignment_vs_accuracy"]
    outputs = [tmp_path / f"{n}.{e}" for n in names for e in ("csv", "md", "tex")]
    outputs += [tmp_path / "representation_layers.csv", tmp_path / "alignment_points.csv"]
    tables = write_analysis_tables(
        weight_files, representation_files, tmp_path / "evals.csv", outputs, split="test",
        methods=["random", "magnitude"], languages=["en", *LANGS, "ur"],
    )
    return tmp_path, tables


def test_weight_alignment_table_cells(inputs):
    root, _ = inputs
    table = pd.read_csv(root / "weight_alignment.csv")
    assert table["method"].tolist() == ["random", "random", "magnitude", "magnitude"]
    for _, row in table.iterrows():
        sparsity = row["sparsity_target"]
        per_seed = [sum(1 - sparsity / (layer + 2 + seed) for layer in (0, 1)) / 2 for seed in (1, 2)]
        assert row["cosine_mean"] == pytest.approx(sum(per_seed) / 2)
        assert row["cosine_std"] == pytest.approx(pd.Series(per_seed).std())
        # the kept weights' measures: mean over matrices, then mean and std over seeds
        kept = pd.Series([sum(kept_cosine(sparsity, layer, seed) for layer in (0, 1)) / 2 for seed in (1, 2)])
        assert (row["kept_cosine_mean"], row["kept_cosine_std"]) == pytest.approx((kept.mean(), kept.std()))
        kept = pd.Series([sum(kept_change(row["method"], sparsity, layer, seed) for layer in (0, 1)) / 2
                          for seed in (1, 2)])
        assert (row["kept_change_mean"], row["kept_change_std"]) == pytest.approx((kept.mean(), kept.std()))
        # both module kinds have the same values in the fixture
        for module in ("attention.self.query", "intermediate.dense"):
            assert row[module] == pytest.approx(sum(per_seed) / 2)
    assert list(table.columns)[-2:] == ["attention.self.query", "intermediate.dense"]  # a layer's order
    assert list(table.columns)[:4] == ["method", "sparsity_target", "sparsity_prunable_pct", "sparsity_all_pct"]
    assert table["sparsity_all_pct"].tolist() == pytest.approx([100 * s / 3 for s in table["sparsity_target"]])


def test_weight_files_written_before_the_kept_measures_leave_those_cells_empty(inputs, caplog):
    """A mean over the newer files alone would be of other models than the cosine beside it."""
    root, _ = inputs
    weight_files = sorted(root.glob("weights-*.csv"))
    older = pd.read_csv(weight_files[0]).drop(columns=["kept_cosine", "kept_change"])
    older.to_csv(weight_files[0], index=False)
    outputs = [root / "older" / f"{n}.{e}" for n in ("weight_alignment", "representation_alignment",
                                                     "alignment_vs_accuracy") for e in ("csv", "md", "tex")]
    outputs += [root / "older" / "representation_layers.csv", root / "older" / "alignment_points.csv"]
    with caplog.at_level("WARNING", logger="alignprune.analysis"):
        tables = write_analysis_tables(weight_files, sorted(root.glob("rep-*.json")), root / "evals.csv", outputs,
                                       split="test", methods=["random", "magnitude"])
    assert "before the kept weights' measures (1, e.g." in caplog.text and "--forcerun weight_alignment" in caplog.text
    table = tables["weight_alignment"]
    assert table["kept_cosine_mean"].isna().all() and table["kept_change_mean"].isna().all()
    assert table["cosine_mean"].notna().all()
    # printed as empty cells, not "nan"
    header, _, *rows = (root / "older" / "weight_alignment.md").read_text().splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    for row in rows:
        cells = dict(zip(columns, (c.strip() for c in row.strip("|").split("|"))))
        assert cells["kept_cosine"] == cells["kept_change"] == "" and cells["cosine"] != ""


def test_representation_table_averages_encoder_layers_and_languages(inputs):
    root, _ = inputs
    table = pd.read_csv(root / "representation_alignment.csv")
    assert table["method"].tolist()[0] == "dense"
    assert "cka_ur" not in table.columns  # not parallel: no numbers
    for row in table.itertuples():
        key = (row.method, row.sparsity_target)
        per_seed = [sum(cka(*key, s, lang, l) for lang in LANGS for l in (1, 2)) / 4 for s in (1, 2)]
        assert row.cka_mean == pytest.approx(sum(per_seed) / 2)
        assert row.cosine_mean == pytest.approx(sum(per_seed) / 4)
        assert row.cka_de == pytest.approx(sum(cka(*key, s, "de", l) for s in (1, 2) for l in (1, 2)) / 4)
        # baselines: mean over encoder layers (1, 2), languages and seeds
        assert row.cka_shuffled == pytest.approx(0.015 - 0.0015)
        assert row.cosine_shuffled == pytest.approx(0.003)
        assert row.sparsity_prunable_pct == pytest.approx(100 * row.sparsity_target + 0.15)
        assert row.sparsity_all_pct == pytest.approx(100 * row.sparsity_target / 3)


def _within_target(values, targets):
    """Each value minus the mean of the values at its target."""
    frame = pd.DataFrame({"v": values, "t": targets})
    return frame["v"] - frame.groupby("t")["v"].transform("mean")


def test_correlation_of_alignment_loss_with_accuracy_loss_per_language(inputs):
    root, _ = inputs
    points = pd.read_csv(root / "alignment_points.csv")
    assert len(points) == 2 * 4 * len(LANGS)  # seeds x pruned models x parallel languages
    assert list(points.columns) == ["method", "sparsity_target", "seed", "language",
                                    "cka_loss", "cosine_loss", "accuracy_loss"]
    table = pd.read_csv(root / "alignment_vs_accuracy.csv").set_index("language")
    for lang in LANGS:
        xs, ys, targets = [], [], []
        for seed in (1, 2):
            for method, sparsity in MODELS[1:]:
                dense = sum(cka("dense", 0.0, seed, lang, l) for l in (1, 2)) / 2
                pruned = sum(cka(method, sparsity, seed, lang, l) for l in (1, 2)) / 2
                xs.append(dense - pruned)
                ys.append(100 * (accuracy("dense", 0.0, seed, lang) - accuracy(method, sparsity, seed, lang)))
                targets.append(sparsity)
        within = _within_target(xs, targets).corr(_within_target(ys, targets))
        assert table.loc[lang, "pearson_cka"] == pytest.approx(within)
        assert table.loc[lang, "pearson_cka_pooled"] == pytest.approx(pd.Series(xs).corr(pd.Series(ys)))
        assert table.loc[lang, "models"] == 8 and table.loc[lang, "targets"] == 2
        assert bool(table.loc[lang, "parallel"])
    assert not table.loc["ur", "parallel"]
    assert table.loc["ur", "note"] == "ur has 9 rows, English 10"
    assert pd.isna(table.loc["ur", "pearson_cka"]) and table.loc["ur", "models"] == 0
    assert table.loc["all", "models"] == 16
    assert "ur has 9 rows" in (root / "alignment_vs_accuracy.md").read_text()


def _points(cka_within, accuracy_within):
    """Two targets, four models each: losses that grow with sparsity, plus the given offsets."""
    rows = []
    for target in (0.5, 0.9):
        for i, (dc, da) in enumerate(zip(cka_within, accuracy_within)):
            rows.append({"method": f"m{i}", "sparsity_target": target, "seed": 1, "language": "de",
                         "cka_loss": 10 * target + dc, "cosine_loss": 10 * target + dc,
                         "accuracy_loss": 100 * target + da})
    return pd.DataFrame(rows)


def test_correlations_are_taken_within_each_sparsity_target():
    """Both losses rise with sparsity (pooled r ~ 0.9); within a target they are unrelated (r = 0)
    in one case and in lockstep (r = 1) in the other."""
    status = pd.DataFrame({"language": ["de"], "parallel": [True], "reason": [None]})
    unrelated = alignment_accuracy_table(_points([1, -1, 1, -1], [1, 1, -1, -1]), status).set_index("language")
    for language in ("de", "all"):
        row = unrelated.loc[language]
        assert row["pearson_cka_pooled"] > 0.85
        assert row["pearson_cka"] == pytest.approx(0.0, abs=1e-12)
        assert row["spearman_cka"] == pytest.approx(0.0, abs=1e-12)
        assert row["pearson_cosine"] == pytest.approx(0.0, abs=1e-12)
    together = alignment_accuracy_table(_points([1, 2, 3, 5], [-3, -1, 1, 9]), status).set_index("language")
    assert together.loc["de", "spearman_cka"] == pytest.approx(1.0)
    assert together.loc["de", "pearson_cka"] == pytest.approx(
        pd.Series([1, 2, 3, 5]).corr(pd.Series([-3, -1, 1, 9]))
    )


def test_the_analysis_job_warns_when_two_versions_of_the_code_made_its_files(inputs, caplog):
    root, _ = inputs
    weight_files, representation_files = sorted(root.glob("weights-*.csv")), sorted(root.glob("rep-*.json"))
    names = ["weight_alignment", "representation_alignment", "alignment_vs_accuracy"]
    outputs = [root / f"{n}.{e}" for n in names for e in ("csv", "md", "tex")]
    outputs += [root / "representation_layers.csv", root / "alignment_points.csv"]

    def run():
        caplog.clear()
        with caplog.at_level("WARNING", logger="alignprune.analysis"):
            write_analysis_tables(weight_files, representation_files, root / "evals.csv", outputs, split="test",
                                  methods=["random", "magnitude"], languages=["en", *LANGS, "ur"])
        return caplog.text

    def mark(code, last_representation=None, last_weights=None):
        evals = pd.read_csv(root / "evals.csv")
        evals.assign(code=code).to_csv(root / "evals.csv", index=False)
        for path in weight_files:
            frame = pd.read_csv(path)
            frame.assign(code=last_weights if path == weight_files[-1] and last_weights else code).to_csv(path, index=False)
        for path in representation_files:
            record = json.loads(path.read_text())
            record["code"] = last_representation if path == representation_files[-1] and last_representation else code
            path.write_text(json.dumps(record))

    mark("012345678901")  # one version, of decimal digits only (read back as text)
    assert run() == ""
    mark("012345678901", last_weights="012345678901+bbbbbbbbbbbb")
    assert "2 versions of the code (012345678901, bbbbbbbbbbbb" in run()
    mark("012345678901", last_representation="cccccccccccc")
    assert "2 versions of the code (012345678901, cccccccccccc" in run()


def test_the_retraining_control_is_left_out_of_the_correlations():
    """The control prunes nothing: within a target its losses sit apart from every pruned
    model's, and taken in they would set the correlation (here they turn r = +1 into r < 0)."""
    status = pd.DataFrame({"language": ["de"], "parallel": [True], "reason": [None]})
    points = _points([1, 2, 3, -20], [-3, -1, 1, 30])  # m3 stands for the control
    pruned_only = alignment_accuracy_table(points[points["method"] != "m3"], status)
    assert pruned_only["pearson_cka"].iloc[0] == pytest.approx(1.0)
    assert alignment_accuracy_table(points, status)["pearson_cka"].iloc[0] < 0
    pd.testing.assert_frame_equal(alignment_accuracy_table(points, status, controls=["m3"]), pruned_only)


def test_measured_sparsity_is_that_of_the_analysed_seeds(inputs):
    """The analysis runs on fewer seeds than the evaluation; its tables' measured sparsity is
    the mean over the seeds they analyse (the fixture's seed s measures target + 0.001 s)."""
    root, _ = inputs
    names = ["weight_alignment", "representation_alignment", "alignment_vs_accuracy"]
    outputs = [root / "seed1" / f"{n}.{e}" for n in names for e in ("csv", "md", "tex")]
    outputs += [root / "seed1" / "representation_layers.csv", root / "seed1" / "alignment_points.csv"]
    tables = write_analysis_tables(
        sorted(root.glob("weights-1-*.csv")), sorted(root.glob("rep-1-*.json")), root / "evals.csv", outputs,
        split="test", methods=["random", "magnitude"], languages=["en", *LANGS, "ur"],
    )
    for name in ("weight_alignment", "representation_alignment"):
        table = tables[name]
        assert (table["seeds"] == 1).all()
        assert table["sparsity_prunable_pct"].tolist() == pytest.approx(
            [100 * (s + 0.001) for s in table["sparsity_target"]])
