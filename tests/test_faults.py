"""Faults in inputs and in the environment: each stops the job at once with a message naming the
file (or the way out) and leaves no output behind. Also the security rules: safetensors only, no
remote code, no shell strings from the config."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml
from conftest import tiny_classifier, tiny_testbed
from workflow_helpers import REFUSE_NETWORK, ROOT

from alignprune import hub

XNLI = pd.DataFrame(
    {
        "premise": ["Le chat dort.", "Il pleut.", "Elle lit.", "Il mange."],
        "hypothesis": ["Un animal dort.", "Il fait beau.", "Elle lit un livre.", "Il a faim."],
        "label": pd.array([0, 2, 1, 0], dtype="int64"),
    }
)


def hub_folder(root, fault: str):
    """A local copy of facebook/xnli (en and de test) with one fault in de/test."""
    for lang in ("en", "de"):
        (root / lang).mkdir(parents=True)
        XNLI.to_parquet(root / lang / "test-00000-of-00001.parquet", index=False)
    broken = root / "de" / "test-00000-of-00001.parquet"
    if fault == "corrupt":
        broken.write_bytes(b"PAR1 this is not parquet at all")
    elif fault == "truncated":
        broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    elif fault == "missing_language":
        broken.unlink()
        (root / "de").rmdir()
    elif fault == "label_outside_task":
        XNLI.assign(label=pd.array([0, 7, 1, 0], dtype="int64")).to_parquet(broken, index=False)
    elif fault == "empty_split":
        XNLI.iloc[:0].to_parquet(broken, index=False)
    return broken


@pytest.mark.parametrize(
    "fault, words",
    [
        ("corrupt", ["de/test-00000-of-00001.parquet", "cannot read as parquet"]),
        ("truncated", ["de/test-00000-of-00001.parquet", "cannot read as parquet"]),
        ("missing_language", ["no files match", "de/test-*.parquet", "{folder}/{lang}/{split}-*.parquet"]),
        ("label_outside_task", ["xnli/de/test from", "1 of 4 rows have a label outside 0..2", "7"]),
        ("empty_split", ["xnli/de/test from", "no usable rows out of 0"]),
    ],
)
def test_a_bad_data_file_fails_its_download_job_naming_the_file_and_leaves_no_output(tmp_path, fault, words):
    hub_folder(tmp_path / "xnli-copy", fault)
    overlay = {
        "paths": {k: str(tmp_path / k) for k in ("resources", "results", "logs", "benchmarks", "checkpoints")},
        "tasks": {"xnli": {"source": {"hub": None, "local": str(tmp_path / "xnli-copy")}, "languages": ["en", "de"]},
                  "pawsx": {"enabled": False}},
    }
    (tmp_path / "faults.yaml").write_text(yaml.safe_dump(overlay))
    targets = [f"{tmp_path}/resources/data/xnli/{lang}/test.parquet" for lang in ("en", "de")]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-d", str(tmp_path), "-s", str(ROOT / "Snakefile"), "--cores", "1",
         "--keep-going", "--show-failed-logs", *targets,
         "--configfile", str(ROOT / "config.yaml"), str(tmp_path / "faults.yaml")],
        capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    log = (tmp_path / "logs/download/xnli/de/test.log").read_text()
    for word in words:
        assert word in log, log
    assert (tmp_path / "resources/data/xnli/en/test.parquet").exists()  # the good file is kept
    assert not (tmp_path / "resources/data/xnli/de/test.parquet").exists()
    assert not [p for p in (tmp_path / "resources/data/xnli").rglob("*") if p.name.startswith(".")]


NO_NETWORK = "MARKER = None\n" + REFUSE_NETWORK + r"""
import json, sys, time
from alignprune.stages.download import download_model, download_split
started = time.monotonic()
try:
    if sys.argv[1] == "model":
        download_model("FacebookAI/xlm-roberta-base", sys.argv[2])
    else:
        download_split("xnli", "de", "test", {"hub": "facebook/xnli"}, sys.argv[2])
except Exception as err:
    print(json.dumps({"type": type(err).__name__, "message": str(err), "seconds": time.monotonic() - started}))
"""


@pytest.mark.parametrize("what", ["model", "data"])
@pytest.mark.parametrize("offline", [False, True], ids=["no-network", "HF_HUB_OFFLINE-empty-cache"])
def test_without_network_a_download_fails_at_once_saying_how_to_run_offline(tmp_path, what, offline):
    env = {"HF_HOME": str(tmp_path / "hf-home"), "PATH": "/usr/bin:/bin"}
    if offline:
        env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = tmp_path / ("model" if what == "model" else "test.parquet")
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, what, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["type"] == "HubUnreachable", report
    assert report["seconds"] < 15, report  # not minutes of retries
    for way_out in ("local: <folder>", "HF_HUB_OFFLINE=1", "snakemake --profile profiles/demo"):
        assert way_out in report["message"]
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_weights_load_from_safetensors_only(tmp_path):
    from alignprune.modeling import load_classifier

    model = tiny_classifier()
    (tmp_path / "pickled").mkdir()
    model.config.save_pretrained(tmp_path / "pickled")
    torch.save(model.state_dict(), tmp_path / "pickled/pytorch_model.bin")  # a pickle, as old Hub repos hold
    with pytest.raises(OSError, match="safetensors"):
        load_classifier(tmp_path / "pickled")
    model.save_pretrained(tmp_path / "safe")
    assert torch.equal(load_classifier(tmp_path / "safe").classifier.dense.weight, model.classifier.dense.weight)


def test_the_source_never_enables_remote_code_or_unpickles_foreign_files():
    sources = {p: p.read_text() for p in [*(ROOT / "src/alignprune").rglob("*.py"), *(ROOT / "workflow/scripts").glob("*.py")]}
    for path, text in sources.items():
        assert "trust_remote_code=True" not in text, path
        assert "import pickle" not in text and "pickle.load" not in text, path
        # torch.load only of the job's own checkpoint state, and never with full unpickling
        for line in [line for line in text.splitlines() if "torch.load(" in line]:
            assert "weights_only=True" in line, (path, line)


def test_no_rule_runs_a_shell_command_so_the_config_cannot_inject_one():
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings, StorageSettings, WorkflowSettings

    with SnakemakeApi() as api:
        workflow_api = api.workflow(
            snakefile=ROOT / "Snakefile", workdir=ROOT,
            resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
            workflow_settings=WorkflowSettings(), config_settings=ConfigSettings(),
        )
        rules = list(workflow_api._workflow.rules)
    assert len(rules) > 10
    for rule in rules:
        assert rule.shellcmd is None, f"rule {rule.name} runs a shell command"
        assert rule.is_run or rule.script or rule.norun, rule.name


def test_a_nan_in_a_real_prune_job_stops_it_with_a_clear_message_keeping_its_checkpoint(tmp_path):
    """The regularizer of a method with an absurd weight overflows to inf: the job stops, no output."""
    from conftest import PRUNABLE
    from workflow_helpers import config_section

    from alignprune.stages.finetune import finetune
    from alignprune.stages.prune import prune_and_retrain


    files = {("xnli", "en", s): tmp_path / f"{s}.parquet" for s in ("train", "validation")}
    files = tiny_testbed(tmp_path / "pretrained", files, sizes={"train": 100, "validation": 40, "test": 40}, pretrain_steps=10)
    finetune(
        task="xnli", seed=1, pretrained_dir=tmp_path / "pretrained", train_file=files[("xnli", "en", "train")],
        dev_file=files[("xnli", "en", "validation")], out_dir=tmp_path / "dense", max_length=32, prunable=PRUNABLE,
        settings=config_section("finetune", {"learning_rate": 1e-3, "batch_size": 16, "epochs": 1, "eval_every": 10}),
        device=torch.device("cpu"), progress=False,
    )
    with pytest.raises(FloatingPointError, match="NaN or infinite by step 4.*no checkpoint was written before it"):
        prune_and_retrain(
            task="xnli", seed=1, method_name="m", sparsity=0.5,
            method=config_section(
                "methods.*", {"criterion": "magnitude", "scope": "global", "regularizer": "frobenius", "weight": 1e39}
            ),
            start_dir=tmp_path / "dense", reference_dir=tmp_path / "dense", tokenizer_dir=tmp_path / "pretrained",
            train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")],
            out_dir=tmp_path / "pruned", max_length=32, prunable=PRUNABLE, device=torch.device("cpu"),
            settings=config_section(
                "retrain", {"learning_rate": 1e-3, "batch_size": 16, "steps": 8, "eval_every": 4, "checkpoint_every": 4}
            ),
            checkpoint_dir=tmp_path / "ckpt", progress=False,
        )
    assert not (tmp_path / "pruned").exists()


def test_hub_check_passes_quickly_when_offline_mode_is_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    hub.check_reachable("anything")  # offline: the cache decides, no request
    assert time.monotonic() - started < 1
