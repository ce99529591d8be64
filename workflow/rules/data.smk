# Stage 1: the pretrained model and the task data, written once under resources/.
# Either downloaded (Hub or local folder) or, for the offline demo, synthesised; then
# tokenised once per (task, language, split): every later job reads the token ids.
from alignprune import testbed_settings

if config["testbed"]["enabled"]:

    # Two rules, so that each output reruns only when what it reads changes (testbed_settings:
    # model_params, data_params): a language, split or task added to the demo writes its data
    # files and leaves the model, and every model trained on it, as they are.
    TESTBED = testbed_settings.settings_from_config(config["testbed"])

    rule testbed_model:
        """Synthetic multilingual world: a tiny XLM-R and its tokenizer, pretrained by masked-LM."""
        output:
            directory(MODEL_DIR),
        log:
            f"{LOGS}/testbed/model.log",
        benchmark:
            f"{BENCHMARKS}/testbed/model.tsv"
        conda:
            "../../envs/pipeline.yaml"
        # The model depends on the number of threads it was built on: 2, as the demo's calibration
        # (and profiles/slurm), whatever --cores says above that (Snakemake gives fewer to --cores 1).
        threads: 2
        params:
            testbed=testbed_settings.model_params(TESTBED),
        script:
            "../scripts/testbed_model.py"

    rule testbed_data:
        """One language and split of a task of the synthetic world, as download_data writes it."""
        output:
            data_file("{task}", "{lang}", "{split}"),
        log:
            f"{LOGS}/testbed/data/{{task}}/{{lang}}/{{split}}.log",
        benchmark:
            f"{BENCHMARKS}/testbed/data/{{task}}/{{lang}}/{{split}}.tsv"
        conda:
            "../../envs/pipeline.yaml"
        params:
            testbed=lambda wildcards: testbed_settings.data_params(TESTBED, wildcards.task, wildcards.split),
        script:
            "../scripts/testbed_data.py"

else:

    rule download_model:
        """Model and tokenizer from the Hub at model_revision, saved with save_pretrained (safetensors)
        and provenance.json (the commit it resolved to)."""
        output:
            directory(MODEL_DIR),
        log:
            f"{LOGS}/download/model.log",
        benchmark:
            f"{BENCHMARKS}/download/model.tsv"
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
        benchmark:
            f"{BENCHMARKS}/download/{{task}}/{{lang}}/{{split}}.tsv"
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
