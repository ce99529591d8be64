# Stage 3: zero-shot evaluation, one job per model: it loads the model once and writes one JSON
# per (split, language) of its task. Snakemake derives a rule's outputs from patterns, never
# from wildcard values, and each task has its own languages: so one rule per task,
# evaluate_{task}. Naming one eval file runs the job of its model, which writes them all.

for task in TASKS:
    model = ModelKey.pattern(task, variant=True)

    rule:
        """Accuracy, example count and measured sparsity of one model on every split and language."""
        name:
            f"evaluate_{task}"
        input:
            model=LAYOUT.model_dir(model),
            tokenizer=MODEL_DIR,
            tokens=[token_file(task, lang, split) for split, lang in eval_pairs(task)],
        output:
            [LAYOUT.eval_file(model, split, lang) for split, lang in eval_pairs(task)],
        log:
            LAYOUT.log(model, "eval"),
        benchmark:
            LAYOUT.benchmark(model, "eval")
        conda:
            "../../envs/pipeline.yaml"
        threads: config["threads"]["evaluate"]
        resources:
            gpu=GPUS_PER_JOB,
        # Only what changes the numbers; the batch size is read from the config by the script,
        # so changing it does not rerun finished evaluations.
        params:
            task=task,
            evaluations=eval_pairs(task),
            max_length=config["max_length"],
            prunable=PRUNABLE,
        script:
            "../scripts/evaluate.py"
