# Stage 4: one tidy table of every evaluation, then the study's tables and plots.


rule aggregate:
    """Every eval JSON of a task as one row of a tidy CSV."""
    input:
        lambda wildcards: all_eval_files(wildcards.task),
    output:
        f"{RESULTS}/tables/{{task}}/evals.csv",
    log:
        f"{LOGS}/{{task}}/aggregate.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/aggregate.py"


rule tables:
    """Method x sparsity summary, per-language accuracies, degradation vs dense."""
    input:
        f"{RESULTS}/tables/{{task}}/evals.csv",
    output:
        report(
            table_files("{task}"),
            category="{task}",
            subcategory="Tables",
            caption="../report/tables.rst",
        ),
    log:
        f"{LOGS}/{{task}}/tables.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        train_language=TRAIN_LANGUAGE,
        split=config["table_split"],
        methods=METHODS,
        languages=lambda wildcards: languages(wildcards.task),
    script:
        "../scripts/tables.py"


rule plots:
    """Accuracy vs sparsity per method; per-language degradation heatmap."""
    input:
        f"{RESULTS}/tables/{{task}}/evals.csv",
    output:
        accuracy=report(
            f"{RESULTS}/plots/{{task}}/accuracy_vs_sparsity.png",
            category="{task}",
            subcategory="Plots",
            caption="../report/accuracy_vs_sparsity.rst",
        ),
        heatmap=report(
            f"{RESULTS}/plots/{{task}}/degradation_heatmap.png",
            category="{task}",
            subcategory="Plots",
            caption="../report/degradation_heatmap.rst",
        ),
    log:
        f"{LOGS}/{{task}}/plots.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        train_language=TRAIN_LANGUAGE,
        split=config["table_split"],
        methods=METHODS,
        languages=lambda wildcards: languages(wildcards.task),
    script:
        "../scripts/plots.py"


rule sweep_table:
    """English dev accuracy of every (regularized method, weight) and the weight chosen."""
    input:
        lambda wildcards: [run[-1] for run in sweep_models(wildcards.task)],
    output:
        runs=f"{RESULTS}/sweep/{{task}}/runs.csv",
        summary=f"{RESULTS}/sweep/{{task}}/regularizer_weights.csv",
        markdown=report(
            f"{RESULTS}/sweep/{{task}}/regularizer_weights.md",
            category="{task}",
            subcategory="Regularizer sweep",
            caption="../report/sweep.rst",
        ),
        chosen=f"{RESULTS}/sweep/{{task}}/chosen_weights.yaml",
    log:
        f"{LOGS}/sweep/{{task}}/sweep_table.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        runs=lambda wildcards: sweep_models(wildcards.task),
    script:
        "../scripts/sweep_table.py"


rule sweep:
    """Target: the regularizer-weight sweep of every task (snakemake sweep)."""
    input:
        [f"{RESULTS}/sweep/{task}/regularizer_weights.md" for task in TASKS],
