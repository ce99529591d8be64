"""Tables: every cell recomputed by hand from the eval records it came from."""

import json
import math

import pandas as pd
import pytest

from alignprune.results import FORMATS, TABLES, collect_evals, write_tables

LANGS = ["en", "de", "sw"]


def record(method, sparsity, seed, lang, accuracy):
    return {
        "task": "xnli", "seed": seed, "method": method, "sparsity_target": sparsity,
        "split": "test", "language": lang, "accuracy": accuracy, "correct": int(accuracy * 1000),
        "n_examples": 1000, "sparsity_prunable": sparsity, "sparsity_all": sparsity / 3,
    }


@pytest.fixture
def evals(tmp_path):
    rows = []
    for seed in (1, 2):
        for i, lang in enumerate(LANGS):
            # the dense model's seed effect differs from the pruned models' (and by language), so a
            # difference paired by seed differs from one against the mean dense model
            rows.append(record("dense", 0.0, seed, lang, 0.80 - 0.1 * i + 0.01 * seed + 0.02 * seed * i))
            for sparsity in (0.5, 0.9):
                for m, method in enumerate(["random", "magnitude"]):
                    acc = 0.80 - 0.1 * i + 0.01 * seed - sparsity * (0.2 + 0.1 * m) - 0.02 * i
                    rows.append(record(method, sparsity, seed, lang, acc))
    files = []
    for n, row in enumerate(rows):
        path = tmp_path / "evals" / f"{n}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(row))
        files.append(path)
    # validation rows must not leak into test tables
    path = tmp_path / "evals" / "val.json"
    path.write_text(json.dumps({**record("dense", 0.0, 1, "en", 0.1), "split": "validation"}))
    files.append(path)
    return rows, collect_evals(files, tmp_path / "evals.csv") is not None and tmp_path / "evals.csv"


def test_table_cells_equal_the_eval_records(evals, tmp_path):
    rows, csv = evals
    outputs = [tmp_path / f"{n}.{e}" for n in TABLES for e in FORMATS]
    write_tables(
        csv, outputs, train_language="en", split="test", methods=["random", "magnitude"], languages=LANGS
    )
    acc = {(r["method"], r["sparsity_target"], r["seed"], r["language"]): 100 * r["accuracy"] for r in rows}

    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["method"].tolist() == ["dense", "random", "random", "magnitude", "magnitude"]
    for _, row in summary.iterrows():
        key = (row["method"], row["sparsity_target"])
        english = [acc[(*key, s, "en")] for s in (1, 2)]
        zero_shot = [sum(acc[(*key, s, l)] for l in ("de", "sw")) / 2 for s in (1, 2)]
        assert row["english_mean"] == pytest.approx(sum(english) / 2)
        assert row["english_std"] == pytest.approx(abs(english[0] - english[1]) / math.sqrt(2))
        assert row["zero_shot_mean"] == pytest.approx(sum(zero_shot) / 2)
        assert row["zero_shot_std"] == pytest.approx(abs(zero_shot[0] - zero_shot[1]) / math.sqrt(2))
        assert row["seeds"] == 2
        # measured sparsity over prunable weights beside that over all weights (percent)
        assert row["sparsity_prunable_pct"] == pytest.approx(100 * row["sparsity_target"])
        assert row["sparsity_all_pct"] == pytest.approx(100 * row["sparsity_target"] / 3)
    assert list(summary.columns[:4]) == ["method", "sparsity_target", "sparsity_prunable_pct", "sparsity_all_pct"]

    per_language = pd.read_csv(tmp_path / "per_language.csv")
    assert list(per_language.columns) == ["method", "sparsity_target", *LANGS]
    for _, row in per_language.iterrows():
        for lang in LANGS:
            expected = sum(acc[(row["method"], row["sparsity_target"], s, lang)] for s in (1, 2)) / 2
            assert row[lang] == pytest.approx(expected)

    degradation = pd.read_csv(tmp_path / "degradation.csv")
    assert "dense" not in set(degradation["method"])
    for _, row in degradation.iterrows():
        key = (row["method"], row["sparsity_target"])
        for lang in LANGS:
            expected = sum(acc[("dense", 0.0, s, lang)] - acc[(*key, s, lang)] for s in (1, 2)) / 2
            assert row[lang] == pytest.approx(expected)
        expected_avg = sum(
            acc[("dense", 0.0, s, l)] - acc[(*key, s, l)] for s in (1, 2) for l in ("de", "sw")
        ) / 4
        assert row["zero_shot_avg"] == pytest.approx(expected_avg)

    markdown = (tmp_path / "summary.md").read_text()
    first = summary.iloc[0]
    assert f"{first['english_mean']:.1f} ± {first['english_std']:.1f}" in markdown

    gap = pd.read_csv(tmp_path / "gap.csv")
    for _, row in gap.iterrows():
        key = (row["method"], row["sparsity_target"])
        supervised = [acc[("dense", 0.0, s, "en")] - acc[(*key, s, "en")] for s in (1, 2)]
        zero_shot = [
            sum(acc[("dense", 0.0, s, l)] - acc[(*key, s, l)] for l in ("de", "sw")) / 2 for s in (1, 2)
        ]
        gaps = [z - e for z, e in zip(zero_shot, supervised)]
        assert row["supervised_mean"] == pytest.approx(sum(supervised) / 2)
        assert row["zero_shot_mean"] == pytest.approx(sum(zero_shot) / 2)
        assert row["gap_mean"] == pytest.approx(sum(gaps) / 2)
        assert row["gap_std"] == pytest.approx(abs(gaps[0] - gaps[1]) / math.sqrt(2), abs=1e-9)
        assert row["supervised_std"] == pytest.approx(abs(supervised[0] - supervised[1]) / math.sqrt(2))
        assert row["zero_shot_std"] == pytest.approx(abs(zero_shot[0] - zero_shot[1]) / math.sqrt(2))
        assert row["zero_shot_std"] > 1  # the seeds' paired drops differ (the fixture's dense seed effect)


def test_best_method_per_sparsity_is_marked_in_every_format(evals, tmp_path):
    _, csv = evals
    outputs = [tmp_path / f"{n}.{e}" for n in TABLES for e in FORMATS]
    write_tables(csv, outputs, train_language="en", split="test", methods=["random", "magnitude"], languages=LANGS)
    summary = pd.read_csv(tmp_path / "summary.csv")
    for target, rows in summary[summary["method"] != "dense"].groupby("sparsity_target"):
        # the fixture makes random lose less than magnitude at every target
        assert rows.loc[rows["best_english"], "method"].tolist() == ["random"]
        assert rows.loc[rows["best_zero_shot"], "method"].tolist() == ["random"]
        best = rows[rows["best_english"]].iloc[0]
        assert best["english_mean"] == rows["english_mean"].max()
    assert not summary.loc[summary["method"] == "dense", ["best_english", "best_zero_shot"]].any().any()
    degradation = pd.read_csv(tmp_path / "degradation.csv")
    assert degradation.loc[degradation["best_zero_shot_avg"], "method"].tolist() == ["random", "random"]

    random_05 = summary[(summary["method"] == "random") & (summary["sparsity_target"] == 0.5)].iloc[0]
    cell = f"{random_05['english_mean']:.1f} ± {random_05['english_std']:.1f}"
    markdown = (tmp_path / "summary.md").read_text()
    assert f"**{cell}**" in markdown
    assert "best_" not in markdown and "_std" not in markdown
    latex = (tmp_path / "summary.tex").read_text()
    assert latex.startswith(r"\begin{tabular}{lrrrrrr}")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert latex.count(rule) == 1
    assert r"\textbf{" + cell.replace(" ± ", r" $\pm$ ") + "}" in latex
    assert r"zero\_shot" in latex and "best" not in latex
    # one LaTeX row per table row, every row with the same number of cells
    body = latex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(summary)
    assert all(line.count("&") == 6 and line.endswith(r"\\") for line in body)


def with_control(rows, tmp_path):
    """The fixture's records plus a retraining control's: unpruned and retrained, it beats every
    pruned method and moves each language its own way."""
    shift = {"en": 0.01, "de": -0.03, "sw": 0.02}
    control = [
        record("retrain_only", r["sparsity_target"], r["seed"], r["language"],
               next(d["accuracy"] for d in rows if d["method"] == "dense" and d["seed"] == r["seed"]
                    and d["language"] == r["language"]) + shift[r["language"]] * (1 + r["seed"] * r["sparsity_target"]))
        for r in rows if r["method"] == "random"
    ]
    files = []
    for n, row in enumerate(rows + control):
        path = tmp_path / "evals" / f"{n}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(row))
        files.append(path)
    csv = tmp_path / "evals-control.csv"
    collect_evals(files, csv)
    return control, csv


def test_retraining_control_follows_dense_is_never_best_and_splits_degradation(evals, tmp_path):
    rows, _ = evals
    control, csv = with_control(rows, tmp_path)
    outputs = [tmp_path / f"{n}.{e}" for n in TABLES for e in FORMATS]
    # the config may list the control anywhere: the tables put it right after dense
    write_tables(csv, outputs, train_language="en", split="test", methods=["random", "magnitude", "retrain_only"],
                 languages=LANGS, controls=["retrain_only"])
    acc = {(r["method"], r["sparsity_target"], r["seed"], r["language"]): 100 * r["accuracy"] for r in rows + control}

    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["method"].tolist()[:3] == ["dense", "retrain_only", "retrain_only"]
    controls = summary[summary["method"] == "retrain_only"]
    assert not controls[["best_english", "best_zero_shot"]].any().any()
    assert summary.loc[summary["best_english"], "method"].tolist() == ["random", "random"]
    degradation = pd.read_csv(tmp_path / "degradation.csv")
    assert degradation["method"].tolist()[:2] == ["retrain_only", "retrain_only"]
    assert not degradation.loc[degradation["method"] == "retrain_only", "best_zero_shot_avg"].any()

    split = pd.read_csv(tmp_path / "degradation_split.csv")
    assert split["method"].tolist() == ["random", "random", "magnitude", "magnitude"]
    for _, row in split.iterrows():
        target = row["sparsity_target"]
        for setting, langs in (("english", ["en"]), ("zero_shot", ["de", "sw"])):
            def mean_of(method, seed, target=target):
                return sum(acc[(method, target, seed, l)] for l in langs) / len(langs)
            retraining = [mean_of("dense", s, 0.0) - mean_of("retrain_only", s) for s in (1, 2)]
            pruning = [mean_of("retrain_only", s) - mean_of(row["method"], s) for s in (1, 2)]
            assert row[f"{setting}_retraining_mean"] == pytest.approx(sum(retraining) / 2)
            assert row[f"{setting}_retraining_std"] == pytest.approx(abs(retraining[0] - retraining[1]) / math.sqrt(2))
            assert row[f"{setting}_pruning_mean"] == pytest.approx(sum(pruning) / 2)
            assert row[f"{setting}_pruning_std"] == pytest.approx(abs(pruning[0] - pruning[1]) / math.sqrt(2))
        # the two parts add up to the degradation
        total = degradation[(degradation["method"] == row["method"]) & (degradation["sparsity_target"] == target)]
        assert row["zero_shot_retraining_mean"] + row["zero_shot_pruning_mean"] == pytest.approx(
            total["zero_shot_avg"].iloc[0])
    assert "retraining" in (tmp_path / "degradation_split.md").read_text()


def test_dense_transfer_gives_each_seeds_accuracy_and_retention_above_chance(evals, tmp_path):
    rows, csv = evals
    outputs = [tmp_path / f"{n}.{e}" for n in TABLES for e in FORMATS]
    write_tables(csv, outputs, train_language="en", split="test", methods=["random", "magnitude"],
                 languages=["sw", "de", "en"])
    dense = {(r["seed"], r["language"]): 100 * r["accuracy"] for r in rows if r["method"] == "dense"}
    chance = 100 / 3  # XNLI's three labels
    table = pd.read_csv(tmp_path / "dense_transfer.csv").set_index("language")
    # the training language first, then the config's order
    assert table.index.tolist() == ["en", "sw", "de"]
    for lang in LANGS:
        r = [(dense[(s, lang)] - chance) / (dense[(s, "en")] - chance) for s in (1, 2)]
        for seed, expected in zip((1, 2), r):
            assert table.loc[lang, f"accuracy_seed{seed}"] == pytest.approx(dense[(seed, lang)])
            assert table.loc[lang, f"retention_seed{seed}"] == pytest.approx(expected)
        assert table.loc[lang, "retention_mean"] == pytest.approx(sum(r) / 2)
        assert table.loc[lang, "retention_range"] == pytest.approx(max(r) - min(r))
    assert table.loc["en", ["retention_seed1", "retention_seed2"]].tolist() == [1.0, 1.0]
    # e.g. de on seed 1: (73 - 33.3) / (81 - 33.3) = 0.832; printed to two decimals, once per language
    assert table.loc["de", "retention_seed1"] == pytest.approx((73 - chance) / (81 - chance))
    markdown = (tmp_path / "dense_transfer.md").read_text()
    assert markdown.count("| en ") == 1 and "|              0.83 |" in markdown


def test_figures_draw_the_control_as_a_labelled_grey_line_beside_dense(evals, tmp_path, monkeypatch):
    from alignprune import plots
    from alignprune.results import load_evals

    rows, _ = evals
    control, csv = with_control(rows, tmp_path)
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    frame = load_evals(csv, "test")
    methods, controls = ["random", "magnitude", "retrain_only"], ["retrain_only"]
    plots.plot_accuracy_vs_sparsity(frame, "en", tmp_path / "a.png", methods, controls)
    english = figures[0].axes[0]
    lines = [line for line in english.get_lines() if line.get_label() == plots.control_label("retrain_only")]
    assert len(lines) == 1 and lines[0].get_linestyle() == "--" and lines[0].get_color() == plots.CONTROL_COLOUR
    expected = [sum(100 * r["accuracy"] for r in control if r["language"] == "en" and r["sparsity_target"] == t) / 2
                for t in (0.5, 0.9)]
    assert list(lines[0].get_ydata()) == pytest.approx(expected)
    legends = [t.get_text() for ax in figures[0].axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert plots.control_label("retrain_only") in legends and "dense" in legends
    # the pruned methods keep their colours whether or not a control is configured
    assert plots.method_palette(methods, controls)["magnitude"] == plots.method_palette(["random", "magnitude"])["magnitude"]

    plots.plot_language_bars(frame, {"0.50": tmp_path / "b.png"}, methods, LANGS, controls)
    rows = [t.get_text() for t in figures[1].axes[0].get_yticklabels()]
    assert rows[:2] == ["dense", plots.control_label("retrain_only")]
    plots.plot_supervised_vs_zero_shot(frame, "en", tmp_path / "c.png", methods, controls)
    # the control's path is drawn and named as the control
    panels = [ax for ax in figures[2].axes if ax.get_title() == plots.control_label("retrain_only")]
    assert len(panels) == 1 and panels[0].containers
    plots.plot_degradation_heatmaps(frame, {"retrain_only": tmp_path / "d.png"}, methods, LANGS, controls)
    assert figures[3].axes[0].get_title().startswith(plots.control_label("retrain_only"))


def test_the_tables_job_warns_when_two_versions_of_the_code_made_the_evaluations(evals, tmp_path, caplog):
    _, csv = evals
    frame = pd.read_csv(csv)
    outputs = [tmp_path / f"{n}.{e}" for n in TABLES for e in FORMATS]

    def tables(name, code):
        """The tables job on ``frame`` with its ``code`` column set: what it logs."""
        frame.assign(code=code).to_csv(tmp_path / f"{name}.csv", index=False)
        caplog.clear()
        with caplog.at_level("WARNING", logger="alignprune.results"):
            write_tables(tmp_path / f"{name}.csv", outputs, train_language="en", split="test",
                         methods=["random", "magnitude"], languages=LANGS)
        return caplog.text

    assert tables("one", "aaaaaaaaaaaa") == ""
    # one model made by a later version: its row names both, and the job says so
    last = frame.index[frame["split"] == "test"][-1]
    code = pd.Series("aaaaaaaaaaaa", index=frame.index, dtype=object)
    assert "2 versions of the code (aaaaaaaaaaaa, bbbbbbbbbbbb" in tables(
        "two", code.where(code.index != last, "aaaaaaaaaaaa+bbbbbbbbbbbb"))
    inputs = pd.read_csv(tmp_path / "inputs.csv")
    assert sorted(inputs["code"]) == ["aaaaaaaaaaaa", "aaaaaaaaaaaa+bbbbbbbbbbbb"]
    # rows without a digest (written before code was recorded) beside recorded ones: 'unrecorded'
    text = tables("old", code.where(code.index != last, None))
    assert "(aaaaaaaaaaaa, unrecorded;" in text
    inputs = pd.read_csv(tmp_path / "inputs.csv")
    assert sorted(inputs["code"]) == ["aaaaaaaaaaaa", "unrecorded"]
    assert inputs.loc[inputs["code"] == "unrecorded", "evaluations"].tolist() == [1]


def test_methods_that_print_alike_are_both_best():
    """Compared at the printed decimal: 55.91 and 55.86 both print 55.9 and both are bold; 55.84
    prints 55.8 and is not; dense and the control are never best."""
    from alignprune.results import mark_best

    table = pd.DataFrame({"method": ["dense", "retrain_only", "a", "b", "c"], "sparsity_target": [0.0, 0.9, 0.9, 0.9, 0.9],
                          "zero_shot_mean": [70.0, 60.0, 55.91, 55.86, 55.84]})
    assert mark_best(table, "zero_shot_mean", controls=["retrain_only"])["best_zero_shot"].tolist() == [
        False, False, True, True, False]
