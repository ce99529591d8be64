"""Rule testbed: the synthetic multilingual model and data of the offline demo."""

from alignprune.rule_runtime import rule_job
from alignprune.testbed import build_testbed, settings_from_config

with rule_job(snakemake):
    files = dict(zip(map(tuple, snakemake.params.files), snakemake.output.data))
    build_testbed(settings_from_config(snakemake.params.testbed), snakemake.output.model, files)
