"""Rule sweep_table: English dev accuracy per (method, weight) and the chosen weights."""

from alignprune.rule_runtime import rule_job
from alignprune.sweep import write_sweep

with rule_job(snakemake):
    # each input is a sweep model's folder, which names its key
    write_sweep(snakemake.input, snakemake.output, tolerance=snakemake.params.tolerance)
