"""Rule testbed_model: the pretrained model and tokenizer of the offline demo's synthetic world."""

from alignprune.rule_runtime import rule_job
from alignprune.testbed import build_testbed_model
from alignprune.testbed_settings import settings_from_params

with rule_job(snakemake):
    build_testbed_model(settings_from_params(snakemake.params.testbed), snakemake.output[0])
