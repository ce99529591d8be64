# Stages 2 and 3: dense fine-tuning on the training language, then prune-and-retrain.
# params hold only what changes a model: Snakemake reruns a job whose params changed. The
# scripts read the operational settings (checkpoint and log intervals, TensorBoard) from the
# config, so editing those reruns nothing (alignprune.operational).
from alignprune.operational import result_settings, task_finetune


rule finetune:
    """Dense fine-tune on English train; model selection on English dev only."""
    input:
        model=MODEL_DIR,
        train=token_file("{task}", TRAIN_LANGUAGE, "train"),
        dev=token_file("{task}", TRAIN_LANGUAGE, "validation"),
    output:
        directory(LAYOUT.model_dir(DENSE_MODEL)),
    log:
        LAYOUT.log(DENSE_MODEL, "finetune"),
    benchmark:
        LAYOUT.benchmark(DENSE_MODEL, "finetune")
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]["train"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        settings=lambda wildcards: result_settings(task_finetune(config, wildcards.task)),
        max_length=config["max_length"],
        # functions of the output: not compared for reruns
        checkpoints=checkpoint_dir,
        tensorboard=tensorboard_dir,
    script:
        "../scripts/finetune.py"


rule prune:
    """Prune one method to one sparsity target, then retrain (ladder or independent schedule)."""
    input:
        start=start_model,
        reference=reference_model,
        tokenizer=MODEL_DIR,
        train=token_file("{task}", TRAIN_LANGUAGE, "train"),
        dev=token_file("{task}", TRAIN_LANGUAGE, "validation"),
        chosen=chosen_weights,
    output:
        directory(LAYOUT.model_dir(PRUNED_MODEL)),
    log:
        LAYOUT.log(PRUNED_MODEL, "prune"),
    benchmark:
        LAYOUT.benchmark(PRUNED_MODEL, "prune")
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]["train"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        method=method_spec,
        settings=result_settings(config["retrain"]),
        max_length=config["max_length"],
        prunable=PRUNABLE,
        schedule=config["schedule"],
        # the ladder does not read the gradual schedule's settings
        gradual=config["gradual"] if config["schedule"] == "independent" else None,
        checkpoints=checkpoint_dir,
        tensorboard=tensorboard_dir,
    script:
        "../scripts/prune.py"


use rule prune as prune_sweep with:
    output:
        directory(LAYOUT.model_dir(SWEEP_MODEL)),
    log:
        LAYOUT.log(SWEEP_MODEL, "prune"),
    benchmark:
        LAYOUT.benchmark(SWEEP_MODEL, "prune")
