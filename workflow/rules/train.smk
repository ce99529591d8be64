# Stage 2: dense fine-tuning on the training language, then prune-and-retrain.


rule finetune:
    """Dense fine-tune on English train; model selection on English dev only."""
    input:
        model=MODEL_DIR,
        train=data_file("{task}", TRAIN_LANGUAGE, "train"),
        dev=data_file("{task}", TRAIN_LANGUAGE, "validation"),
    output:
        directory(model_dir("{task}", "{seed}", "dense")),
    log:
        f"{LOGS}/{{task}}/seed~{{seed}}/dense/finetune.log",
    benchmark:
        f"{BENCHMARKS}/{{task}}/seed~{{seed}}/dense/finetune.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]["train"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        settings=config["finetune"],
        max_length=config["max_length"],
        prunable=PRUNABLE,
        checkpoints=checkpoint_dir,
    script:
        "../scripts/finetune.py"


rule prune:
    """Prune one method to one sparsity target, then retrain (ladder or independent schedule)."""
    input:
        start=start_model,
        reference=reference_model,
        tokenizer=MODEL_DIR,
        train=data_file("{task}", TRAIN_LANGUAGE, "train"),
        dev=data_file("{task}", TRAIN_LANGUAGE, "validation"),
    output:
        directory(model_dir("{task}", "{seed}", "method~{method}/sparsity~{sparsity}")),
    log:
        f"{LOGS}/{{task}}/seed~{{seed}}/method~{{method}}/sparsity~{{sparsity}}/prune.log",
    benchmark:
        f"{BENCHMARKS}/{{task}}/seed~{{seed}}/method~{{method}}/sparsity~{{sparsity}}/prune.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]["train"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        method=method_spec,
        settings=config["retrain"],
        max_length=config["max_length"],
        prunable=PRUNABLE,
        schedule=config["schedule"],
        gradual=config["gradual"],
        checkpoints=checkpoint_dir,
    script:
        "../scripts/prune.py"


use rule prune as prune_sweep with:
    output:
        directory(
            sweep_model_dir("{task}", "{seed}", "{method}", "{weight}", "{sparsity}")
        ),
    log:
        f"{LOGS}/sweep/{{task}}/seed~{{seed}}/method~{{method}}/weight~{{weight}}/sparsity~{{sparsity}}/prune.log",
    benchmark:
        f"{BENCHMARKS}/sweep/{{task}}/seed~{{seed}}/method~{{method}}/weight~{{weight}}/sparsity~{{sparsity}}/prune.tsv"
