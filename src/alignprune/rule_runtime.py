"""What every rule script does first: log to the rule's log file, use the rule's threads."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from .evaluate import allow_tf32
from .gpu_slots import gpu_job, visible_devices
from .modeling import pick_device
from .operational import with_operational


def training_settings(snakemake, section: str) -> dict:
    """The training settings of a finetune or prune job: the rule's params (what changes the
    model) with the operational keys of the config ``section`` (checkpoint and log intervals)
    and the job's TensorBoard folder when the config's tensorboard is on. The operational
    ones are read here, not passed as params, so that editing them reruns no job."""
    settings = with_operational(snakemake.params.settings, snakemake.config[section])
    if snakemake.config["tensorboard"]:
        settings["tensorboard_dir"] = snakemake.params.tensorboard
    return settings


def quiet_libraries() -> None:
    """No progress bars of the Hugging Face libraries in a job's log file (their carriage
    returns make one endless line) and transformers' messages from errors up only (its model
    load report, with ANSI colour codes, would fill the log at every load)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # for libraries imported later
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    import huggingface_hub.utils
    import transformers.utils.logging

    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


@contextmanager
def _terminate_as_exit():
    """SIGTERM raises SystemExit(143) while the job runs (Python's default ends the process
    without running ``finally`` blocks); the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Present where an NVIDIA driver is loaded (Linux).
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def _given_gpus(claimed: list[str], gpu_units: int) -> str:
    """The GPUs a job was given, as its log names them: those it claimed, else those its scheduler
    listed (SLURM with --gres and the rule's gpu resource at 0), else its units of the gpu
    resource (torch saw none to claim: a CPU-only build); "" for a job given none, or where
    CUDA_VISIBLE_DEVICES hides every GPU on purpose ("-1" or empty: a run on CPU)."""
    if claimed:
        return ",".join(claimed)
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return ",".join(visible_devices())  # as CUDA reads it
    return f"{gpu_units} (the job's gpu resource)" if gpu_units else ""


def _refuse_an_unusable_gpu(given: str, device: torch.device) -> None:
    """A job given GPUs on a machine with an NVIDIA driver whose torch cannot use them (a CUDA
    build for a newer driver, or a CPU-only build) stops here: on CPU it would grind until its
    time limit, and be retried. Without a driver (a CPU machine whose environment names GPUs)
    the job runs on CPU, with a warning. ALIGNPRUNE_DEVICE=cpu runs on CPU on purpose."""
    if not given or device.type != "cpu":
        return
    if NVIDIA_DRIVER.exists():
        # a new venv: pip counts 2.13.0+cpu as 2.13.0 and would keep the build installed
        why = (f"built for CUDA {torch.version.cuda}: is the NVIDIA driver older than that build needs? "
               "Install a build for the driver: rm -rf .venv && make install "
               "TORCH_INDEX=https://download.pytorch.org/whl/cu126 (README)"
               if torch.version.cuda else
               "a CPU-only build: install the CUDA build: rm -rf .venv && make install (README)")
        raise RuntimeError(f"this job was given GPU(s) {given} but torch {torch.__version__} cannot use them "
                           f"({why}), or set ALIGNPRUNE_DEVICE=cpu to run on CPU")
    logging.warning("GPU(s) %s given, but torch %s (CUDA %s) finds no usable GPU and no NVIDIA driver is "
                    "loaded: running on CPU", given, torch.__version__, torch.version.cuda)


def has_kernels_for(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``: "sm_80"
    binaries, "compute_120" PTX) runs on a GPU of compute ``capability``: a binary of the same
    major version and no higher minor one, or PTX of no higher version (compiled when loaded).
    An arch-specific one ("sm_90a", "compute_90a") runs on its own capability alone, a
    family-specific one ("sm_100f") as a binary (same major, no higher minor)."""
    for arch in arch_list:
        kind, _, version = arch.partition("_")
        digits = version.rstrip("af")
        suffix = version[len(digits):]
        if kind not in ("sm", "compute") or not digits.isdigit() or len(suffix) > 1:
            continue
        built = divmod(int(digits), 10)
        if suffix == "a":
            runs = built == capability
        elif kind == "sm" or suffix == "f":  # same major, no higher minor
            runs = built[0] == capability[0] and built[1] <= capability[1]
        else:  # PTX: compiled for any newer GPU when loaded
            runs = built <= capability
        if runs:
            return True
    return False


def _refuse_a_gpu_without_kernels(device: torch.device) -> None:
    """A GPU older than the torch build supports (a V100 under the CUDA 13 build, which starts at
    Turing) is seen by CUDA, so the job would start and fail at its first kernel with "no kernel
    image is available", and be retried: stop before, saying which build it needs."""
    arch_list = torch.cuda.get_arch_list()
    if not arch_list or torch.version.hip:  # no CUDA build (ROCm lists gfx targets): not checked here
        return
    capability = torch.cuda.get_device_capability(device)
    if has_kernels_for(capability, arch_list):
        return
    raise RuntimeError(
        f"the GPU {torch.cuda.get_device_name(device)} (compute capability {capability[0]}.{capability[1]}) has no "
        f"kernels in torch {torch.__version__} (CUDA {torch.version.cuda}: {' '.join(arch_list)}). GPUs older "
        "than Turing need the CUDA 12.6 build: rm -rf .venv && make install "
        "TORCH_INDEX=https://download.pytorch.org/whl/cu126 (README); or set ALIGNPRUNE_DEVICE=cpu to run on CPU"
    )


@contextmanager
def rule_job(snakemake):
    """Send logging, warnings and progress bars to ``snakemake.log[0]``; yield the torch device.

    On failure the traceback goes to the log and, after the streams are
    restored, to Snakemake's own output too. SIGTERM (SLURM's time limit or preemption, a
    scheduler's cancel) ends the job as an exception, so that temporary folders of unfinished
    saves are removed (io.atomic_path) instead of left beside the output.
    """
    torch.set_num_threads(snakemake.threads)
    # the tokenizers' Rust thread pool reads neither torch's setting nor the OMP_* variables
    # Snakemake sets: without this a tokenize job would take every core of the machine
    os.environ.setdefault("RAYON_NUM_THREADS", str(snakemake.threads))
    with open(snakemake.log[0], "w", buffering=1) as stream, _terminate_as_exit():
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = stream
        logging.basicConfig(
            stream=stream,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
        quiet_libraries()
        requested = os.environ.get("ALIGNPRUNE_DEVICE") or None  # set but empty: not set
        if not requested and getattr(snakemake, "config", {}).get("gpus_per_job") == 0:
            requested = "cpu"  # a CPU-only run (the demo): on CPU where a GPU is seen too, as calibrated
        # a job holding units of the gpu resource takes that many free GPUs of the machine (before
        # CUDA starts); ALIGNPRUNE_DEVICE=cpu or cuda:N is used as it is, and plain cuda still claims
        units = int(getattr(snakemake.resources, "gpu", 0))
        gpus = units if requested in (None, "cuda") else 0
        try:
            with gpu_job(gpus) as claimed:
                device = pick_device(requested)
                if requested is None:
                    _refuse_an_unusable_gpu(_given_gpus(claimed, units), device)
                if device.type == "cuda":
                    _refuse_a_gpu_without_kernels(device)
                allow_tf32(device)
                logging.info("rule %s on %s with %d threads%s", snakemake.rule, device, snakemake.threads,
                             f", GPU(s) {','.join(claimed)}" if claimed else "")
                yield device
        except BaseException:
            logging.exception("job failed")
            raise
        finally:
            sys.stdout, sys.stderr = saved
