# Prune-and-retrain study of XLM-RoBERTa with aligned weight regularizers.
# Full study: snakemake --cores 8   Demo (offline, CPU): snakemake --profile profiles/demo
import os
import sys

from snakemake.utils import min_version

min_version("9.0")
# the alignprune package as installed (make install: editable, from src/)
try:
    from alignprune.config_check import SCHEMA_FILE, ConfigError, check_config
except ModuleNotFoundError as error:
    sys.exit(f"Error: {error}: install the project (make install) and run .venv/bin/snakemake")

# The checkout that envs/pipeline.yaml installs the package from (--sdm conda; pip expands
# ${ALIGNPRUNE_ROOT}). Set here, for conda's pip, not read: no envvars directive.
os.environ.update(ALIGNPRUNE_ROOT=workflow.basedir)


configfile: "config.yaml"


# Every problem of the config, one line each, before any job is planned; fills in defaults.
try:
    check_config(config, f"{workflow.basedir}/{SCHEMA_FILE}")
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
    sweep_choice,
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
        # the sweep's table, where a method's weight comes from the sweep
        sweep_report_files(),
