"""Which jobs an edited config reruns: none for an operational setting, exactly the dependent
ones for a result-changing setting.

Snakemake reruns a job whose params changed. A completed run is stood in for by creating every
output of the CI-size demo and recording it with ``snakemake --touch --forceall`` (which stores
each job's params as a real run does), so no model is trained here.
"""

import pytest
import yaml

from alignprune.operational import task_finetune
from workflow_helpers import ROOT, job_counts, load_config, snakemake

OPERATIONAL_EDITS = {
    "finetune.checkpoint_every": {"finetune": {"checkpoint_every": 7}},
    "retrain.checkpoint_every": {"retrain": {"checkpoint_every": 3}},
    "finetune.log_every": {"finetune": {"log_every": 1}},
    "retrain.log_every": {"retrain": {"log_every": 1}},
    "evaluation.batch_size": {"evaluation": {"batch_size": 3}},
    "threads": {"threads": {"train": 2, "evaluate": 2}},
    "tensorboard": {"tensorboard": True, "paths": {"tensorboard": "elsewhere/tensorboard"}},
    "paths.checkpoints": {"paths": {"checkpoints": "elsewhere/checkpoints"}},
}
# Edits that change no value: a method's defaults written out (the schema adds missing keys after
# the written ones, and params are compared by their text) and whole numbers written as decimals
# or the reverse (2 and 2.0 print differently).
SAME_VALUE_EDITS = {
    "method defaults written out": {"methods": {"magnitude_global": {"reference": "dense"},
                                                "magnitude_global_cosine": {"units": "rows", "reference": "dense"}}},
    "decimal for a whole number": {"finetune": {"epochs": 2.0}, "retrain": {"warmup_ratio": 0}},
    # the testbed's params hold what differs from the defaults (testbed_settings.model_params)
    "testbed defaults written out": {"testbed": {"particles": 0, "nli_contrasts": 0.0, "heads": 4, "parallel_fraction": 0.5,
                                                 "languages": {"en": {"own_order": 1}, "fr": {"overlap": 0,
                                                               "shared_negation": False, "code_switch": 0.3}}}},
}
# Edits of keys the edited job does not read (operational.method_settings; testbed_settings.data_params):
# a regularizer's units where only cosine reads them, a criterion's settings on a method of another
# criterion, the reference of a method without a regularizer, a scope on the retraining control.
UNREAD_EDITS = {
    "method keys their methods do not read": {"methods": {
        "magnitude_global_frobenius": {"units": "columns"},
        "magnitude_global": {"gradient_batches": 7, "score_steps": 7, "reference": "pretrained", "units": "columns"},
        "retrain_only": {"scope": "global", "reference": "pretrained"},
    }},
}
TARGETS = ("all", "sweep")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A recorded 'completed' CI-size demo in a temporary folder: (folder, config files)."""
    root = tmp_path_factory.mktemp("reruns")
    overlay = {
        "paths": {k: str(root / k) for k in ("resources", "results", "logs", "benchmarks")},
        "seeds": [1, 2],
        "sparsities": [0.5, 0.9],
        "tasks": {"xnli": {"enabled": True, "languages": ["en", "de", "zh"]},
                  "pawsx": {"enabled": True, "languages": ["en", "fr", "ja"]}},
        "sweep": {"seeds": [1], "sparsities": [], "weights": {"l2": [0.01], "cosine": [1.0, 100.0], "frobenius": [100.0]}},
    }
    (root / "ci.yaml").write_text(yaml.safe_dump(overlay))
    configfiles = ["config.yaml", "profiles/demo/testbed.yaml", str(root / "ci.yaml")]
    summary = snakemake("--profile", "profiles/demo", "--configfile", *configfiles, "--summary", *TARGETS).stdout
    outputs = [line.split("\t")[0] for line in summary.splitlines()[1:] if line.startswith(str(root))]
    assert len(outputs) > 100
    for name in outputs:
        path = ROOT / name
        if path.name == "model" or path.parent.name == "models":  # directory outputs
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    snakemake("--profile", "profiles/demo", "--configfile", *configfiles, "--touch", "--forceall", *TARGETS)
    return root, configfiles


def plan(run, name, edit, *extra):
    root, configfiles = run
    overlay = root / f"edit_{name}.yaml"
    overlay.write_text(yaml.safe_dump(edit))
    result = snakemake("-n", *extra, *TARGETS, "--profile", "profiles/demo", "--configfile", *configfiles, str(overlay))
    return result.stdout + result.stderr


def test_the_recorded_run_is_complete(run):
    assert "Nothing to be done" in plan(run, "none", {})


@pytest.mark.parametrize("name", OPERATIONAL_EDITS)
def test_editing_an_operational_setting_reruns_nothing(run, name):
    output = plan(run, name.replace(".", "_"), OPERATIONAL_EDITS[name])
    assert "Nothing to be done" in output, output[-3000:]


@pytest.mark.parametrize("name", SAME_VALUE_EDITS)
def test_an_edit_that_changes_no_value_reruns_nothing(run, name):
    written = yaml.safe_load((ROOT / "profiles/demo/testbed.yaml").read_text())["finetune"]["epochs"]
    assert written == 2 and isinstance(written, int)  # the edit's 2.0 is another text of it
    output = plan(run, name.replace(" ", "_"), SAME_VALUE_EDITS[name])
    assert "Nothing to be done" in output, output[-3000:]


@pytest.mark.parametrize("name", UNREAD_EDITS)
def test_an_edit_of_a_key_no_job_of_it_reads_reruns_nothing(run, name):
    output = plan(run, name.replace(" ", "_"), UNREAD_EDITS[name])
    assert "Nothing to be done" in output, output[-3000:]


def test_a_key_a_method_reads_reruns_that_method_s_prune_jobs(run):
    """The cosine regularizer's units: its method's prune jobs (and the sweep's cosine runs), no other method's."""
    output = plan(run, "cosine_units", {"methods": {"magnitude_global_cosine": {"units": "columns"}}})
    counts = job_counts(output)
    assert "Params have changed" in output
    assert counts["prune"] == 2 * 2 * 2, counts  # 2 tasks x 2 seeds x 2 targets
    planned = [line.strip() for line in output.splitlines() if "method=" in line]
    assert planned and all("method=magnitude_global_cosine" in line for line in planned), planned[:5]


def test_a_language_s_pretraining_knob_remakes_the_model_not_the_data(run):
    """A language's share of the translation pairs is read by pretraining alone."""
    counts = job_counts(plan(run, "parallel", {"testbed": {"languages": {"zh": {"parallel": 0.25}}}}))
    assert counts["testbed_model"] == 1 and "testbed_data" not in counts, counts


def test_a_config_that_lists_a_section_s_keys_in_another_order_reruns_nothing(run):
    """Params are compared by their repr, where a dict's key order shows."""
    root, configfiles = run
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section in ("finetune", "retrain"):
        config[section] = dict(reversed(list(config[section].items())))
    reordered = root / "config_reordered.yaml"
    reordered.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake("-n", *TARGETS, "--profile", "profiles/demo", "--configfile", str(reordered), *configfiles[1:])
    assert "Nothing to be done" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_a_language_added_to_a_demo_task_makes_its_files_and_evaluations_and_trains_nothing(run):
    """The testbed's model and each data file are jobs of their own: a language of the testbed
    added to a task writes its test file, and no model is pretrained or trained again."""
    output = plan(run, "added_language", {"tasks": {"xnli": {"languages": ["en", "de", "zh", "fr"]}}})
    counts = job_counts(output)
    assert (counts["testbed_data"], counts["tokenize"]) == (1, 1), counts  # xnli's fr test set
    assert "resources/data/xnli/fr/test.parquet" in output.replace(str(run[0]) + "/", "")
    assert counts["evaluate_xnli"] > 0 and not {"testbed_model", "finetune", "prune", "prune_sweep"} & set(counts)


def test_a_new_test_size_of_the_demo_remakes_the_test_files_and_their_evaluations_not_the_models(run):
    config = load_config(*run[1])
    size = config["testbed"]["sizes"]["test"] - 1  # any size other than the run's
    counts = job_counts(plan(run, "test_size", {"testbed": {"sizes": {"test": size}}}))
    # every test file: xnli's en, de, zh and pawsx's en, fr, ja
    assert (counts["testbed_data"], counts["tokenize"]) == (6, 6), counts
    assert counts["evaluate_xnli"] > 0 and not {"testbed_model", "finetune", "prune", "prune_sweep"} & set(counts)


def test_a_new_pretraining_length_remakes_the_model_and_everything_after_it_not_the_data(run):
    config = load_config(*run[1])
    steps = config["testbed"]["pretrain_steps"] + 1
    counts = job_counts(plan(run, "pretrain_steps", {"testbed": {"pretrain_steps": steps}}))
    assert counts["testbed_model"] == 1 and "testbed_data" not in counts
    assert counts["finetune"] == 4 and counts["tokenize"] == 10  # 2 tasks x 2 seeds; every token file


def test_a_new_retraining_learning_rate_reruns_the_prune_jobs_and_all_that_depends_on_them(run):
    config = load_config(*run[1])
    new_rate = 2 * config["retrain"]["learning_rate"]  # any rate other than the run's
    output = plan(run, "retrain_learning_rate", {"retrain": {"learning_rate": new_rate}})
    counts = job_counts(output)
    assert "Params have changed" in output
    assert not {"testbed_model", "testbed_data", "finetune"} & set(counts)
    # every prune job of both tasks (methods x 2 seeds x 2 targets) and of the sweep (1 seed; the
    # weights of each regularized method and the unregularized reference, magnitude_global at 0)
    methods = [spec for spec in config["methods"].values() if spec["enabled"]]
    weights = sum(len(config["sweep"]["weights"][m["regularizer"]]) for m in methods
                  if m["regularizer"] != "none" and m["criterion"] != "none")
    assert counts["prune"] == 2 * len(methods) * 2 * 2 and counts["prune_sweep"] == 2 * (weights + 1) * 2
    # exactly the jobs downstream of the prune jobs: those that forcing the prune rules reruns
    assert counts == job_counts(plan(run, "forced", {}, "--forcerun", "prune", "prune_sweep"))
    everything = job_counts(plan(run, "everything", {}, "--forceall"))
    assert counts["total"] < everything["total"]  # the testbed, dense models and their evaluations stay


def test_a_task_s_own_fine_tuning_setting_reruns_that_task_s_jobs_only(run):
    config = load_config(*run[1])
    epochs = task_finetune(config, "pawsx")["epochs"] + 1  # any number other than the run's
    output = plan(run, "pawsx_epochs", {"tasks": {"pawsx": {"finetune": {"epochs": epochs}}}})
    counts = job_counts(output)
    assert "Params have changed" in output
    assert counts["finetune"] == 2 and not {"testbed_model", "testbed_data"} & set(counts)  # pawsx's dense model of each seed
    assert "task=pawsx" in output and "task=xnli" not in output, output[-3000:]
