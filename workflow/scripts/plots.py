"""Rule plots: accuracy vs sparsity and the per-language degradation heatmap."""

from alignprune.plots import plot_accuracy_vs_sparsity, plot_degradation_heatmap
from alignprune.results import load_evals
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    evals = load_evals(snakemake.input[0], split=snakemake.params.split)
    methods = snakemake.params.methods
    plot_accuracy_vs_sparsity(evals, snakemake.params.train_language, snakemake.output.accuracy, methods)
    plot_degradation_heatmap(evals, snakemake.output.heatmap, methods, snakemake.params.languages)
