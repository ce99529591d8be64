"""The training-curves figure: one line per training job, readable at the full study's size."""

import json
import struct
from pathlib import Path

import pytest

from alignprune.curves import load_runs, save_figure, training_curves
from alignprune.model_key import Layout, ModelKey


def history(steps, every, start=0.5):
    return [{"step": s, "train_loss": 0.5, "penalty": 0.0, "dev_accuracy": start + s / 1e5, "seconds": s / 10}
            for s in range(every, steps + 1, every)]


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
