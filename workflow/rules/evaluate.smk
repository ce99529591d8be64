# Stage 3: zero-shot evaluation, one job per (model, split, language).


rule evaluate:
    """Accuracy, example count and measured sparsity of one model on one language."""
    input:
        model=model_dir("{task}", "{seed}", "{variant}"),
        tokenizer=MODEL_DIR,
        data=data_file("{task}", "{lang}", "{split}"),
    output:
        eval_file("{task}", "{seed}", "{variant}", "{split}", "{lang}"),
    log:
        f"{LOGS}/{{task}}/seed~{{seed}}/{{variant}}/eval/{{split}}/{{lang}}.log",
    benchmark:
        f"{BENCHMARKS}/{{task}}/seed~{{seed}}/{{variant}}/eval/{{split}}/{{lang}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        batch_size=config["evaluation"]["batch_size"],
        max_length=config["max_length"],
        prunable=PRUNABLE,
    script:
        "../scripts/evaluate.py"
