"""Rule representation_alignment: per layer, one language's sentence representations vs English's."""

from alignprune.jobs import measure_representation_alignment
from alignprune.rule_runtime import rule_job

with rule_job(snakemake) as device:
    measure_representation_alignment(
        task=snakemake.wildcards.task,
        seed=int(snakemake.wildcards.seed),
        variant=snakemake.wildcards.variant,
        split=snakemake.wildcards.split,
        lang=snakemake.wildcards.lang,
        reference_lang=snakemake.params.reference_lang,
        model_dir=snakemake.input.model,
        tokenizer_dir=snakemake.input.tokenizer,
        reference_file=snakemake.input.reference,
        data_file=snakemake.input.data,
        out_file=snakemake.output[0],
        max_examples=snakemake.params.max_examples,
        batch_size=snakemake.params.batch_size,
        max_length=snakemake.params.max_length,
        device=device,
    )
