"""Rule alignment_tables: the alignment analysis as tables (CSV, Markdown, LaTeX) and figures."""

from alignprune import plots
from alignprune.analysis import write_analysis_tables
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    params = snakemake.params
    frames = write_analysis_tables(
        snakemake.input.weights,
        snakemake.input.representations,
        snakemake.input.evals,
        snakemake.output,
        split=params.split,
        methods=params.methods,
        languages=params.languages,
        controls=params.controls,
    )
    # the same colour per method as in every figure (retraining controls grey)
    colours = {"methods": params.methods, "controls": params.controls}
    plots.plot_weight_alignment(frames["weights"], params.plots["weight_alignment"], **colours)
    plots.plot_representation_alignment(frames["layers"], params.plots["representation_alignment"], **colours)
    plots.plot_alignment_vs_accuracy(frames["points"], params.plots["alignment_vs_accuracy"], **colours)
