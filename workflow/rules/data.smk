# Stage 1: the pretrained model and the task data, written once under resources/.
# Either downloaded (Hub or local folder) or, for the offline demo, synthesised.

if config["testbed"]["enabled"]:

    rule testbed:
        """Synthetic multilingual world: a tiny XLM-R pretrained by masked-LM and both tasks."""
        output:
            model=directory(MODEL_DIR),
            data=[data_file(*key) for key in needed_data_files()],
        params:
            testbed=config["testbed"],
            files=needed_data_files(),
        # Runs alone before everything else: give it every core.
        threads: workflow.cores
        log:
            f"{LOGS}/testbed.log",
        benchmark:
            f"{BENCHMARKS}/testbed.tsv"
        script:
            "../scripts/testbed.py"

else:

    rule download_model:
        """Model and tokenizer from the Hub, saved with save_pretrained (safetensors)."""
        output:
            directory(MODEL_DIR),
        params:
            model=config["model"],
        log:
            f"{LOGS}/download/model.log",
        script:
            "../scripts/download_model.py"

    rule download_data:
        """One language and split of a task, normalised to text_a, text_b, label."""
        output:
            data_file("{task}", "{lang}", "{split}"),
        params:
            source=lambda wildcards: config["tasks"][wildcards.task]["source"],
        log:
            f"{LOGS}/download/{{task}}/{{lang}}/{{split}}.log",
        script:
            "../scripts/download_data.py"
