"""Rule training_curves: English dev accuracy during every training job of a task (PNG + PDF)."""

from alignprune.curves import load_runs, save_figure, training_curves
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    params = snakemake.params
    # each input is a trained model's folder, which names its key
    figure = training_curves(load_runs(snakemake.input), params.methods, params.sparsities, ladder=params.ladder)
    save_figure(figure, snakemake.output[0])
