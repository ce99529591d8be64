"""Check the workflow's config before anything runs: one line per problem, naming the key,
the bad value and what is allowed.

The JSON schema (workflow/schemas/config.schema.yaml) states types, ranges, names, the formats
of values and the rules within one entry (a regularizer needs a weight, a source is hub or
local), and every default; jsonschema finds the violations and ``_describe`` turns each into a
sentence (a schema's ``errorMessage`` says what to do where jsonschema's own words would not).
Checks the schema cannot state (across keys: a task's languages, targets distinct at two
decimals, the model's maximum length; data folders that exist) follow in ``semantic_problems``.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import yaml
from jsonschema import validators

from .model_key import DENSE, target_part
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


SCHEMA_FILE = "workflow/schemas/config.schema.yaml"
# the lists in the code that a new pruning criterion or regularizer joins beside the schema's enum
# (docs/architecture.md, where a change goes)
EXTENSION_POINTS = {
    "criterion": "criteria.CRITERIA",
    "regularizer": "regularizers.REGULARIZERS, with its gradient in AlignmentPenalty",
}


class ConfigError(ValueError):
    """The config cannot run; the message lists every problem, one per line."""


def check_config(config: dict, schema_file: str | Path, *, workdir: str | Path = ".") -> None:
    """Raise ConfigError listing every problem of ``config``; on success fill in the defaults."""
    schema = yaml.safe_load(Path(schema_file).read_text())
    filled = with_defaults(config, schema)
    problems = schema_problems(filled, schema)
    if not problems:
        problems = semantic_problems(filled, Path(workdir))
    if problems:
        raise ConfigError(
            "invalid configuration (config.yaml merged with any --configfile and --config):\n"
            + "\n".join(f"  - {p}" for p in sorted(dict.fromkeys(problems)))
        )
    config.update(filled)


def config_section(schema_file: str | Path, path: str, values: dict) -> dict:
    """``values`` of one section of the config, checked against its part of the schema and
    completed with its defaults, as the workflow's rules pass it on: ``path`` names the part,
    e.g. ``"retrain"``, ``"gradual"`` or ``"methods.*"`` (an entry of methods)."""
    schema = yaml.safe_load(Path(schema_file).read_text())
    part = schema
    for key in path.split("."):
        part = part["additionalProperties"] if key == "*" else part["properties"][key]
    filled = with_defaults(values, schema, part)
    problems = schema_problems(filled, schema, part)
    if problems:
        raise ConfigError(f"invalid {path} section:\n" + "\n".join(f"  - {p}" for p in problems))
    return filled


def with_defaults(instance, schema: dict, part: dict | None = None):
    """A copy of ``instance`` with the default of every key the schema (or its ``part``) gives
    one and the instance lacks, at every level (as snakemake.utils.validate(set_default=True)),
    and every whole number where the schema asks for a number made a float: Snakemake compares
    a rule's params by their text, where ``2`` and ``2.0`` differ, so an edit from one to the
    other would rerun every job that reads it."""
    filled = copy.deepcopy(instance)
    for _ in _validator(_DefaultFilling, schema, part).iter_errors(filled):
        pass  # the problems are described after filling, by schema_problems
    return filled


def _fill_properties(validator, properties, instance, schema):
    if validator.is_type(instance, "object"):
        for name, subschema in properties.items():
            if "default" in subschema and name not in instance:
                instance[name] = copy.deepcopy(subschema["default"])
            value = instance.get(name)
            if _takes_number(subschema) and isinstance(value, int) and not isinstance(value, bool):
                instance[name] = float(value)
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


def _takes_number(subschema: dict) -> bool:
    """A property whose schema is a number, or one of whose alternatives is (a method's weight:
    a number or "sweep")."""
    options = [subschema, *subschema.get("oneOf", []), *subschema.get("anyOf", [])]
    return any(option.get("type") == "number" for option in options)


_DefaultFilling = validators.extend(jsonschema.Draft202012Validator, {"properties": _fill_properties})


def schema_problems(instance, schema: dict, part: dict | None = None) -> list[str]:
    """One sentence per violation of the schema (or its ``part``), formats included."""
    validator = _validator(jsonschema.Draft202012Validator, schema, part,
                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [line for error in validator.iter_errors(instance) for line in _describe(error, instance)]


def _validator(cls, schema: dict, part: dict | None, **kwargs):
    """A validator of ``schema`` or of its ``part`` ($refs in the part resolve in the whole schema)."""
    validator = cls(schema, **kwargs)
    return validator if part is None else validator.evolve(schema=part)


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


def _describe(error: jsonschema.ValidationError, root) -> list[str]:
    """One sentence per violation; ``root``: the whole config (a misspelt method's message lists
    the others)."""
    key, value, schema, kind = _key(error.absolute_path), error.instance, error.schema, error.validator
    if "errorMessage" in schema and kind not in ("additionalProperties", "required"):
        return [f"{key} = {_show(value)}: {schema['errorMessage']}"]
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        return [f"{_key([*error.absolute_path, name])}: unknown key; allowed keys here: {', '.join(allowed)}" for name in extra]
    if kind == "enum":
        where = EXTENSION_POINTS.get(str(error.absolute_path[-1]) if error.absolute_path else "")
        hint = f" (a new one goes into this list in {SCHEMA_FILE} and into {where})" if where else ""
        return [f"{key} = {_show(value)}: not allowed; choose one of {', '.join(map(str, schema['enum']))}{hint}"]
    if kind == "type":
        hint = ""
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value):
            # YAML 1.1 (PyYAML's) reads a number in exponent form without a dot as text
            hint = f"; YAML reads {value} as text: write it with a dot, e.g. {float(value):.1e}"
        elif isinstance(value, str):  # --config key=value hands over text for true or a list's numbers
            hint = ("; on the command line --config reads true and list items as text: write True, "
                    "or put the value in a YAML --configfile")
        return [f"{key} = {_show(value)}: must be of type {error.validator_value}{hint}"]
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
        path = list(error.absolute_path)
        if len(path) == 2 and path[0] == "methods" and missing == ["criterion"] and isinstance(root, dict):
            # an overlay's entry for a method no config defines: most often a misspelt name
            others = sorted(m for m, spec in (root.get("methods") or {}).items()
                            if m != path[1] and isinstance(spec, dict) and "criterion" in spec)
            return [f"methods.{path[1]}: not a method of the config ({', '.join(others)}); a new method needs "
                    "a criterion, a change to an existing one its name as written there"]
        return [f"{_key([*error.absolute_path, name])}: missing; this key is required" for name in missing]
    if kind == "pattern":  # also a method name: jsonschema reports propertyNames by their pattern
        return [f"{key} = {_show(value)}: must match {schema['pattern']}"]
    if kind == "format":
        what = {"regex": "a regular expression"}.get(error.validator_value, f"of the format {error.validator_value}")
        return [f"{key} = {_show(value)}: not {what}" + (f" ({error.cause})" if error.cause else "")]
    return [f"{key} = {_show(value)}: {error.message}"]


def semantic_problems(config: dict, workdir: Path) -> list[str]:
    """Problems the schema cannot state; ``config`` has its defaults filled in."""
    problems: list[str] = []
    testbed = config["testbed"]["enabled"]
    enabled_tasks = [task for task, spec in config["tasks"].items() if spec["enabled"]]
    if not enabled_tasks:
        problems.append("tasks: every task has enabled: false; enable at least one of " + ", ".join(config["tasks"]))
    def known_languages(task: str) -> list[str]:
        return list(config["testbed"].get("languages", {})) if testbed else list(TASKS[task].languages)

    # a training language no enabled data set has: "add it to the task's list" would fail next
    lacking = [task for task in enabled_tasks if config["train_language"] not in known_languages(task)]
    if lacking:
        problems.append(
            f"train_language = {config['train_language']!r}: not a language of "
            + "; ".join(dict.fromkeys(  # the testbed's languages once, whatever the tasks
                f"{'the testbed' if testbed else task} ({', '.join(known_languages(task))})" for task in lacking))
            + "; choose one every enabled task has (lower case, as the data sets name them)"
        )
    for task in enabled_tasks:
        spec = config["tasks"][task]
        known = known_languages(task)
        where = "the testbed's languages" if testbed else f"{task}'s languages"
        for i, lang in enumerate(spec["languages"]):
            if lang not in known:
                problems.append(f"tasks.{task}.languages[{i}] = {lang!r}: not one of {where}: {', '.join(known)}")
        if task not in lacking and config["train_language"] not in spec["languages"]:
            problems.append(
                f"train_language = {config['train_language']!r}: missing from tasks.{task}.languages "
                f"{spec['languages']}; add it there (its train and validation splits are used)"
            )
        elif len(set(spec["languages"])) < 2:
            problems.append(
                f"tasks.{task}.languages = {spec['languages']}: no language besides the training language "
                "to evaluate zero-shot; add at least one (or disable the task)"
            )
        local = spec["source"].get("local")  # the schema's oneOf: hub or local, the other absent or null
        if local is not None and not testbed and not (workdir / local).is_dir():
            problems.append(
                f"tasks.{task}.source.local = {local!r}: no such folder (relative paths start at {workdir.resolve()}); "
                "point it at a folder in the Hub's layout {lang}/{split}-*.parquet, or use source: {hub: <dataset id>}"
            )
    model = config["model"]
    # A Hub id is "name" or "org/name"; anything else is a folder, and one that is missing would be
    # sent to the Hub as an id (an unclear error, after the job started)
    path_like = model.startswith(("/", ".", "~")) or model.count("/") > 1
    if not testbed and path_like and not (workdir / model).is_dir():
        problems.append(
            f"model = {model!r}: no such folder (relative paths start at {workdir.resolve()}); point it at a "
            "folder written by save_pretrained, or give a Hub id such as FacebookAI/xlm-roberta-base"
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
    problems += _method_problems(config["methods"], config["retrain"]["steps"], config["sweep"]["weights"])
    if config["schedule"] == "independent":
        steps, pruning_steps = config["retrain"]["steps"], config["gradual"]["pruning_steps"]
        if steps < pruning_steps:
            problems.append(
                f"retrain.steps = {steps}: the independent schedule prunes gradually within the retraining, "
                f"in gradual.pruning_steps = {pruning_steps} steps; give retrain.steps >= {pruning_steps} "
                "(or lower gradual.pruning_steps, or use schedule: ladder)"
            )
    if config["table_split"] not in config["eval_splits"]:
        problems.append(
            f"table_split = {config['table_split']!r}: must be one of eval_splits {config['eval_splits']}"
        )
    limit = model_max_length(config, workdir)
    if limit is not None and config["max_length"] > limit:
        problems.append(
            f"max_length = {config['max_length']}: longer than the model {config['model']!r} reads; at most {limit}"
        )
    return problems


def _method_problems(methods: dict, retrain_steps: int, grids: dict) -> list[str]:
    """Weights nothing can use. A regularizer weight on a method without a regularizer: weight:
    sweep would make the study wait for the sweep's retraining, then find no choice. And weight:
    sweep without retraining: a regularizer acts only through retraining, so every weight of the
    sweep's grid would give the same model. A regularized method whose regularizer has no sweep
    grid (``grids``, sweep.weights with the schema's defaults: one per regularizer the schema
    knows), which the sweep could not plan. Lookahead ranked globally. And a method named as the
    fine-tuned model's folder."""
    problems = []
    if DENSE in methods:
        problems.append(f"methods.{DENSE}: '{DENSE}' names the fine-tuned model (its folder and table rows); "
                        "rename the method")
    for name, spec in methods.items():
        if not spec["enabled"]:
            continue
        if spec["regularizer"] == "none" and spec["weight"] != 0:
            why = "the sweep chooses a regularizer's weight, and" if spec["weight"] == "sweep" else "unused,"
            problems.append(f"methods.{name}.weight = {spec['weight']}: {why} {name} has regularizer: none; "
                            f"give it a regularizer ({', '.join(grids)}) or a weight of 0")
        if spec["regularizer"] != "none" and spec["regularizer"] not in grids:
            problems.append(f"methods.{name}.regularizer = {spec['regularizer']}: sweep.weights has no grid for it "
                            f"(it has {', '.join(grids)}); add sweep.weights.{spec['regularizer']} to the config and "
                            "to the schema's sweep.weights properties")
        if spec["criterion"] == "lookahead" and spec["scope"] == "global":
            # its neighbour factors are sums of squared norms, or 1 where a matrix has no neighbour
            # (query and key; the first layer's inputs): ranked across matrices they are not comparable
            problems.append(f"methods.{name}: lookahead with scope: global ranks matrices whose neighbour "
                            "factors differ in scale (a missing neighbour counts as 1); give it scope: layer")
        if spec["weight"] == "sweep" and retrain_steps == 0:
            problems.append(
                f"methods.{name}.weight = sweep: retrain.steps = 0, and a regularizer acts only through "
                "retraining, so every weight of the sweep's grid gives the same model; give retrain.steps > 0 "
                "or the method a fixed weight")
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
            problems.append(f"{key}[{i}] = {target}: at most two decimals (folders are named {target_part(text)})")
        elif text in seen:
            problems.append(f"{key}[{i}] = {target}: the same target as {key}[{seen[text]}]; list each target once")
        seen.setdefault(text, i)
    return problems


def data_path(resources: str | Path, task: str, lang: str, split: str) -> str:
    """The normalised rows (text_a, text_b, label) of one task, language and split, as the
    download (or testbed) stage writes them."""
    return f"{resources}/data/{task}/{lang}/{split}.parquet"


def pretrained_dir(resources: str | Path, model_id: str) -> str:
    """The folder the download (or testbed) stage writes the pretrained model and tokenizer to:
    the Hub id "org/name" as one folder name, "org--name" (as in the Hub cache)."""
    return f"{resources}/models/{re.sub(r'[^A-Za-z0-9_.-]+', '--', model_id)}"


def model_max_length(config: dict, workdir: Path) -> int | None:
    """Longest input the model reads: from its downloaded config.json, else a known value, else None."""
    if config["testbed"]["enabled"]:
        return TESTBED_MAX_LENGTH
    saved = workdir / pretrained_dir(config["paths"]["resources"], config["model"]) / "config.json"
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
