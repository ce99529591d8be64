# Stage 5: one tidy table of every evaluation, then the study's tables and plots.


rule aggregate:
    """Every eval JSON of a task as one row of a tidy CSV."""
    input:
        lambda wildcards: all_eval_files(wildcards.task),
    output:
        EVALS_TABLE,
    log:
        f"{LOGS}/{{task}}/aggregate.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/aggregate.py"


rule tables:
    """Summary, per-language, degradation and gap tables (CSV, Markdown, LaTeX)."""
    input:
        EVALS_TABLE,
    output:
        reported_tables(TABLES, "Tables"),
    log:
        f"{LOGS}/{{task}}/tables.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        train_language=TRAIN_LANGUAGE,
        split=config["table_split"],
        methods=METHODS,
        languages=lambda wildcards: languages(wildcards.task),
        controls=CONTROLS,
    script:
        "../scripts/tables.py"


rule findings:
    """The paper's three claims answered from the eval table, paired by seed, with 95% intervals
    and verdicts; drops against the retraining control. With the alignment analysis on, also
    whether the regularizers held the kept weights closer to the dense ones (its weight files)."""
    input:
        evals=EVALS_TABLE,
        weights=lambda wildcards: weight_alignment_files(wildcards.task) if ANALYSIS["enabled"] else [],
    output:
        csv=report(
            table_file("{task}", "findings"),
            category="{task}",
            subcategory="Findings",
            caption="../report/findings.rst",
            labels={"table": "findings"},
        ),
        markdown=table_file("{task}", "findings", "md"),
    log:
        f"{LOGS}/{{task}}/findings.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        train_language=TRAIN_LANGUAGE,
        split=config["table_split"],
        methods={m: method_params(m) for m in METHODS},
        languages=lambda wildcards: languages(wildcards.task),
        # claim 4's note on the kept steps: on the ladder a rung starts from the one before's model
        ladder=config["schedule"] == "ladder",
    script:
        "../scripts/findings.py"


rule plots:
    """Accuracy vs sparsity, zero-shot vs supervised degradation, a degradation heatmap per
    method and per-language bars per sparsity; PNG and PDF."""
    input:
        EVALS_TABLE,
    output:
        reported_figures(["accuracy_vs_sparsity", "supervised_vs_zero_shot"], "Figures"),
        [
            report(
                png,
                category="{task}",
                subcategory="Degradation per language",
                caption="../report/degradation_heatmap.rst",
                labels={"method": method},
            )
            for method, png in heatmap_files("{task}").items()
        ],
        [
            report(
                png,
                category="{task}",
                subcategory="Accuracy per language",
                caption="../report/language_bars.rst",
                labels={"sparsity": sparsity},
            )
            for sparsity, png in bars_files("{task}").items()
        ],
        [f for f in plot_files("{task}") if f.endswith(".pdf")],
    log:
        f"{LOGS}/{{task}}/plots.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        train_language=TRAIN_LANGUAGE,
        split=config["table_split"],
        methods=METHODS,
        languages=lambda wildcards: languages(wildcards.task),
        accuracy=lambda wildcards: plot_file(wildcards.task, "accuracy_vs_sparsity"),
        gap=lambda wildcards: plot_file(wildcards.task, "supervised_vs_zero_shot"),
        heatmaps=lambda wildcards: heatmap_files(wildcards.task),
        bars=lambda wildcards: bars_files(wildcards.task),
        controls=CONTROLS,
    script:
        "../scripts/plots.py"


checkpoint sweep_choice:
    """The weight chosen per regularized method on English dev: the strongest within
    sweep.tolerance points of the best. A checkpoint: the prune jobs of a `weight: sweep` method
    are planned with the weight it writes (common.smk: method_spec, chosen_weights). The
    unregularized reference plays no part in the choice, so the choice does not wait for it."""
    input:
        lambda wildcards: sweep_models(wildcards.task, references=False),
    output:
        runs=sweep_file("{task}", "runs.csv"),
        chosen=sweep_chosen_file("{task}"),
    log:
        f"{LOGS}/sweep/{{task}}/sweep_choice.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        tolerance=SWEEP["tolerance"],
    script:
        "../scripts/sweep_table.py"


rule sweep_table:
    """English dev accuracy of every (regularized method, weight) and the weight chosen (flagged
    at an edge of its grid), with each weight's zero-shot accuracy beside it and both against the
    unregularized base's weight-0 ladder (reported, never used to choose): the report's table and
    figure."""
    input:
        models=lambda wildcards: sweep_models(wildcards.task),
        zero_shot=lambda wildcards: sweep_eval_files(wildcards.task),
    output:
        summary=sweep_table_file("{task}", "csv"),
        markdown=report(
            sweep_table_file("{task}"),
            category="{task}",
            subcategory="Regularizer sweep",
            caption="../report/sweep.rst",
        ),
        figure=report(
            sweep_table_file("{task}", "png"),
            category="{task}",
            subcategory="Regularizer sweep",
            caption="../report/sweep.rst",
        ),
        figure_pdf=sweep_table_file("{task}", "pdf"),  # written with the PNG
    log:
        f"{LOGS}/sweep/{{task}}/sweep_table.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        tolerance=SWEEP["tolerance"],
        references=sweep_references(),
    script:
        "../scripts/sweep_table.py"


rule sweep:
    """Target: the regularizer-weight sweep of every task (snakemake sweep)."""
    input:
        [sweep_table_file(task) for task in TASKS],
        [sweep_chosen_file(task) for task in TASKS],


rule training_curves:
    """English dev accuracy during every training job (dense fine-tunes and prune jobs): one
    panel per method, one line per job coloured by target; PNG and PDF. And the step whose
    model each job kept (kept_steps table)."""
    input:
        lambda wildcards: training_models(wildcards.task),
    output:
        reported_figures(["training_curves"], "Training"),
        plot_file("{task}", "training_curves", "pdf"),
        tables=reported_tables(["kept_steps"], "Training"),
    log:
        f"{LOGS}/{{task}}/training_curves.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        methods=METHODS,
        sparsities=[float(s) for s in SPARSITIES],
        ladder=config["schedule"] == "ladder",
    script:
        "../scripts/training_curves.py"
