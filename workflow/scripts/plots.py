"""Rule plots: the study's figures from the tidy evaluation table (PNG + PDF each)."""

from alignprune import plots
from alignprune.results import load_evals
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    params = snakemake.params
    evals = load_evals(snakemake.input[0], split=params.split)
    plots.plot_accuracy_vs_sparsity(evals, params.train_language, params.accuracy, params.methods, params.controls)
    plots.plot_supervised_vs_zero_shot(evals, params.train_language, params.gap, params.methods, params.controls)
    plots.plot_degradation_heatmaps(evals, params.heatmaps, params.methods, params.languages, params.controls)
    plots.plot_language_bars(evals, params.bars, params.methods, params.languages, params.controls)
