# Stage 1: the pretrained model and the task data, written once under resources/.
# Either downloaded (Hub or local folder) or, for the offline demo, synthesised; then
# tokenised once per (task, language, split): every later job reads the token ids.

if config["testbed"]["enabled"]:

    rule testbed:
        """Synthetic multilingual world: a tiny XLM-R pretrained by masked-LM and both tasks."""
        output:
            model=directory(MODEL_DIR),
            data=[data_file(*key) for key in needed_data_files()],
        log:
            f"{LOGS}/testbed.log",
        benchmark:
            f"{BENCHMARKS}/testbed.tsv"
        conda:
            "../../envs/pipeline.yaml"
        # Runs alone before everything else: give it every core.
        threads: local_cores()
        params:
            testbed=config["testbed"],
            files=needed_data_files(),
        script:
            "../scripts/testbed.py"

else:

    rule download_model:
        """Model and tokenizer from the Hub at model_revision, saved with save_pretrained (safetensors)
        and provenance.json (the commit it resolved to)."""
        output:
            directory(MODEL_DIR),
        log:
            f"{LOGS}/download/model.log",
        conda:
            "../../envs/pipeline.yaml"
        params:
            model=config["model"],
            revision=config["model_revision"],
        script:
            "../scripts/download_model.py"

    rule download_data:
        """One language and split of a task, normalised to text_a, text_b, label."""
        output:
            data_file("{task}", "{lang}", "{split}"),
        log:
            f"{LOGS}/download/{{task}}/{{lang}}/{{split}}.log",
        conda:
            "../../envs/pipeline.yaml"
        params:
            source=lambda wildcards: config["tasks"][wildcards.task]["source"],
        script:
            "../scripts/download_data.py"


rule tokenize:
    """Token ids of one language and split, made by the pretrained model's tokenizer; the
    file records the tokenizer's fingerprint and jobs refuse ids of another tokenizer."""
    input:
        data=data_file("{task}", "{lang}", "{split}"),
        tokenizer=MODEL_DIR,
    output:
        token_file("{task}", "{lang}", "{split}"),
    log:
        f"{LOGS}/tokenize/{{task}}/{{lang}}/{{split}}.log",
    benchmark:
        f"{BENCHMARKS}/tokenize/{{task}}/{{lang}}/{{split}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    params:
        max_length=config["max_length"],
    script:
        "../scripts/tokenize.py"
