"""Rule prune: prune one method to one sparsity target and retrain."""

from alignprune.stages.prune import prune_and_retrain
from alignprune.rule_runtime import rule_job, training_settings

with rule_job(snakemake) as device:
    prune_and_retrain(
        task=snakemake.wildcards.task,
        seed=int(snakemake.wildcards.seed),
        method_name=snakemake.wildcards.method,
        method=snakemake.params.method,
        sparsity=float(snakemake.wildcards.sparsity),
        start_dir=snakemake.input.start,
        reference_dir=snakemake.input.reference,
        tokenizer_dir=snakemake.input.tokenizer,
        train_file=snakemake.input.train,
        dev_file=snakemake.input.dev,
        out_dir=snakemake.output[0],
        settings=training_settings(snakemake, "retrain"),
        max_length=snakemake.params.max_length,
        prunable=snakemake.params.prunable,
        schedule=snakemake.params.schedule,
        gradual=snakemake.params.gradual,
        checkpoint_dir=snakemake.params.checkpoints,
        chosen_file=snakemake.input.chosen or None,  # the sweep's choice, for a weight: sweep method
        device=device,
    )
