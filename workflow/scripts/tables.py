"""Rule tables: summary, per-language, degradation, gap and degradation-split tables."""

from alignprune.results import write_tables
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    write_tables(
        snakemake.input[0],
        snakemake.output,
        train_language=snakemake.params.train_language,
        split=snakemake.params.split,
        methods=snakemake.params.methods,
        languages=snakemake.params.languages,
        controls=snakemake.params.controls,
    )
