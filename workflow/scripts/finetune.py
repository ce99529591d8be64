"""Rule finetune: dense fine-tuning on English with English-dev model selection."""

from alignprune.stages.finetune import finetune
from alignprune.rule_runtime import rule_job, training_settings

with rule_job(snakemake) as device:
    finetune(
        task=snakemake.wildcards.task,
        seed=int(snakemake.wildcards.seed),
        pretrained_dir=snakemake.input.model,
        train_file=snakemake.input.train,
        dev_file=snakemake.input.dev,
        out_dir=snakemake.output[0],
        settings=training_settings(snakemake, "finetune"),
        max_length=snakemake.params.max_length,
        # checked, not used: the dense model does not depend on it (so it is no param)
        prunable=snakemake.config["prunable"],
        checkpoint_dir=snakemake.params.checkpoints,
        device=device,
    )
