"""Rule weight_alignment: mean unit cosine of a pruned model's matrices with its dense model."""

from alignprune.stages.alignment import measure_weight_alignment
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    measure_weight_alignment(
        task=snakemake.wildcards.task,
        seed=int(snakemake.wildcards.seed),
        variant=f"method~{snakemake.wildcards.method}/sparsity~{snakemake.wildcards.sparsity}",
        model_dir=snakemake.input.model,
        dense_dir=snakemake.input.dense,
        out_file=snakemake.output[0],
        prunable=snakemake.params.prunable,
    )
