"""Rule training_curves: English dev accuracy during every training job of a task (PNG + PDF),
and the step each job kept (kept_steps table)."""

from pathlib import Path

from alignprune.curves import kept_steps_table, load_runs, save_figure, training_curves
from alignprune.results import write_table
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    params = snakemake.params
    # each input is a trained model's folder, which names its key
    runs = load_runs(snakemake.input)
    figure = training_curves(runs, params.methods, params.sparsities, ladder=params.ladder)
    save_figure(figure, snakemake.output[0])
    tables = {Path(path).suffix[1:]: Path(path) for path in snakemake.output.tables}
    write_table(kept_steps_table(runs, params.methods, params.sparsities), tables)
