"""Prune-and-retrain study of XLM-RoBERTa with aligned weight regularizers.

All logic of the workflow lives here as plain functions; the Snakemake rule
scripts in workflow/scripts only read their inputs and call this package.
"""

__version__ = "0.1.0"
