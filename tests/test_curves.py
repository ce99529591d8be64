"""The training-curves figure: one line per training job, readable at the full study's size."""

import json
import struct
from pathlib import Path

import pandas as pd
import pytest

from alignprune.curves import kept_steps_table, load_runs, save_figure, training_curves
from alignprune.model_key import Layout, ModelKey


def history(steps, every, start=0.5):
    return [{"step": s, "train_loss": 0.5, "penalty": 0.0, "dev_accuracy": start + s / 1e5, "seconds": s / 10}
            for s in range(every, steps + 1, every)]


def kept(training, step):
    """``training`` as train() reports it when the evaluation at ``step`` was the best."""
    entry = next(e for e in training["history"] if e["step"] == step)
    return {**training, "best_step": step, "best_dev_accuracy": entry["dev_accuracy"]}


def fabricated_runs(methods, sparsities, seeds, finetune_steps=900, retrain_steps=150):
    runs = [{"method": "dense", "sparsity": None, "seed": seed,
             "training": {"settings": {"max_steps": finetune_steps}, "history": history(finetune_steps, 250)}}
            for seed in seeds]
    for method in methods:
        for sparsity in sparsities:
            for seed in seeds:
                runs.append({"method": method, "sparsity": sparsity, "seed": seed, "training": {
                    "settings": {"max_steps": retrain_steps}, "history": history(retrain_steps, 75),
                    "dev_accuracy_before_retraining": 0.4}})
    return runs


def lines_per_panel(fig):
    return {ax.get_title(): ax.get_lines() for ax in fig.axes if ax.get_visible()}


def test_one_line_per_training_job_in_its_methods_panel():
    methods, sparsities, seeds = ["random", "magnitude_global"], [0.5, 0.9], [1, 2, 3]
    fig = training_curves(fabricated_runs(methods, sparsities, seeds), methods, sparsities)
    panels = lines_per_panel(fig)
    assert {name: len(lines) for name, lines in panels.items()} == {"dense": 3, "random": 6, "magnitude_global": 6}
    # ladder: the 0.90 target's retraining is drawn after the 0.50 target's 150 steps, and each
    # prune job's line starts at its accuracy right after pruning (40%)
    starts = sorted((line.get_xdata()[0], line.get_ydata()[0]) for line in panels["random"])
    assert starts == [(0, 40.0)] * 3 + [(150, 40.0)] * 3
    assert sorted(line.get_xdata()[-1] for line in panels["random"]) == [150] * 3 + [300] * 3
    dense = panels["dense"][0]
    assert list(dense.get_xdata()) == [250, 500, 750] and dense.get_ydata()[0] == pytest.approx(50.25)


def test_independent_schedule_starts_every_target_at_step_zero():
    methods, sparsities = ["random"], [0.5, 0.9]
    fig = training_curves(fabricated_runs(methods, sparsities, [1]), methods, sparsities, ladder=False)
    assert [line.get_xdata()[0] for line in lines_per_panel(fig)["random"]] == [0, 0]


def test_full_study_size_stays_readable(tmp_path):
    """12 panels (dense + 11 methods), 9 targets, 3 seeds: 300 lines within 2,400 x 1,800 pixels."""
    methods = [f"method_{i}" for i in range(11)]
    sparsities = [round(0.1 * i, 2) for i in range(1, 10)]
    fig = training_curves(fabricated_runs(methods, sparsities, [1, 2, 3], 61360, 3000), methods, sparsities)
    assert sum(len(lines) for lines in lines_per_panel(fig).values()) == 3 + 11 * 9 * 3
    save_figure(fig, tmp_path / "curves.png")
    width, height = struct.unpack(">II", (tmp_path / "curves.png").read_bytes()[16:24])
    assert 1200 < width <= 2400 and 600 < height <= 1800, (width, height)
    assert (tmp_path / "curves.pdf").read_bytes().startswith(b"%PDF-")


def test_load_runs_reads_the_training_report_next_to_each_model(tmp_path):
    layout = Layout(str(tmp_path), str(tmp_path), str(tmp_path))
    dense, pruned = layout.model_dir(ModelKey.of("xnli", 1)), layout.model_dir(ModelKey.of("xnli", 2, "random", 0.5))
    for model in (dense, pruned):
        Path(model).mkdir(parents=True)
        (Path(model) / "training.json").write_text(json.dumps({"history": history(20, 10)}))
    runs = load_runs([dense, pruned])
    assert [h["step"] for h in runs[0]["training"]["history"]] == [10, 20]
    # each run's key comes from its folder's name
    assert [(r["method"], r["sparsity"], r["seed"], r["model"]) for r in runs] == [
        ("dense", None, 1, dense), ("random", 0.5, 2, pruned)]


def test_the_kept_step_of_each_job_is_marked_on_its_line():
    methods, sparsities = ["random"], [0.5, 0.9]
    runs = fabricated_runs(methods, sparsities, [1])
    runs[0]["training"] = kept(runs[0]["training"], 500)  # dense
    runs[2]["training"] = kept(runs[2]["training"], 75)  # random at 0.9: drawn after 0.5's 150 steps
    panels = {ax.get_title(): ax for ax in training_curves(runs, methods, sparsities).axes if ax.get_visible()}
    marks = {name: [tuple(p) for c in ax.collections for p in c.get_offsets()] for name, ax in panels.items()}
    assert marks["dense"] == [(500, pytest.approx(50.5))]
    assert marks["random"] == [(225, pytest.approx(50.075))]  # the 0.5 job reports no kept step: no mark


def test_kept_steps_table_gives_each_jobs_kept_step_per_seed():
    methods, sparsities, seeds = ["random", "magnitude_global"], [0.5, 0.9], [1, 2, 3]
    runs = fabricated_runs(methods, sparsities, seeds)
    chosen = {("dense", None): [750, 750, 500], ("random", 0.5): [150, 75, 150], ("random", 0.9): [150, 150, 150],
              ("magnitude_global", 0.5): [75, 75, 150], ("magnitude_global", 0.9): [75, 150, 75]}
    for run in runs:
        run["training"] = kept(run["training"], chosen[run["method"], run["sparsity"]][run["seed"] - 1])
    # a method of the runs that the study no longer lists, and a target it no longer runs, are left out
    runs.append({"method": "retired", "sparsity": 0.5, "seed": 1, "training": kept(runs[-1]["training"], 75)})
    runs.append({"method": "random", "sparsity": 0.7, "seed": 1, "training": kept(runs[-1]["training"], 75)})
    table = kept_steps_table(runs, methods, sparsities)
    assert list(table.columns) == ["method", "sparsity_target", "steps", "seed 1", "seed 2", "seed 3",
                                   "kept_step_mean", "kept_last_percent"]
    assert table[["method", "sparsity_target", "steps"]].values.tolist() == [
        ["dense", 0.0, 900], ["random", 0.5, 150], ["random", 0.9, 150],
        ["magnitude_global", 0.5, 150], ["magnitude_global", 0.9, 150]]
    for row in table.itertuples(index=False):
        per_seed = chosen[row.method, None if row.method == "dense" else row.sparsity_target]
        assert [row[3], row[4], row[5]] == per_seed
        assert row.kept_step_mean == pytest.approx(sum(per_seed) / 3)
        assert row.kept_last_percent == pytest.approx(100 * sum(s == row.steps for s in per_seed) / 3)
    assert table.loc[table["method"] == "random", "kept_last_percent"].tolist() == pytest.approx([200 / 3, 100])


def test_a_seed_without_a_job_stays_empty_and_counts_in_no_share():
    runs = fabricated_runs(["random"], [0.5], [1, 2, 3])
    for run in runs:
        run["training"] = kept(run["training"], 150 if run["method"] == "random" else 750)
    runs = [run for run in runs if not (run["method"] == "random" and run["seed"] == 3)]
    table = kept_steps_table(runs, ["random"], [0.5]).set_index("method")
    assert table.loc["random", ["seed 1", "seed 2"]].tolist() == [150, 150]
    assert table.loc["random", "seed 3"] is pd.NA
    assert table.loc["random", "kept_last_percent"] == 100.0 and table.loc["random", "kept_step_mean"] == 150.0
    # kept steps stay integers (not 150.0) beside the empty cell
    assert table[["seed 1", "seed 2", "seed 3"]].to_csv(index=False).splitlines() == [
        "seed 1,seed 2,seed 3", "750,750,750", "150,150,"]
