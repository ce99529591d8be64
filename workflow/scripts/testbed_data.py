"""Rule testbed_data: one language and split of a task of the offline demo's synthetic world."""

from alignprune.rule_runtime import rule_job
from alignprune.testbed import write_testbed_data
from alignprune.testbed_settings import settings_from_params

with rule_job(snakemake):
    key = (snakemake.wildcards.task, snakemake.wildcards.lang, snakemake.wildcards.split)
    write_testbed_data(settings_from_params(snakemake.params.testbed), {key: snakemake.output[0]})
