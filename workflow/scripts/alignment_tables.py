"""Rule alignment_tables: the alignment analysis as tables (CSV, Markdown, LaTeX) and figures."""

import pandas as pd

from alignprune import plots
from alignprune.analysis import collect_weight_alignment, write_analysis_tables
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    params = snakemake.params
    write_analysis_tables(
        snakemake.input.weights,
        snakemake.input.representations,
        snakemake.input.evals,
        snakemake.output,
        split=params.split,
        methods=params.methods,
        languages=params.languages,
    )
    plots.plot_weight_alignment(
        collect_weight_alignment(snakemake.input.weights), params.plots["weight_alignment"], params.methods
    )
    layers = pd.read_csv(snakemake.output.layers)
    plots.plot_representation_alignment(layers, params.plots["representation_alignment"], params.methods)
    points = pd.read_csv(snakemake.output.points)
    plots.plot_alignment_vs_accuracy(points, params.plots["alignment_vs_accuracy"], params.methods)
