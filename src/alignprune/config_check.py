"""Check the workflow's config before anything runs: one line per problem, naming the key,
the bad value and what is allowed.

The JSON schema (workflow/schemas/config.schema.yaml) states types, ranges and names;
jsonschema finds the violations and ``_describe`` turns each into a sentence. Checks the
schema cannot state (languages of a task, two-decimal targets, the model's maximum length,
data folders that exist) follow in ``semantic_problems``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from .tasks import TASKS

# Longest input of models whose config.json is not downloaded yet (XLM-R: 514 positions,
# two taken by the padding offset).
KNOWN_MAX_LENGTHS = {
    "FacebookAI/xlm-roberta-base": 512,
    "FacebookAI/xlm-roberta-large": 512,
    "xlm-roberta-base": 512,
    "xlm-roberta-large": 512,
}
TESTBED_MAX_LENGTH = 128


class ConfigError(ValueError):
    """The config cannot run; the message lists every problem, one per line."""


def check_config(config: dict, schema_file: str | Path, *, workdir: str | Path = ".") -> None:
    """Raise ConfigError listing every problem of ``config``; on success fill in the defaults."""
    schema = yaml.safe_load(Path(schema_file).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = [line for error in validator.iter_errors(config) for line in _describe(error)]
    if not problems:
        from snakemake.utils import validate  # fills in the schema's defaults

        validate(config, str(schema_file), set_default=True)
        problems = semantic_problems(config, Path(workdir))
    if problems:
        raise ConfigError(
            "invalid configuration (config.yaml merged with any --configfile and --config):\n"
            + "\n".join(f"  - {p}" for p in sorted(dict.fromkeys(problems)))
        )


def load_config(*files: str | Path, schema_file: str | Path, workdir: str | Path = ".") -> dict:
    """The config as the Snakefile sees it: YAML files merged key by key in order (as
    ``--configfile``), checked, defaults filled in."""
    from snakemake.utils import update_config

    config: dict = {}
    for path in files:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    check_config(config, schema_file, workdir=workdir)
    return config


def _key(path) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _show(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def _bounds(schema: dict) -> str:
    parts = []
    for word, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if word in schema:
            parts.append(f"{sign} {schema[word]:g}")
    return "must be " + " and ".join(parts)


def _describe(error: jsonschema.ValidationError) -> list[str]:
    key, value, schema, kind = _key(error.absolute_path), error.instance, error.schema, error.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        return [f"{_key([*error.absolute_path, name])}: unknown key; allowed keys here: {', '.join(allowed)}" for name in extra]
    if kind == "enum":
        return [f"{key} = {_show(value)}: not allowed; choose one of {', '.join(map(str, schema['enum']))}"]
    if kind == "type":
        return [f"{key} = {_show(value)}: must be of type {error.validator_value}"]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return [f"{key} = {_show(value)}: {_bounds(schema)}"]
    if kind == "uniqueItems":
        repeated = sorted({json.dumps(v) for v in value if value.count(v) > 1})
        return [f"{key} = {_show(value)}: {', '.join(repeated)} given more than once; list each once"]
    if kind == "minItems":
        return [f"{key} = {_show(value)}: needs at least {schema['minItems']} entries"]
    if kind == "minProperties":
        return [f"{key}: empty; name at least {schema['minProperties']} entry"]
    if kind == "required":
        missing = [name for name in schema["required"] if name not in value]
        return [f"{_key([*error.absolute_path, name])}: missing; this key is required" for name in missing]
    if kind == "pattern":  # also a method name: jsonschema reports propertyNames by their pattern
        return [f"{key} = {_show(value)}: must match {schema['pattern']}"]
    return [f"{key} = {_show(value)}: {error.message}"]


def semantic_problems(config: dict, workdir: Path) -> list[str]:
    """Problems the schema cannot state; ``config`` has its defaults filled in."""
    problems: list[str] = []
    testbed = config.get("testbed", {}).get("enabled", False)
    enabled_tasks = [task for task, spec in config["tasks"].items() if spec["enabled"]]
    if not enabled_tasks:
        problems.append("tasks: every task has enabled: false; enable at least one of " + ", ".join(config["tasks"]))
    for task in enabled_tasks:
        spec = config["tasks"][task]
        known = list(config["testbed"].get("languages", {})) if testbed else list(TASKS[task].languages)
        where = "the testbed's languages" if testbed else f"{task}'s languages"
        for i, lang in enumerate(spec["languages"]):
            if lang not in known:
                problems.append(f"tasks.{task}.languages[{i}] = {lang!r}: not one of {where}: {', '.join(known)}")
        if config["train_language"] not in spec["languages"]:
            problems.append(
                f"train_language = {config['train_language']!r}: missing from tasks.{task}.languages "
                f"{spec['languages']}; add it there (its train and validation splits are used)"
            )
        given = {kind: where for kind, where in spec["source"].items() if where is not None and kind != "revision"}
        if len(given) != 1:
            problems.append(
                f"tasks.{task}.source = {_show(spec['source'])}: give exactly one of hub (a Hub dataset id) or "
                "local (a folder); an overlay that switches to local also writes hub: null"
            )
        local = given.get("local")
        if local is not None and not testbed and not (workdir / local).is_dir():
            problems.append(
                f"tasks.{task}.source.local = {local!r}: no such folder (relative paths start at {workdir.resolve()}); "
                "point it at a folder in the Hub's layout {lang}/{split}-*.parquet, or use source: {hub: <dataset id>}"
            )
    problems += _seed_problems("seeds", config["seeds"])
    problems += _seed_problems("sweep.seeds", config["sweep"]["seeds"])
    problems += _seed_problems("analysis.seeds", config["analysis"]["seeds"])
    problems += _sparsity_problems("sparsities", config["sparsities"])
    problems += _sparsity_problems("sweep.sparsities", config["sweep"]["sparsities"])
    if config["analysis"]["enabled"] and not set(config["analysis"]["seeds"]) <= set(config["seeds"]):
        problems.append(
            f"analysis.seeds = {config['analysis']['seeds']}: must be among seeds {config['seeds']} "
            "(only models that the study trains can be analysed)"
        )
    if not any(spec["enabled"] for spec in config["methods"].values()):
        problems.append("methods: every method has enabled: false; enable at least one")
    for name, spec in config["methods"].items():
        if spec["regularizer"] != "none" and spec["weight"] == 0 and spec["enabled"]:
            problems.append(
                f"methods.{name}.weight = 0: a {spec['regularizer']} regularizer with weight 0 does nothing; "
                "give a weight > 0 or set regularizer: none"
            )
    if config["table_split"] not in config["eval_splits"]:
        problems.append(
            f"table_split = {config['table_split']!r}: must be one of eval_splits {config['eval_splits']}"
        )
    for side in ("include", "exclude"):
        for i, pattern in enumerate(config["prunable"].get(side, [])):
            try:
                re.compile(pattern)
            except re.error as err:
                problems.append(f"prunable.{side}[{i}] = {pattern!r}: not a regular expression ({err})")
    limit = model_max_length(config, workdir)
    if limit is not None and config["max_length"] > limit:
        problems.append(
            f"max_length = {config['max_length']}: longer than the model {config['model']!r} reads; at most {limit}"
        )
    return problems


def _seed_problems(key: str, seeds: list) -> list[str]:
    # JSON Schema counts 1.0 as an integer; a seed must be written as one (it names folders).
    return [f"{key}[{i}] = {s!r}: must be a whole number such as 1" for i, s in enumerate(seeds) if not isinstance(s, int)]


def _sparsity_problems(key: str, targets: list) -> list[str]:
    """Targets name folders with two decimals: each must have at most two, and be distinct there."""
    problems, seen = [], {}
    for i, target in enumerate(targets):
        text = f"{target:.2f}"
        if abs(float(text) - target) > 1e-9:
            problems.append(f"{key}[{i}] = {target}: at most two decimals (folders are named sparsity~{text})")
        elif text in seen:
            problems.append(f"{key}[{i}] = {target}: the same target as {key}[{seen[text]}]; list each target once")
        seen.setdefault(text, i)
    return problems


def model_folder(model_id: str) -> str:
    """A Hub id like "org/name" as one folder name, "org--name" (as in the Hub cache)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "--", model_id)


def model_max_length(config: dict, workdir: Path) -> int | None:
    """Longest input the model reads: from its downloaded config.json, else a known value, else None."""
    if config.get("testbed", {}).get("enabled"):
        return TESTBED_MAX_LENGTH
    saved = workdir / config["paths"]["resources"] / "models" / model_folder(config["model"]) / "config.json"
    if saved.is_file():
        return max_length_of(json.loads(saved.read_text()))
    return KNOWN_MAX_LENGTHS.get(config["model"])


def max_length_of(model_config: dict) -> int | None:
    """Positions minus RoBERTa's padding offset (positions start after the pad id)."""
    positions = model_config.get("max_position_embeddings")
    if positions is None:
        return None
    if model_config.get("model_type") in ("roberta", "xlm-roberta"):
        positions -= model_config.get("pad_token_id", 1) + 1
    return positions
