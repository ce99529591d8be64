# Stage 5 (beyond the paper): how aligned the pruned models stay, with the dense weights and
# across languages. One job per model for each; naming one file reruns the job of its model,
# as for an evaluation.


rule weight_alignment:
    """Per prunable matrix: mean cosine of each pruned unit with the same dense unit."""
    input:
        model=LAYOUT.model_dir(PRUNED_MODEL),
        dense=LAYOUT.model_dir(DENSE_MODEL),
    output:
        LAYOUT.weight_alignment_file(PRUNED_MODEL),
    log:
        LAYOUT.log(PRUNED_MODEL, "analysis/weight_alignment"),
    benchmark:
        LAYOUT.benchmark(PRUNED_MODEL, "analysis/weight_alignment")
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]["evaluate"]
    params:
        prunable=PRUNABLE,
    script:
        "../scripts/weight_alignment.py"


# One job per analysed model: it loads the model and encodes English once and writes one file
# per language. One rule per task, as for evaluate_{task}: its languages are its outputs.
for task in [t for t in TASKS if representation_languages(t)]:
    model = ModelKey.pattern(task, variant=True)

    rule:
        """Per layer: CKA and cosine of each language's sentence representations with English's."""
        name:
            f"representation_alignment_{task}"
        input:
            model=LAYOUT.model_dir(model),
            tokenizer=MODEL_DIR,
            reference=token_file(task, TRAIN_LANGUAGE, "{split}"),
            tokens=[
                token_file(task, lang, "{split}") for lang in representation_languages(task)
            ],
        output:
            [
                LAYOUT.representation_file(model, "{split}", lang)
                for lang in representation_languages(task)
            ],
        log:
            LAYOUT.log(model, "analysis/representation_alignment_{split}"),
        benchmark:
            LAYOUT.benchmark(model, "analysis/representation_alignment_{split}")
        conda:
            "../../envs/pipeline.yaml"
        threads: config["threads"]["evaluate"]
        resources:
            gpu=GPUS_PER_JOB,
        # Only what changes the numbers; the batch size is read from the config by the script.
        params:
            task=task,
            languages=representation_languages(task),
            reference_lang=TRAIN_LANGUAGE,
            max_examples=ANALYSIS["max_examples"],
            max_length=config["max_length"],
        script:
            "../scripts/representation_alignment.py"


rule alignment_tables:
    """Weight and representational alignment per method and sparsity, and its correlation with
    the loss of accuracy per language; tables and figures."""
    input:
        weights=lambda wildcards: weight_alignment_files(wildcards.task),
        representations=lambda wildcards: representation_files(wildcards.task),
        evals=EVALS_TABLE,
    output:
        reported_tables(ANALYSIS_TABLES, "Alignment analysis"),
        reported_figures(ANALYSIS_PLOTS, "Alignment analysis"),
        [plot_file("{task}", name, "pdf") for name in ANALYSIS_PLOTS],
        layers=table_file("{task}", "representation_layers"),
        points=table_file("{task}", "alignment_points"),
    log:
        f"{LOGS}/{{task}}/alignment_tables.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        split=config["table_split"],
        methods=METHODS,
        controls=CONTROLS,
        languages=lambda wildcards: languages(wildcards.task),
        plots=lambda wildcards: {
            name: plot_file(wildcards.task, name) for name in ANALYSIS_PLOTS
        },
    script:
        "../scripts/alignment_tables.py"
