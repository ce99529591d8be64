"""Rules sweep_choice and sweep_table: English dev accuracy per (method, weight), the chosen
weights (sweep_choice) and the report's table and figure with each weight's zero-shot accuracy
(sweep_table; reported only, beside the unregularized base's weight-0 ladder)."""

from alignprune.rule_runtime import rule_job
from alignprune.sweep import write_sweep

with rule_job(snakemake):
    # the sweep models' folders name their keys; sweep_choice's inputs are those folders alone
    models = snakemake.input.get("models", snakemake.input)
    write_sweep(models, dict(snakemake.output.items()), tolerance=snakemake.params.tolerance,
                zero_shot=snakemake.input.get("zero_shot"), references=snakemake.params.get("references"))
