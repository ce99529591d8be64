# Prune-and-retrain study of XLM-RoBERTa with aligned weight regularizers.
# Full study: snakemake --cores 8   Demo (offline, CPU): snakemake --profile profiles/demo
import sys

from snakemake.utils import min_version

min_version("9.0")
# the alignprune package, also without an install
sys.path.insert(0, f"{workflow.basedir}/src")
from alignprune.config_check import ConfigError, check_config


configfile: "config.yaml"


# Every problem of the config, one line each, before any job is planned; fills in defaults.
try:
    check_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
except ConfigError as error:
    sys.exit(f"Error: {error}")


report: "workflow/report/workflow.rst"


# Cheap table and plot jobs run on the submitting node, not through a cluster queue.
localrules:
    all,
    aggregate,
    tables,
    findings,
    plots,
    sweep_table,
    sweep,
    alignment_tables,
    training_curves,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        all_table_files(),
        all_plot_files(),
        all_analysis_files(),
        all_curve_files(),
