"""Rule representation_alignment_{task}: per layer, each language's sentence representations vs
English's, one JSON per language, with one load of the model."""

from alignprune.model_key import ModelKey
from alignprune.stages.alignment import LanguageFile, measure_representation_alignment_files
from alignprune.rule_runtime import rule_job

with rule_job(snakemake) as device:
    measure_representation_alignment_files(
        key=ModelKey.from_wildcards(snakemake.wildcards, task=snakemake.params.task),
        split=snakemake.wildcards.split,
        reference_lang=snakemake.params.reference_lang,
        model_dir=snakemake.input.model,
        tokenizer_dir=snakemake.input.tokenizer,
        reference_file=snakemake.input.reference,
        files=[
            LanguageFile(lang, token_file, out_file)
            for lang, token_file, out_file in zip(
                snakemake.params.languages, snakemake.input.tokens, snakemake.output, strict=True
            )
        ],
        max_examples=snakemake.params.max_examples,
        # operational, not a param: a new batch size does not rerun finished jobs
        batch_size=snakemake.config["evaluation"]["batch_size"],
        max_length=snakemake.params.max_length,
        device=device,
    )
