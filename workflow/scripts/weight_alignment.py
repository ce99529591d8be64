"""Rule weight_alignment: mean unit cosine of a pruned model's matrices with its dense model, and of
its kept weights with theirs (with their relative change)."""

from alignprune.model_key import ModelKey
from alignprune.stages.alignment import measure_weight_alignment
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    measure_weight_alignment(
        key=ModelKey.from_wildcards(snakemake.wildcards),
        model_dir=snakemake.input.model,
        dense_dir=snakemake.input.dense,
        out_file=snakemake.output[0],
        prunable=snakemake.params.prunable,
    )
