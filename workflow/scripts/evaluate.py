"""Rule evaluate: accuracy and measured sparsity of one model on one language and split."""

from alignprune.jobs import evaluate_model
from alignprune.rule_runtime import rule_job

with rule_job(snakemake) as device:
    evaluate_model(
        task=snakemake.wildcards.task,
        seed=int(snakemake.wildcards.seed),
        variant=snakemake.wildcards.variant,
        lang=snakemake.wildcards.lang,
        split=snakemake.wildcards.split,
        model_dir=snakemake.input.model,
        tokenizer_dir=snakemake.input.tokenizer,
        data_file=snakemake.input.data,
        out_file=snakemake.output[0],
        batch_size=snakemake.params.batch_size,
        max_length=snakemake.params.max_length,
        prunable=snakemake.params.prunable,
        device=device,
    )
