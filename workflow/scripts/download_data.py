"""Rule download_data: one language and split of a task, normalised."""

from alignprune.stages.download import download_split
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    download_split(
        snakemake.wildcards.task,
        snakemake.wildcards.lang,
        snakemake.wildcards.split,
        snakemake.params.source,
        snakemake.output[0],
    )
