"""The schema: the full config is valid, and misspelt methods, regularizers or schedules are not."""

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from workflow_helpers import load_config


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
    assert full["sweep"]["seeds"] == [1] and set(full["sweep"]["weights"]) == {"l2", "cosine", "frobenius"}
    # the demo switches methods off without repeating them, and keeps the full study's definitions
    assert [m for m, spec in demo["methods"].items() if spec["enabled"]] == [
        "random", "magnitude_global", "magnitude_global_l2", "magnitude_global_cosine", "magnitude_global_frobenius"
    ]
    assert demo["methods"]["magnitude_global_cosine"]["criterion"] == "magnitude"


@pytest.mark.parametrize(
    "bad, word",
    [
        ({"methods": {"m": {"criterion": "magnitdue"}}}, "magnitdue"),
        ({"methods": {"m": {"criterion": "magnitude", "regularizer": "cosin"}}}, "cosin"),
        ({"methods": {"m": {"criterion": "magnitude", "scope": "row"}}}, "row"),
        ({"methods": {"m": {"criterion": "magnitude", "regularizer": "cosine", "weight": -1}}}, "-1"),
        ({"methods": {"m": {"criterion": "magnitude", "lambda": 0.1}}}, "lambda"),
        ({"schedule": "gradual"}, "gradual"),
        ({"sparsities": [0.5, 1.0]}, "1.0"),
        ({"methods": {"m": {"criterion": "magnitude", "enabled": "no"}}}, "no"),
        ({"sweep": {"weights": {"cosin": [1.0]}}}, "cosin"),
        ({"sweep": {"weights": {"l2": [0.0, 1.0]}}}, "0.0"),
        ({"sweep": {"sparsities": [0.5, 1.5]}}, "1.5"),
        ({"sweep": {"seed": [1]}}, "seed"),
        ({"analysis": {"max_examples": 1}}, "1"),
        ({"analysis": {"enable": False}}, "enable"),
        ({"analysis": {"seeds": [1, 1]}}, "[1, 1]"),
    ],
)
def test_misspelt_or_out_of_range_values_are_rejected(tmp_path, bad, word):
    with pytest.raises(WorkflowError) as err:
        load_config("config.yaml", overlay(tmp_path, bad))
    assert word in str(err.value)
