"""Rule evaluate_{task}: accuracy and measured sparsity of one model on every split and language
of its task, one JSON each, with one load of the model."""

from alignprune.model_key import ModelKey
from alignprune.stages.evaluate import EvalFile, evaluate_model_files
from alignprune.rule_runtime import rule_job

with rule_job(snakemake) as device:
    evaluate_model_files(
        key=ModelKey.from_wildcards(snakemake.wildcards, task=snakemake.params.task),
        model_dir=snakemake.input.model,
        tokenizer_dir=snakemake.input.tokenizer,
        files=[
            EvalFile(split, lang, token_file, out_file)
            for (split, lang), token_file, out_file in zip(
                snakemake.params.evaluations, snakemake.input.tokens, snakemake.output, strict=True
            )
        ],
        # operational, not a param: a new batch size does not rerun finished evaluations
        batch_size=snakemake.config["evaluation"]["batch_size"],
        max_length=snakemake.params.max_length,
        prunable=snakemake.params.prunable,
        device=device,
    )
