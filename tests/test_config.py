"""The config check: the shipped configs are valid; each kind of bad config is refused before
any job runs, with one line that names the key, the bad value and what is allowed."""

import subprocess
import sys

import pytest
import yaml
from conftest import tiny_classifier
from workflow_helpers import ROOT, config_section, load_config

from alignprune import modeling
from alignprune.config_check import ConfigError, check_config
from alignprune.criteria import CRITERIA, NO_PRUNING
from alignprune.operational import method_settings
from alignprune.regularizers import REGULARIZERS

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def overlay(tmp_path, data):
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_full_and_demo_configs_are_valid_and_get_defaults():
    full = load_config("config.yaml")
    assert full["schedule"] == "ladder" and full["gpus_per_job"] == 1
    assert full["methods"]["magnitude_global"]["regularizer"] == "none"
    assert full["methods"]["magnitude_global"]["reference"] == "dense"
    assert full["gradual"] == {"pruning_steps": 10, "pruning_fraction": 0.7}
    demo = load_config("config.yaml", "profiles/demo/testbed.yaml")
    assert demo["testbed"]["enabled"] and not demo["tasks"]["pawsx"]["enabled"]
    assert full["sweep"]["seeds"] == [1] and set(full["sweep"]["weights"]) == set(REGULARIZERS) - {"none"}
    # the demo switches methods off without repeating them, and keeps the full study's definitions
    assert [m for m, spec in demo["methods"].items() if spec["enabled"]] == [
        "retrain_only", "magnitude_global", "magnitude_global_cosine", "magnitude_global_frobenius",
    ]
    assert demo["methods"]["random"]["criterion"] == "random"  # off in the demo, defined as in the study
    assert demo["methods"]["magnitude_global_cosine"]["criterion"] == "magnitude"



def test_demo_paws_profile_runs_the_demo_s_study_on_the_paws_task_with_the_larger_testbed_and_its_own_sweep():
    profile = yaml.safe_load((ROOT / "profiles/demo-paws/config.yaml").read_text())
    paws = load_config(*profile["configfile"])
    demo = load_config("config.yaml", "profiles/demo/testbed.yaml")
    assert [task for task, spec in paws["tasks"].items() if spec["enabled"]] == ["pawsx"]
    assert paws["tasks"]["pawsx"] == demo["tasks"]["pawsx"] | {"enabled": True}
    assert paws["tasks"]["xnli"] == demo["tasks"]["xnli"] | {"enabled": False}
    assert (paws["testbed"]["hidden_size"], paws["testbed"]["pretrain_steps"]) == (256, 3000)
    assert {k: v for k, v in paws["testbed"].items() if k not in ("hidden_size", "pretrain_steps")} == {
        k: v for k, v in demo["testbed"].items() if k not in ("hidden_size", "pretrain_steps")}
    # beside the demo's outputs, never over them
    assert not set(paws["paths"].values()) & set(demo["paths"].values())
    # the rest is the demo's study: methods, seeds, targets, fine-tuning, retraining, the sweep's
    # grid; but the two regularized methods take this testbed's own sweep's weights
    rest = set(demo) - {"paths", "tasks", "testbed", "methods"}
    assert {k: paws[k] for k in rest} == {k: demo[k] for k in rest}
    swept = {"magnitude_global_cosine", "magnitude_global_frobenius"}
    assert {m: spec for m, spec in paws["methods"].items() if m not in swept} == {
        m: spec for m, spec in demo["methods"].items() if m not in swept}
    for method in swept:
        assert paws["methods"][method] == demo["methods"][method] | {"weight": "sweep"}
        # the demo's weight (its sweep's choice) lies inside the grid, not at an edge
        grid = sorted(paws["sweep"]["weights"][paws["methods"][method]["regularizer"]])
        assert grid[0] < demo["methods"][method]["weight"] < grid[-1]


M = {"criterion": "magnitude"}
# (test id, overlay merged over config.yaml, words the message must hold: key, bad value, what is allowed)
BAD_CONFIGS = [
    ("unknown_task", {"tasks": {"mnli": {"source": {"hub": "x"}, "languages": ["en"]}}},
     ["tasks.mnli", "unknown key", "pawsx, xnli"]),
    ("unknown_language", {"tasks": {"pawsx": {"languages": ["en", "de", "xx"]}}},
     ["tasks.pawsx.languages[2] = 'xx'", "en, de, es, fr, ja, ko, zh"]),
    ("train_language_missing", {"train_language": "fr", "tasks": {"pawsx": {"languages": ["en", "de"]}}},
     ["train_language = 'fr'", "missing from tasks.pawsx.languages"]),
    # a language the data set does not have: adding it to the task's list would fail next
    ("train_language_unknown", {"train_language": "pt"},
     ["train_language = 'pt'", "not a language of xnli (en, fr, es", "; pawsx (en, de, es, fr, ja, ko, zh)",
      "choose one every enabled task has"]),
    ("no_zero_shot_language", {"tasks": {"pawsx": {"languages": ["en"]}}},
     ["tasks.pawsx.languages = ['en']", "no language besides the training language", "add at least one"]),
    ("max_examples_too_few_for_cka", {"analysis": {"max_examples": 3}},
     ["analysis.max_examples = 3", "must be >= 4"]),
    ("sparsity_below_zero", {"sparsities": [-0.1, 0.5]}, ["sparsities[0] = -0.1", "must be > 0 and < 1"]),
    ("sparsity_zero", {"sparsities": [0.0]}, ["sparsities[0] = 0.0", "must be > 0 and < 1"]),
    ("sparsity_one", {"sparsities": [0.5, 1.0]}, ["sparsities[1] = 1.0", "must be > 0 and < 1"]),
    ("sparsity_not_a_number", {"sparsities": [0.5, "half"]}, ["sparsities[1] = 'half'", "must be of type number"]),
    ("sparsity_duplicated", {"sparsities": [0.5, 0.7, 0.5]}, ["sparsities = [0.5, 0.7, 0.5]", "0.5 given more than once"]),
    ("sparsity_three_decimals", {"sparsities": [0.5, 0.555]}, ["sparsities[1] = 0.555", "at most two decimals"]),
    ("unknown_method_key", {"methods": {"m": {**M, "lambda": 0.1}}}, ["methods.m.lambda", "unknown key", "regularizer"]),
    ("bad_method_name", {"methods": {"m-1": M}}, ["methods = 'm-1'", "must match ^[A-Za-z0-9_]+$"]),
    ("method_named_dense", {"methods": {"dense": M}},
     ["methods.dense", "names the fine-tuned model", "rename"]),
    ("unknown_criterion", {"methods": {"m": {"criterion": "magnitdue"}}},
     ["methods.m.criterion = 'magnitdue'", "random, magnitude, gradient, movement, lamp, lookahead",
      "a new one goes into this list in workflow/schemas/config.schema.yaml and into criteria.CRITERIA"]),
    ("unknown_regularizer", {"methods": {"m": {**M, "regularizer": "cosin", "weight": 1}}},
     ["methods.m.regularizer = 'cosin'", "none, l2, cosine, frobenius"]),
    ("negative_regularizer_weight", {"methods": {"m": {**M, "regularizer": "cosine", "weight": -1}}},
     ["methods.m.weight = -1", "give a number >= 0, or sweep"]),
    ("misspelt_sweep_weight", {"methods": {"m": {**M, "regularizer": "cosine", "weight": "swept"}}},
     ["methods.m.weight = 'swept'", "give a number >= 0, or sweep"]),
    ("regularizer_without_weight", {"methods": {"m": {**M, "regularizer": "frobenius"}}},
     ["methods.m.weight = 0", "the default where none is given",
      "weight > 0 or weight: sweep, or set regularizer: none"]),
    ("control_with_regularizer", {"methods": {"m": {"criterion": "none", "regularizer": "l2", "weight": 1}}},
     ["methods.m.regularizer = 'l2'", "control (criterion none) takes no regularizer"]),
    ("bad_scope", {"methods": {"m": {**M, "scope": "row"}}}, ["methods.m.scope = 'row'", "layer, global"]),
    ("misspelt_method_name", {"methods": {"magnitude_globl": {"enabled": False}}},
     ["methods.magnitude_globl: not a method of the config", "magnitude_global, magnitude_global_cosine",
      "a new method needs a criterion"]),
    ("sweep_without_regularizer", {"methods": {"m": {**M, "weight": "sweep"}}},
     ["methods.m.weight = sweep", "regularizer: none", "give it a regularizer (l2, cosine, frobenius) or a weight of 0"]),
    ("weight_without_regularizer", {"methods": {"m": {**M, "weight": 0.5}}},
     ["methods.m.weight = 0.5: unused", "regularizer: none"]),
    ("independent_schedule_too_few_steps", {"schedule": "independent", "retrain": {"steps": 5}},
     ["retrain.steps = 5", "gradual.pruning_steps = 10", "retrain.steps >= 10"]),
    ("unknown_schedule", {"schedule": "gradual"}, ["schedule = 'gradual'", "ladder, independent"]),
    ("seed_not_integer", {"seeds": [1, 2.5]}, ["seeds[1] = 2.5", "must be of type integer"]),
    ("seed_as_text", {"seeds": ["1", 2]}, ["seeds[0] = '1': must be of type integer", "--config reads"]),
    ("learning_rate_without_a_dot", {"retrain": {"learning_rate": "2e-5"}},
     ["retrain.learning_rate = '2e-5': must be of type number", "YAML reads 2e-5 as text: write it with a dot, e.g. 2.0e-05"]),
    ("seed_written_as_float", {"seeds": [1.0, 2]}, ["seeds[0] = 1.0", "whole number"]),
    ("seed_duplicated", {"seeds": [1, 2, 1]}, ["seeds = [1, 2, 1]", "1 given more than once"]),
    ("learning_rate_zero", {"retrain": {"learning_rate": 0}}, ["retrain.learning_rate = 0", "must be > 0"]),
    ("learning_rate_negative", {"finetune": {"learning_rate": -1e-5}}, ["finetune.learning_rate = -1e-05", "must be > 0"]),
    ("batch_size_zero", {"finetune": {"batch_size": 0}}, ["finetune.batch_size = 0", "must be >= 1"]),
    ("max_length_beyond_model", {"max_length": 1024}, ["max_length = 1024", "at most 512"]),
    ("every_method_disabled", {"methods": {m: {"enabled": False} for m in load_config("config.yaml")["methods"]}},
     ["methods: every method has enabled: false"]),
    ("local_folder_missing", {"tasks": {"xnli": {"source": {"hub": None, "local": "no/such/folder"}}}},
     ["tasks.xnli.source.local = 'no/such/folder'", "no such folder", "{lang}/{split}-*.parquet"]),
    ("gpus_per_job_above_one", {"gpus_per_job": 2}, ["gpus_per_job = 2", "must be >= 0 and <= 1"]),
    ("model_folder_missing", {"model": "/data/models/xlmr"},
     ["model = '/data/models/xlmr': no such folder", "save_pretrained", "Hub id"]),
    ("both_hub_and_local", {"tasks": {"xnli": {"source": {"local": "."}}}},
     ["tasks.xnli.source", "exactly one of hub", "hub: null"]),
    ("neither_hub_nor_local", {"tasks": {"xnli": {"source": {"hub": None}}}}, ["tasks.xnli.source", "exactly one of hub"]),
    ("bad_regular_expression", {"prunable": {"include": ["layer\\.(\\d+"]}},
     ["prunable.include[0]", "not a regular expression"]),
    ("analysis_seed_not_trained", {"analysis": {"seeds": [7]}}, ["analysis.seeds = [7]", "among seeds [1, 2, 3]"]),
    ("table_split_not_evaluated", {"eval_splits": ["validation"]}, ["table_split = 'test'", "eval_splits"]),
    ("misspelt_section", {"analysis": {"enable": False}}, ["analysis.enable", "unknown key", "enabled"]),
    ("sweep_weight_zero", {"sweep": {"weights": {"l2": [0.0, 1.0]}}}, ["sweep.weights.l2[0] = 0.0", "must be > 0"]),
    # a task's own fine-tuning takes result settings only: checkpoints and logs stay in finetune
    ("task_finetune_operational_key", {"tasks": {"pawsx": {"finetune": {"checkpoint_every": 5}}}},
     ["tasks.pawsx.finetune.checkpoint_every", "unknown key"]),
]


@pytest.mark.parametrize("bad, words", [case[1:] for case in BAD_CONFIGS], ids=[case[0] for case in BAD_CONFIGS])
def test_bad_config_is_refused_before_any_job_with_one_clear_line(tmp_path, bad, words):
    paths = {"resources": f"{tmp_path}/resources", "results": f"{tmp_path}/results", "logs": f"{tmp_path}/logs",
             "benchmarks": f"{tmp_path}/benchmarks"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config.yaml",
         str(overlay(tmp_path, {"paths": paths, **bad}))],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and 'File "' not in output, output
    problems = [line for line in output.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1, output
    for word in words:
        assert word in problems[0], problems[0]
    assert not any(tmp_path.glob("*/")), "nothing may be written before the config is accepted"


def test_defaults_are_filled_in_as_snakemake_fills_them():
    from snakemake.utils import update_config, validate

    for files in (["config.yaml"], ["config.yaml", "profiles/demo/testbed.yaml"]):
        raw = {}
        for path in files:
            update_config(raw, yaml.safe_load((ROOT / path).read_text()))
        validate(raw, str(SCHEMA), set_default=True)
        assert load_config(*files) == raw


def test_a_section_gets_the_defaults_the_whole_config_gives_it():
    full = load_config("config.yaml")
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section in ("finetune", "retrain", "gradual"):
        assert config_section(section, raw.get(section, {})) == full[section], section
    assert config_section("methods.*", raw["methods"]["magnitude_global_l2"]) == full["methods"]["magnitude_global_l2"]
    with pytest.raises(ConfigError, match=r"regularizer with weight 0 \(the default where none is given\) does nothing; "
                                          r"give a weight > 0 or weight: sweep"):
        config_section("methods.*", {"criterion": "magnitude", "regularizer": "l2"})


def test_the_schemas_default_sweep_grids_are_config_yamls():
    """A config that leaves out the sweep's grids gets the study's own (per-parameter weights),
    not grids of another unit."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert config_section("sweep", {})["weights"] == raw["sweep"]["weights"]


def test_a_sweep_without_retraining_is_refused():
    """Regularizers act only through retraining: with retrain.steps 0 every weight of a grid
    gives the same model, so weight: sweep has nothing to choose from."""
    config = load_config("config.yaml")
    config["retrain"]["steps"] = 0
    with pytest.raises(ConfigError) as err:
        check_config(config, SCHEMA)
    problems = [line for line in str(err.value).splitlines() if line.startswith("  - ")]
    assert len(problems) == 3  # the three regularized methods of config.yaml
    for name in ("l2", "cosine", "frobenius"):
        assert any(f"methods.magnitude_global_{name}.weight = sweep: retrain.steps = 0" in p for p in problems)
    for name in ("l2", "cosine", "frobenius"):  # with a fixed weight: accepted (it does nothing, as asked)
        config["methods"][f"magnitude_global_{name}"]["weight"] = 0.1
    check_config(config, SCHEMA)


def test_lookahead_ranked_across_matrices_is_refused():
    """Lookahead's scores carry neighbour factors (1 where a matrix has none): comparable within a
    matrix, not across matrices, so scope: global is refused and scope: layer accepted."""
    config = load_config("config.yaml")
    config["methods"]["lookahead"]["scope"] = "global"
    with pytest.raises(ConfigError, match="methods.lookahead: lookahead with scope: global"):
        check_config(config, SCHEMA)
    config["methods"]["lookahead"]["scope"] = "layer"
    check_config(config, SCHEMA)


def test_a_disabled_method_may_keep_a_regularizer_without_weight():
    config = load_config("config.yaml")
    config["methods"]["m"] = {"criterion": "magnitude", "regularizer": "l2", "enabled": False}
    check_config(config, SCHEMA)


def test_an_empty_method_list_is_refused():
    # an overlay merges into config.yaml's methods, so an empty list only comes from editing config.yaml
    config = load_config("config.yaml")
    config["methods"] = {}
    with pytest.raises(ConfigError, match="methods: empty; name at least 1 entry"):
        check_config(config, SCHEMA)


def test_a_misspelt_method_beside_an_empty_entry_is_listed_not_a_crash():
    from snakemake.utils import update_config

    config = load_config("config.yaml")
    update_config(config, {"methods": {"magnitude_globl": {"enabled": True}, "random": None}})
    with pytest.raises(ConfigError) as err:
        check_config(config, SCHEMA)
    assert "methods.magnitude_globl: not a method of the config (gradient, lamp" in str(err.value)


def test_every_problem_is_listed_at_once():
    config = load_config("config.yaml")
    config.update(sparsities=[0.5, 0.555], seeds=[1.0], max_length=2048)
    with pytest.raises(ConfigError) as err:
        check_config(config, SCHEMA)
    assert len([line for line in str(err.value).splitlines() if line.startswith("  - ")]) == 3


def test_prunable_patterns_that_match_nothing_are_refused_when_the_model_is_loaded():
    model = tiny_classifier()
    with pytest.raises(ValueError) as err:
        modeling.prunable_names(model, [r"^encoder\.layers\.\d+\.weight$"], [])
    message = str(err.value)
    assert "matches no parameter" in message and "fix the regular expressions" in message
    # every kind of parameter is named once, layer numbers folded
    assert "roberta.encoder.layer.N.attention.self.query.weight" in message
    assert message.count("attention.self.query.weight") == 1


def test_max_length_beyond_the_loaded_model_is_refused():
    model = tiny_classifier()
    limit = model.config.max_position_embeddings - 2
    modeling.check_max_length(model, limit)
    with pytest.raises(ValueError, match=f"max_length = {limit + 1}: .* at most {limit}"):
        modeling.check_max_length(model, limit + 1)


def test_whole_numbers_where_the_schema_asks_for_a_number_are_made_floats():
    """Params are compared by their text: 2 and 2.0 would rerun every job that reads them. Integers
    stay integers; a weight may be a number or "sweep"."""
    from alignprune.config_check import with_defaults

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    filled = with_defaults({"finetune": {"epochs": 2, "batch_size": 32, "learning_rate": 1},
                            "methods": {"a": {"criterion": "magnitude", "regularizer": "l2", "weight": 1},
                                        "b": {"criterion": "magnitude", "regularizer": "l2", "weight": "sweep"}}},
                           schema)
    epochs, batch, rate = (filled["finetune"][k] for k in ("epochs", "batch_size", "learning_rate"))
    assert (type(epochs), type(batch), type(rate)) == (float, int, float) and (epochs, batch, rate) == (2.0, 32, 1.0)
    assert type(filled["methods"]["a"]["weight"]) is float and filled["methods"]["b"]["weight"] == "sweep"


def test_every_config_key_of_the_schema_says_what_it_holds():
    """Every key a config can set has a description (the schema is the configuration's
    reference: config.yaml points there for each key's meaning, type and default)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    undescribed = []

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub and "$ref" not in sub:
                undescribed.append(f"{path}{name}")
            walk(sub, f"{path}{name}.")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{path}*.")

    walk(schema, "")
    for name, definition in schema["definitions"].items():
        walk(definition, f"tasks.{name}: ")
    assert undescribed == []
    assert len(schema["properties"]) > 20  # the walk saw the whole schema


def test_the_schema_names_the_criteria_and_regularizers_the_code_has():
    """A criterion or regularizer added on one side only would pass the config check and fail
    inside a prune job, after the testbed and the fine-tuning (docs/architecture.md lists both sides)."""
    method = yaml.safe_load(SCHEMA.read_text())["properties"]["methods"]["additionalProperties"]["properties"]
    assert set(method["criterion"]["enum"]) == {*CRITERIA, NO_PRUNING}
    assert set(method["regularizer"]["enum"]) == set(REGULARIZERS)
    grids = yaml.safe_load(SCHEMA.read_text())["properties"]["sweep"]["properties"]["weights"]["properties"]
    assert set(grids) == set(REGULARIZERS) - {"none"}


def test_every_method_key_is_read_by_some_kind_of_method():
    """A prune job's params hold the method keys its kind reads (operational.method_settings): a
    key of the schema that no kind reads would never reach a job, and editing it rerun nothing."""
    method = yaml.safe_load(SCHEMA.read_text())["properties"]["methods"]["additionalProperties"]["properties"]
    spec = {key: value.get("default") for key, value in method.items()}
    read = set()
    for criterion in method["criterion"]["enum"]:
        for regularizer in method["regularizer"]["enum"]:
            for schedule in ("ladder", "independent"):
                read |= set(method_settings(spec | {"criterion": criterion, "regularizer": regularizer}, schedule))
    assert set(method) - read == {"enabled"}, "add the key to operational.method_settings for the kinds that read it"


def test_a_regularizer_the_schema_knows_without_a_sweep_grid_is_refused(tmp_path):
    """A regularizer added to the schema's list but given no sweep grid: named before any job,
    not a KeyError while the sweep is planned."""
    schema = yaml.safe_load(SCHEMA.read_text())
    schema["properties"]["methods"]["additionalProperties"]["properties"]["regularizer"]["enum"].append("l1")
    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text(yaml.safe_dump(schema))
    config = load_config("config.yaml")
    config["methods"]["m"] = {"criterion": "magnitude", "regularizer": "l1", "weight": "sweep"}
    with pytest.raises(ConfigError, match=r"methods\.m\.regularizer = l1: sweep\.weights has no grid for it "
                                          r"\(it has l2, cosine, frobenius\); add sweep\.weights\.l1"):
        check_config(config, schema_file, workdir=ROOT)


def test_the_demos_model_selection_check_keeps_every_last_step_in_its_own_folders():
    """profiles/demo/keep_last.yaml: the demo's study with one English-dev evaluation per rung, at
    its last step (so each prune job keeps all its retraining steps), written beside the demo's."""
    demo = load_config("config.yaml", "profiles/demo/testbed.yaml")
    check = load_config("config.yaml", "profiles/demo/testbed.yaml", "profiles/demo/keep_last.yaml")
    assert check["retrain"]["eval_every"] == check["retrain"]["steps"] == demo["retrain"]["steps"]
    assert {**check["retrain"], "eval_every": None} == {**demo["retrain"], "eval_every": None}
    changed = {"paths", "retrain", "analysis"}
    assert {k: v for k, v in check.items() if k not in changed} == {k: v for k, v in demo.items() if k not in changed}
    assert check["paths"]["resources"] == demo["paths"]["resources"]  # the testbed and tokens are reused
    assert all(check["paths"][k] != demo["paths"][k] for k in demo["paths"] if k != "resources")
