"""Rule aggregate: every eval JSON of a task as one row of a tidy CSV."""

from alignprune.results import collect_evals
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    collect_evals(snakemake.input, snakemake.output[0])
