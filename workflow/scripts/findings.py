"""Rule findings: the paper's three claims answered from the eval table (CSV and Markdown), and
the regularizers' hold on the kept weights from the weight-alignment files (when analysed)."""

from alignprune.findings import write_findings
from alignprune.rule_runtime import rule_job

with rule_job(snakemake):
    write_findings(
        snakemake.input.evals,
        snakemake.output,
        methods=snakemake.params.methods,
        train_language=snakemake.params.train_language,
        split=snakemake.params.split,
        languages=snakemake.params.languages,
        weight_files=list(snakemake.input.weights),
        ladder=snakemake.params.ladder,
    )
