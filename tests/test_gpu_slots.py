"""Jobs on a multi-GPU machine each take their own GPU (fake devices: the lock logic needs no GPU)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from alignprune.gpu_slots import claimed_devices, gpu_job
from workflow_helpers import ROOT

DEVICES = ["0", "1", "2", "3"]


def test_each_claim_gets_a_free_device_and_a_fifth_waits_until_one_is_released(tmp_path):
    with claimed_devices(1, DEVICES, tmp_path) as a, claimed_devices(1, DEVICES, tmp_path) as b, \
            claimed_devices(1, DEVICES, tmp_path) as c, claimed_devices(1, DEVICES, tmp_path) as d:
        assert a + b + c + d == DEVICES  # in order: a lone job takes the first free one
        with pytest.raises(TimeoutError, match="no 1 free GPU"):
            with claimed_devices(1, DEVICES, tmp_path, poll_seconds=0.05, timeout_seconds=0.3):
                pass
    with claimed_devices(2, DEVICES, tmp_path) as pair, claimed_devices(2, DEVICES, tmp_path) as other:
        assert pair == ["0", "1"] and other == ["2", "3"]
    with claimed_devices(1, DEVICES, tmp_path) as again:
        assert again == ["0"]  # every lock was released


def test_a_job_asking_for_more_gpus_than_visible_is_refused(tmp_path):
    with pytest.raises(ValueError, match="asks for 5 GPUs but only 4 are visible .*gpus_per_job"):
        with claimed_devices(5, DEVICES, tmp_path):
            pass


def test_gpu_job_narrows_cuda_visible_devices_and_restores_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # e.g. what a scheduler handed out
    with claimed_devices(1, ["4", "5", "6", "7"], tmp_path):  # another job holds GPU 4
        with gpu_job(2, lock_dir=tmp_path) as mine:
            assert mine == ["5", "6"]
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,6"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # one GPU: nothing to share, nothing locked
    with gpu_job(1, lock_dir=tmp_path) as only:
        assert only == ["3"] and not list(tmp_path.glob("gpu-3.lock"))
    with gpu_job(0, lock_dir=tmp_path) as none:
        assert none == []
    with pytest.raises(ValueError, match="asks for 2 GPUs but only 1 are visible"):  # not one GPU for two
        with gpu_job(2, lock_dir=tmp_path):
            pass


JOB = """
import os, sys, time, types
from pathlib import Path
import torch
from alignprune.rule_runtime import rule_job
torch.version.cuda = None  # a CPU build of torch, whichever is installed: these GPUs are not CUDA's
out, release = Path(sys.argv[1]), Path(sys.argv[2])
job = types.SimpleNamespace(threads=1, log=[str(out) + ".log"], rule="finetune", resources=types.SimpleNamespace(gpu=1))
with rule_job(job) as device:
    out.write_text(os.environ["CUDA_VISIBLE_DEVICES"] + " " + str(device))
    while not release.exists():
        time.sleep(0.05)
"""


def _start(tmp_path: Path, name: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB, str(tmp_path / name), str(tmp_path / "release")],
                            env=env, cwd=ROOT)


def _wait_for(paths, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not all(p.exists() and p.read_text() for p in paths):
        assert time.monotonic() < deadline, f"not written: {[p.name for p in paths if not p.exists()]}"
        time.sleep(0.05)


def test_four_rule_jobs_at_once_run_on_four_gpus_a_fifth_waits_and_a_killed_job_frees_its_gpu(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(DEVICES), "ALIGNPRUNE_GPU_LOCKS": str(tmp_path / "locks")}
    env.pop("ALIGNPRUNE_DEVICE", None)
    jobs = [_start(tmp_path, f"job{i}", env) for i in range(4)]
    outs = [tmp_path / f"job{i}" for i in range(4)]
    _wait_for(outs)
    seen = [out.read_text().split() for out in outs]
    assert sorted(gpu for gpu, _ in seen) == DEVICES  # each its own GPU
    assert all(device == "cpu" for _, device in seen)  # this machine has no CUDA: the job runs on
    logs = [Path(f"{out}.log").read_text() for out in outs]
    assert all("GPU(s) " in log for log in logs)

    fifth = _start(tmp_path, "job4", env)
    time.sleep(3)
    assert not (tmp_path / "job4").exists()  # all four GPUs taken: it waits
    killed = next(i for i, (gpu, _) in enumerate(seen) if gpu == "2")
    jobs[killed].send_signal(signal.SIGKILL)  # a killed job leaves no stale lock
    jobs[killed].wait()
    _wait_for([tmp_path / "job4"])
    assert (tmp_path / "job4").read_text().split()[0] == "2"

    (tmp_path / "release").touch()
    for job in [*jobs, fifth]:
        job.wait(timeout=60)
    expected = [0] * 5
    expected[killed] = -signal.SIGKILL
    assert [job.returncode for job in [*jobs, fifth]] == expected


SAVING = """
import sys, time, types
from pathlib import Path
from alignprune.io import atomic_path
from alignprune.rule_runtime import rule_job
out = Path(sys.argv[1])
job = types.SimpleNamespace(threads=1, log=[str(out) + ".log"], rule="prune", resources=types.SimpleNamespace(gpu=0))
with rule_job(job):
    with atomic_path(out, directory=True) as tmp:
        (tmp / "model.safetensors").write_bytes(b"0" * 1000)
        (out.parent / "saving").touch()
        while True:  # a save that SIGTERM interrupts
            time.sleep(0.05)
"""


def test_sigterm_during_a_save_leaves_no_temporary_folder(tmp_path):
    """SLURM ends a job at its time limit with SIGTERM: the half-saved model's temporary folder
    is removed (Python's default would leave it, a model's size, beside the output), the job
    exits 143 with the reason in its log, and so again for a second attempt."""
    env = {**os.environ}
    env.pop("ALIGNPRUNE_DEVICE", None)
    for attempt in (1, 2):
        (tmp_path / "saving").unlink(missing_ok=True)
        job = subprocess.Popen([sys.executable, "-c", SAVING, str(tmp_path / "model")], env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while not (tmp_path / "saving").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")]  # the save's temporary folder
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=60) == 143
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")]
        assert not (tmp_path / "model").exists()
        log = (tmp_path / "model.log").read_text()
        assert "job failed" in log and "SystemExit: 143" in log


def fake_job(log, gpu: int, gpus_per_job: int) -> types.SimpleNamespace:
    """What rule_job reads of a rule script's ``snakemake`` object."""
    return types.SimpleNamespace(threads=1, log=[str(log)], rule="finetune",
                                 resources=types.SimpleNamespace(gpu=gpu), config={"gpus_per_job": gpus_per_job})


@pytest.mark.parametrize("cuda_build, driver, listed, units", [
    (None, True, None, 1),      # a CPU-only build on a GPU machine: torch sees no GPU to claim
    ("13.0", True, "0", 1),     # a CUDA build for a newer driver than the machine's
    ("13.0", True, "0", 0),     # the same under SLURM's --gres, the rule's gpu resource at 0
    ("13.0", False, "0", 1),    # GPUs named on a CPU machine (the SLURM test's node): CPU, a warning
    ("13.0", True, None, 0),    # a CPU rule (tokenize, weight alignment): nothing given, nothing refused
    ("13.0", True, "-1", 1),    # every GPU hidden on purpose (CUDA_VISIBLE_DEVICES=-1): a run on CPU
    ("13.0", True, "", 1),      # the same, written empty
])
def test_a_job_given_a_gpu_that_torch_cannot_use_stops_where_a_driver_is_loaded(
    tmp_path, monkeypatch, cuda_build, driver, listed, units
):
    """Where an NVIDIA driver is loaded, a job given a GPU (claimed, listed by the scheduler, or
    asked for through the gpu resource) whose torch cannot use it stops at once: on CPU it would
    run to its time limit. Without a driver it runs on CPU and says so in the log."""
    import torch

    from alignprune import rule_runtime
    from alignprune.rule_runtime import rule_job

    monkeypatch.setattr(rule_runtime, "NVIDIA_DRIVER", tmp_path / ("version" if driver else "absent"))
    (tmp_path / "version").write_text("NVRM version: 535.0\n")
    if listed is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    monkeypatch.setenv("ALIGNPRUNE_DEVICE", "")  # set but empty: as if not set
    monkeypatch.setattr(torch.version, "cuda", cuda_build)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    job = fake_job(tmp_path / "job.log", gpu=units, gpus_per_job=1)
    hidden = listed in ("-1", "")
    given = listed or f"{units} \\(the job's gpu resource\\)"
    if driver and not hidden and (listed or units):
        build = "a CPU-only build" if cuda_build is None else "built for CUDA 13.0"
        with pytest.raises(RuntimeError, match=f"given GPU\\(s\\) {given} but torch .* cannot use them "
                                               f"\\({build}.*ALIGNPRUNE_DEVICE=cpu"):
            with rule_job(job):
                pass
        return
    with rule_job(job) as device:
        assert device.type == "cpu"
    log = (tmp_path / "job.log").read_text()
    assert ("GPU(s) 0 given, but torch" in log) == (listed == "0")
    assert "given, but torch" not in log or not hidden


def test_a_cpu_only_run_stays_on_cpu_and_plain_cuda_still_claims_a_gpu(tmp_path, monkeypatch):
    """gpus_per_job: 0 (the demo, calibrated on CPU) runs on CPU where torch sees a GPU too;
    ALIGNPRUNE_DEVICE=cuda, set to insist on the GPU, still takes a free GPU of its own."""
    import torch

    from alignprune import rule_runtime
    from alignprune.rule_runtime import rule_job

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("ALIGNPRUNE_DEVICE", raising=False)
    demo = fake_job(tmp_path / "demo.log", gpu=0, gpus_per_job=0)
    with rule_job(demo) as device:
        assert device.type == "cpu"
    asked = []

    @contextlib.contextmanager
    def claiming(count):
        asked.append(count)
        yield ["3"][:count]

    monkeypatch.setattr(rule_runtime, "gpu_job", claiming)
    monkeypatch.setenv("ALIGNPRUNE_DEVICE", "cuda")
    study = fake_job(tmp_path / "study.log", gpu=1, gpus_per_job=1)
    with rule_job(study) as device:
        assert device.type == "cuda"
    monkeypatch.setenv("ALIGNPRUNE_DEVICE", "cuda:1")  # an explicit device: used as it is
    with rule_job(study) as device:
        assert str(device) == "cuda:1"
    assert asked == [1, 0]


def test_cuda_visible_devices_stops_at_the_first_invalid_entry_as_cuda_does(monkeypatch):
    """-1 hides every GPU (a common way to run on CPU): no GPU to claim or to refuse."""
    from alignprune.gpu_slots import visible_devices

    for listed, expected in (("-1", []), ("0,-1,2", ["0"]), ("", []), ("GPU-5f2a,1", ["GPU-5f2a", "1"])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
        assert visible_devices() == expected


CUDA13_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]  # PyTorch's CUDA 13.0 wheels: Turing and newer


@pytest.mark.parametrize("capability, archs, runs", [
    ((7, 0), CUDA13_ARCHS, False),                 # V100 under the CUDA 13 build: no kernels
    ((7, 0), ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"], True),  # under cu126
    ((8, 0), CUDA13_ARCHS, True),                  # A100
    ((8, 9), ["sm_80", "sm_86"], True),            # L4: an sm_86 binary runs on 8.9 (same major)
    ((9, 0), ["sm_80", "compute_80"], True),       # H100 from PTX
    ((9, 0), ["sm_80", "sm_86"], False),           # no binary of its major, no PTX
    ((10, 0), ["sm_90a"], False),                  # an arch-specific binary runs on its own arch alone
    ((9, 0), ["sm_90a"], True),
    ((6, 0), ["compute_70"], False),               # PTX newer than the GPU
    ((10, 3), ["sm_100f"], True),                  # a family-specific binary runs on its family's later minors
    ((12, 0), ["sm_100f"], False),
    ((10, 0), ["compute_90a"], False),             # arch-specific PTX: its own arch alone
])
def test_a_build_has_kernels_for_its_own_and_newer_minor_versions_and_ptx(capability, archs, runs):
    from alignprune.rule_runtime import has_kernels_for

    assert has_kernels_for(capability, archs) is runs


def test_a_gpu_older_than_the_build_supports_stops_the_job_naming_the_build_it_needs(tmp_path, monkeypatch):
    """CUDA sees a V100 under the CUDA 13 build, so without this check the job would start and
    fail at its first kernel ("no kernel image is available"), and be retried."""
    import torch

    from alignprune.rule_runtime import rule_job

    monkeypatch.setenv("ALIGNPRUNE_DEVICE", "cuda:0")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: CUDA13_ARCHS)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-32GB")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    job = fake_job(tmp_path / "job.log", gpu=0, gpus_per_job=1)
    with pytest.raises(RuntimeError, match=r"the GPU Tesla V100-SXM2-32GB \(compute capability 7\.0\) has no kernels "
                                           r"in torch .* \(CUDA 13\.0: sm_75 .*\)\. GPUs older than Turing need the "
                                           r"CUDA 12\.6 build: .*whl/cu126"):
        with rule_job(job):
            pass
    assert "has no kernels" in (tmp_path / "job.log").read_text()  # the job's log says why too
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # an A100 runs
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32  # set on a cuda device
    try:
        with rule_job(job) as device:
            assert device == torch.device("cuda:0")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def test_bf16_autocast_only_where_the_gpu_computes_bf16_itself(monkeypatch):
    """torch.cuda.is_bf16_supported() counts emulation by default: a T4 or V100 would run bf16
    autocast slower than float32."""
    import torch

    from alignprune.evaluate import numerics, uses_bf16

    emulating = {"native": False}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or emulating["native"])
    cuda = torch.device("cuda:0")
    assert not uses_bf16(cuda) and numerics(cuda)["bf16_autocast"] is False
    emulating["native"] = True  # an A100
    assert uses_bf16(cuda)
    assert not uses_bf16(torch.device("cpu"))
