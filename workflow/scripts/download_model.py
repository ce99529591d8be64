"""Rule download_model: the pretrained model and tokenizer from the Hub, at the config's revision."""

from alignprune.stages.download import download_model
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    download_model(snakemake.params.model, snakemake.output[0], revision=snakemake.params.revision)
