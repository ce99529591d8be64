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
from .gpu_slots import gpu_job
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


def _refuse_an_unusable_gpu(claimed: list[str], device: torch.device) -> None:
    """A job given GPUs (CUDA_VISIBLE_DEVICES, as SLURM sets it) on a machine with an NVIDIA
    driver, by a CUDA build of torch that cannot use them (the driver older than the build
    needs), stops here: on CPU it would grind until its time limit, and be retried. Without a
    driver (a CPU machine whose environment names GPUs) or with a CPU-only build of torch, the
    job runs on CPU, with a warning."""
    if not claimed or device.type != "cpu":
        return
    if torch.version.cuda and NVIDIA_DRIVER.exists():
        raise RuntimeError(
            f"this job was given GPU(s) {','.join(claimed)} but torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda}) cannot use them: is the NVIDIA driver older than that build needs? Install "
            "a torch build for the driver (make install TORCH_INDEX=https://download.pytorch.org/whl/cu126, "
            "README), or set ALIGNPRUNE_DEVICE=cpu to run on CPU"
        )
    logging.warning("GPU(s) %s given, but torch %s (CUDA %s) finds no usable GPU and no NVIDIA driver is "
                    "loaded: running on CPU", ",".join(claimed), torch.__version__, torch.version.cuda)


@contextmanager
def rule_job(snakemake):
    """Send logging, warnings and progress bars to ``snakemake.log[0]``; yield the torch device.

    On failure the traceback goes to the log and, after the streams are
    restored, to Snakemake's own output too. SIGTERM (SLURM's time limit or preemption, a
    scheduler's cancel) ends the job as an exception, so that temporary folders of unfinished
    saves are removed (io.atomic_path) instead of left beside the output.
    """
    torch.set_num_threads(snakemake.threads)
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
        requested = os.environ.get("ALIGNPRUNE_DEVICE")
        # a job holding units of the gpu resource takes that many free GPUs of the machine
        # (before CUDA starts; an explicit ALIGNPRUNE_DEVICE is used as it is)
        gpus = 0 if requested else int(getattr(snakemake.resources, "gpu", 0))
        try:
            with gpu_job(gpus) as claimed:
                device = pick_device(requested)
                _refuse_an_unusable_gpu(claimed, device)
                allow_tf32(device)
                logging.info("rule %s on %s with %d threads%s", snakemake.rule, device, snakemake.threads,
                             f", GPU(s) {','.join(claimed)}" if claimed else "")
                yield device
        except BaseException:
            logging.exception("job failed")
            raise
        finally:
            sys.stdout, sys.stderr = saved
