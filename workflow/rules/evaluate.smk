# Stage 4: zero-shot evaluation, one job per model: it loads the model once and writes one JSON
# per (split, language) of its task. Snakemake derives a rule's outputs from patterns, never
# from wildcard values, and each task has its own languages: so one rule per task,
# evaluate_{task}. Naming one eval file runs the job of its model, which writes them all.
# evaluate_sweep_{task}: the same for the sweep's models, on the zero-shot languages of the
# table split only (what the sweep table reports beside English dev; never used to choose).

for task, sweep in [(task, sweep) for task in TASKS for sweep in (False, True)]:
    model = ModelKey.pattern(task, sweep=True) if sweep else ModelKey.pattern(task, variant=True)
    pairs = sweep_eval_pairs(task) if sweep else eval_pairs(task)

    rule:
        """Accuracy, example count and measured sparsity of one model on every split and language."""
        name:
            f"evaluate_sweep_{task}" if sweep else f"evaluate_{task}"
        input:
            model=LAYOUT.model_dir(model),
            tokenizer=MODEL_DIR,
            tokens=[token_file(task, lang, split) for split, lang in pairs],
        output:
            [LAYOUT.eval_file(model, split, lang) for split, lang in pairs],
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
            evaluations=pairs,
            max_length=config["max_length"],
            prunable=PRUNABLE,
        script:
            "../scripts/evaluate.py"
