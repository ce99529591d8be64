"""The project checkout the benchmarks run in: its root, and what they read from its config.

Standard library only at import (``startup``'s child process times its own imports).
"""

from __future__ import annotations

from pathlib import Path

# src/alignprune/bench/project.py -> the repository root (the package is installed editable)
ROOT = Path(__file__).resolve().parents[3]
STUDY_CONFIG = ROOT / "config.yaml"
DEMO_CONFIG = ROOT / "profiles/demo/testbed.yaml"
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def study_prunable(config_file: str | Path = STUDY_CONFIG) -> dict:
    """The study's prunable weights: the ``prunable`` section of config.yaml (``include`` and
    ``exclude`` regexes over parameter names), as ``modeling.prunable_names(model, **...)`` takes it."""
    import yaml

    return yaml.safe_load(Path(config_file).read_text())["prunable"]


def demo_config() -> dict:
    """The demo's config as its rules see it: config.yaml merged with profiles/demo/testbed.yaml,
    checked, with the schema's defaults."""
    from ..config_check import load_config

    return load_config(STUDY_CONFIG, DEMO_CONFIG, schema_file=SCHEMA, workdir=ROOT)
