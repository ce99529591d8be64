# Prune-and-retrain study of XLM-RoBERTa with aligned weight regularizers.
# Full study: snakemake --cores 8   Demo (offline, CPU): snakemake --profile profiles/demo
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")

# Rule scripts import the package from src/ whether or not it is pip-installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [f"{workflow.basedir}/src", os.environ.get("PYTHONPATH", "")]
).rstrip(os.pathsep)


report: "workflow/report/workflow.rst"


# Cheap table and plot jobs run on the submitting node, not through a cluster queue.
localrules:
    all,
    aggregate,
    tables,
    plots,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_table_files(),
        all_plot_files(),
    default_target: True
