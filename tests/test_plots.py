"""Every figure at the full study's size (15 XNLI languages, 10 pruning methods and the retraining
control, 9 targets, 3 seeds): within MAX_PIXELS at the report's DPI, sparsity targets told apart by
colour, and each figure returned so a notebook can show it."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

from alignprune import plots
from alignprune.analysis import alignment_accuracy_points

LANGS = ["en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur"]
CONTROLS = ["retrain_only"]
METHODS = [*CONTROLS, "random", "magnitude_layer", "magnitude_global", "gradient", "movement", "lamp", "lookahead",
           "magnitude_global_l2", "magnitude_global_cosine", "magnitude_global_frobenius"]
TARGETS = [round(0.1 * i, 2) for i in range(1, 10)]
SEEDS = [1, 2, 3]


@pytest.fixture(scope="module")
def study():
    """Eval rows, weight alignment and per-layer CKA of every model of the full study, made up:
    accuracy falls with the target, more for later methods and languages."""
    rng = np.random.default_rng(0)
    evals, weights, layers = [], [], []
    for method, target in [("dense", 0.0)] + [(m, t) for m in METHODS for t in TARGETS]:
        rank = METHODS.index(method) if method != "dense" else -1
        keys = {"task": "xnli", "method": method, "sparsity_target": target}
        for seed in SEEDS:
            for i, lang in enumerate(LANGS):
                accuracy = 85 - 1.5 * i - target ** 2 * (20 + 2 * rank) * (1 + 0.05 * i) + rng.normal(0, 0.5)
                evals.append({**keys, "seed": seed, "split": "test", "language": lang, "accuracy": accuracy})
                for layer in range(13) if lang != "en" else ():
                    cka = 0.9 - 0.02 * layer - target ** 2 * 0.3 * (1 + 0.1 * rank) + rng.normal(0, 0.01)
                    layers.append({**keys, "seed": seed, "split": "test", "language": lang, "layer": layer,
                                   "cka": cka, "cosine": cka, "cka_shuffled": 0.1, "cosine_shuffled": 0.1})
            for layer in range(12) if method != "dense" else ():
                for module in ("query", "key", "value", "intermediate.dense"):
                    weights.append({**keys, "seed": seed, "layer": float(layer),
                                    "parameter": f"layer.{layer}.{module}.weight",
                                    "mean_cosine": 1 - target ** 2 * 0.5 + rng.normal(0, 0.01),
                                    "kept_change": target * (0.2 + 0.01 * rank) + rng.normal(0, 0.01)})
    evals, layers = pd.DataFrame(evals), pd.DataFrame(layers)
    return evals, pd.DataFrame(weights), layers, alignment_accuracy_points(layers, evals)


def draw_all(study, out):
    """Every figure of the workflow (plots and alignment_tables rules) as PNG files, by name."""
    evals, weights, layers, points = study
    files = {name: out / f"{name}.png" for name in (
        "accuracy_vs_sparsity", "supervised_vs_zero_shot", "weight_alignment", "representation_alignment",
        "alignment_vs_accuracy")}
    plots.plot_accuracy_vs_sparsity(evals, "en", files["accuracy_vs_sparsity"], METHODS, CONTROLS)
    plots.plot_supervised_vs_zero_shot(evals, "en", files["supervised_vs_zero_shot"], METHODS, CONTROLS)
    plots.plot_weight_alignment(weights, files["weight_alignment"], METHODS, CONTROLS)
    plots.plot_representation_alignment(layers, files["representation_alignment"], METHODS, CONTROLS)
    plots.plot_alignment_vs_accuracy(points, files["alignment_vs_accuracy"], METHODS, CONTROLS)
    heatmaps = {m: out / f"degradation_heatmap_{m}.png" for m in (METHODS[0], METHODS[-1])}
    plots.plot_degradation_heatmaps(evals, heatmaps, METHODS, LANGS, CONTROLS)
    bars = {f"{t:.2f}": out / f"language_bars_{t:.2f}.png" for t in (TARGETS[0], TARGETS[-1])}
    plots.plot_language_bars(evals, bars, METHODS, LANGS, CONTROLS)
    return {**files, **{p.stem: p for p in [*heatmaps.values(), *bars.values()]}}


def test_every_figure_of_the_full_study_fits_the_pixel_budget(study, tmp_path):
    files = draw_all(study, tmp_path)
    assert len(files) == 9
    sizes = {name: Image.open(path).size for name, path in files.items()}
    width, height = plots.MAX_PIXELS
    too_big = {name: size for name, size in sizes.items() if size[0] > width or size[1] > height}
    assert not too_big, sizes
    # and not shrunk to nothing: each at least a third of the budget's width
    assert min(w for w, _ in sizes.values()) > width / 3, sizes
    for path in files.values():
        assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def _target_points(fig):
    """Per panel title: the sparsity targets its scatter points are coloured by."""
    found = {}
    for ax in fig.axes:
        for collection in ax.collections:
            if isinstance(collection, PathCollection) and collection.get_array() is not None:
                found.setdefault(ax.get_title(), []).extend(np.round(collection.get_array(), 2).tolist())
    return found


def test_scatter_points_are_coloured_by_their_sparsity_target_one_panel_per_method(study):
    evals, _, _, points = study
    gap = plots.plot_supervised_vs_zero_shot(evals, "en", None, METHODS, CONTROLS)
    panels = _target_points(gap)
    assert list(panels) == [plots.control_label(CONTROLS[0]), *METHODS[1:]]
    assert all(targets == TARGETS for targets in panels.values())  # one point per target, in order
    scatter = plots.plot_alignment_vs_accuracy(points, None, METHODS, CONTROLS)
    panels = _target_points(scatter)
    assert len(panels) == len(METHODS)
    per_panel = len(SEEDS) * (len(LANGS) - 1)  # each target: one point per seed and zero-shot language
    assert all(sorted(targets) == sorted(TARGETS * per_panel) for targets in panels.values())
    for fig in (gap, scatter):
        [bar] = [ax for ax in fig.axes if ax.get_ylabel() == "sparsity target"]
        assert [t.get_text() for t in bar.get_yticklabels()] == [f"{t:.2f}" for t in TARGETS]
        # nine different colours, one per target
        cmap, norm, _ = plots._target_colours(TARGETS)
        assert len({tuple(cmap(norm(t))) for t in TARGETS}) == len(TARGETS)


def test_weight_alignment_draws_the_kept_weights_change_per_method(study):
    weights = study[1]
    fig = plots.plot_weight_alignment(weights, None, METHODS, CONTROLS)
    kept = [ax for ax in fig.axes if ax.get_title().startswith("Kept weights")]
    assert len(kept) == 1
    drawn = [line for line in kept[0].get_lines() if len(line.get_xdata()) == len(TARGETS)]
    assert len(drawn) == len(METHODS)  # one line per method (the dense model has no kept-weights change)
    for method in ("lamp", METHODS[-1]):
        part = weights[weights["method"] == method]
        expected = 100 * part.groupby(["sparsity_target", "seed"])["kept_change"].mean().groupby("sparsity_target").mean()
        # the method's line: its colour, through the mean over seeds of the mean over matrices (%)
        [line] = [line for line in drawn if np.allclose(line.get_ydata(), expected.to_numpy())]
        assert np.allclose(line.get_xdata(), expected.index)
        assert line.get_color() == plots._palette(METHODS, weights, controls=CONTROLS)[method]


def test_language_grid_cells_hold_each_methods_mean_and_sd_over_seeds(study):
    evals = study[0]
    [fig] = plots.plot_language_bars(evals, {"0.50": None}, METHODS, LANGS, CONTROLS).values()
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["dense", plots.control_label(CONTROLS[0]), *METHODS[1:]]
    assert [t.get_text() for t in ax.get_xticklabels()] == LANGS
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(rows) * len(LANGS)
    cell = evals[(evals["method"] == "lamp") & (evals["sparsity_target"] == 0.5) & (evals["language"] == "sw")]
    expected = f"{cell['accuracy'].mean():.1f}\n±{cell['accuracy'].std():.1f}"
    assert texts[rows.index("lamp") * len(LANGS) + LANGS.index("sw")] == expected


def test_degradation_heatmap_cells_are_dense_minus_pruned_and_losses_are_red(study):
    evals = study[0]
    method = "magnitude_global"
    [fig] = plots.plot_degradation_heatmaps(evals, {method: None}, METHODS, LANGS, CONTROLS).values()
    ax = fig.axes[0]
    mesh = ax.collections[0]
    values = np.asarray(mesh.get_array()).reshape(len(LANGS), len(TARGETS))  # languages x targets
    test = evals[evals["split"] == "test"]
    mean = test.groupby(["method", "sparsity_target", "language"])["accuracy"].mean()
    sw, top = LANGS.index("sw"), len(TARGETS) - 1
    expected = mean[("dense", 0.0, "sw")] - mean[(method, TARGETS[-1], "sw")]
    assert expected > 10 and values[sw, top] == pytest.approx(expected)  # a loss is positive
    assert ax.texts[sw * len(TARGETS) + top].get_text() == f"{expected:.1f}"
    red, _, blue, _ = mesh.get_facecolors()[sw * len(TARGETS) + top]
    assert red > blue + 0.3  # losses in red, as the caption says


def test_language_grid_colours_a_loss_against_dense_in_red(study):
    evals = study[0]
    [fig] = plots.plot_language_bars(evals, {"0.90": None}, METHODS, LANGS, CONTROLS).values()
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    mesh = ax.collections[0]
    values = np.asarray(mesh.get_array()).reshape(len(rows), len(LANGS))
    cell = rows.index("lookahead") * len(LANGS) + LANGS.index("sw")
    mean = evals.groupby(["method", "sparsity_target", "language"])["accuracy"].mean()
    expected = mean[("lookahead", 0.9, "sw")] - mean[("dense", 0.0, "sw")]
    assert expected < -10 and values.flat[cell] == pytest.approx(expected)  # minus dense: a loss is negative
    assert np.allclose(values[rows.index("dense")], 0)
    red, _, blue, _ = mesh.get_facecolors()[cell]
    assert red > blue + 0.3


def test_each_pruning_method_has_its_own_colour_and_none_is_the_controls_grey():
    palette = plots.method_palette(METHODS, CONTROLS)
    assert palette[CONTROLS[0]] == plots.CONTROL_COLOUR
    colours = [tuple(palette[m]) for m in METHODS[1:]]
    assert len(set(colours)) == len(METHODS) - 1 == 10
    assert not [c for c in colours if np.allclose(c, c[0], atol=0.05)]  # no grey (r = g = b)
