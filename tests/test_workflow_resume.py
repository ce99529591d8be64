"""Killed jobs resume: the demo's training is killed with SIGKILL (Snakemake and its job) at three
points, rerun with --rerun-incomplete, and ends with eval files identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from workflow_helpers import ROOT

TARGETS = [
    "results/xnli/seed~1/dense/eval/test/fr.json",
    "results/xnli/seed~1/method~magnitude_global_cosine/sparsity~0.50/eval/test/fr.json",
]
DENSE = "xnli/seed~1/dense/model/finetune"
PRUNED = "xnli/seed~1/method~magnitude_global_cosine/sparsity~0.50/model/retrain"


def command(root, run, *args):
    """Snakemake on the demo config in its own working folder (own locks), one run's outputs."""
    overlay = {
        "paths": {"resources": str(root / "resources"), "results": "results", "logs": "logs",
                  "benchmarks": "benchmarks", "checkpoints": "checkpoints"},
        "seeds": [1],
        "sparsities": [0.5],
        "tasks": {"xnli": {"languages": ["en", "fr"]}},
        "finetune": {"epochs": 3, "eval_every": 30, "checkpoint_every": 10},
        "retrain": {"steps": 60, "eval_every": 30, "checkpoint_every": 10},
        "testbed": {"pretrain_steps": 60, "sizes": {"train": 1000, "validation": 100, "test": 150}},
    }
    (root / "resume.yaml").write_text(yaml.safe_dump(overlay))
    workdir = root / run
    workdir.mkdir(exist_ok=True)
    return [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "1",
        *args,  # before --configfile, which takes every file name after it
        "--configfile", str(ROOT / "config.yaml"), str(ROOT / "profiles/demo/testbed.yaml"), str(root / "resume.yaml"),
    ]


def run_to_end(root, run, *args):
    result = subprocess.run(command(root, run, *args, *TARGETS), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def kill_at(root, run, checkpoints: str, step: int) -> None:
    """Start the run; SIGKILL Snakemake and its job once ``checkpoints`` holds step >= ``step``."""
    folder = root / run / "checkpoints" / checkpoints
    process = subprocess.Popen(
        command(root, run, *TARGETS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        steps = [int(p.name.split("-")[1]) for p in folder.glob("step-*[0-9]")] if folder.is_dir() else []
        if steps and max(steps) >= step:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"the run ended before a checkpoint at step {step} appeared in {folder}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    run_to_end(root, "uninterrupted")
    return root


@pytest.mark.parametrize(
    "checkpoints, step",
    [(DENSE, 10), (DENSE, 60), (PRUNED, 30)],
    ids=["finetune-early", "finetune-late", "retraining"],
)
def test_a_killed_training_job_resumes_and_ends_with_identical_eval_files(reference, checkpoints, step):
    run = f"killed-{checkpoints.split('/')[2]}-{step}"
    kill_at(reference, run, checkpoints, step)
    workdir = reference / run
    # killed mid-training: no declared output of the killed job, its checkpoint on disk
    model_dir = workdir / "results" / checkpoints.rsplit("/", 1)[0]
    assert not model_dir.exists()
    assert any((workdir / "checkpoints" / checkpoints).glob("step-*"))

    unlock = subprocess.run(command(reference, run, "--unlock"), capture_output=True, text=True, timeout=300)
    assert unlock.returncode == 0, unlock.stderr
    run_to_end(reference, run, "--rerun-incomplete")

    log = (workdir / "logs" / checkpoints.rsplit("/", 2)[0] / ("finetune.log" if "dense" in checkpoints else "prune.log"))
    assert "resumed from" in log.read_text()
    for target in TARGETS:
        assert (workdir / target).read_bytes() == (reference / "uninterrupted" / target).read_bytes(), target
    # checkpoints are removed once the job's outputs are saved
    assert not any((workdir / "checkpoints").rglob("step-*"))
