"""Rule tokenize: token ids of one language and split, made once for every later job."""

from alignprune.rule_runtime import rule_job
from alignprune.tasks import task_spec
from alignprune.tokens import tokenize_file

with rule_job(snakemake):
    tokenize_file(
        snakemake.input.data,
        snakemake.input.tokenizer,
        snakemake.output[0],
        num_labels=task_spec(snakemake.wildcards.task).num_labels,
        max_length=snakemake.params.max_length,
    )
