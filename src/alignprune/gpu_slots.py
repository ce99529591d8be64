"""Which GPU a job runs on when several jobs share a multi-GPU machine.

``snakemake --cores 32 --resources gpu=4`` starts up to four GPU jobs at once but does not
tell a job which GPU is its own. Each job claims free devices through one lock file per
device (an exclusive ``flock``, released by the kernel when the job ends, also when it is
killed: no stale locks) and narrows CUDA_VISIBLE_DEVICES to them before CUDA starts.
The locks live in a folder on the machine's own disk (``/tmp``), so jobs on different
cluster nodes never see each other's locks.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_DIR_VARIABLE = "ALIGNPRUNE_GPU_LOCKS"


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir()) / f"alignprune-gpus-{os.getuid()}")


def visible_devices() -> list[str]:
    """The GPUs this job may use: CUDA_VISIBLE_DEVICES when set (SLURM sets it to the job's
    allocation), else every GPU of the machine."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        devices = []
        for device in (entry.strip() for entry in listed.split(",")):
            if not device or device.startswith("-"):  # CUDA stops at an invalid entry: -1 hides every GPU
                break
            devices.append(device)
        return devices
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


@contextmanager
def claimed_devices(count: int, devices: list[str], lock_dir: str | Path, *, poll_seconds: float = 2.0,
                    timeout_seconds: float | None = None) -> Iterator[list[str]]:
    """Hold ``count`` of ``devices`` for the duration of the block; wait while fewer are free.

    Devices are tried in order, so a lone job takes the first one. Raises TimeoutError after
    ``timeout_seconds`` (None: wait for ever) and ValueError if ``count`` exceeds ``devices``.
    """
    if count > len(devices):
        raise ValueError(f"a job asks for {count} GPUs but only {len(devices)} are visible ({','.join(devices)}); "
                         "lower gpus_per_job in the config")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    held: dict[str, int] = {}
    try:
        while True:
            for device in devices:
                if len(held) == count:
                    break
                if device not in held and (handle := _try_lock(lock_dir / f"gpu-{device}.lock")) is not None:
                    held[device] = handle
            if len(held) == count:
                break
            # release what we hold while waiting: two jobs each holding half never deadlock
            _release(held)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no {count} free GPU(s) among {','.join(devices)} within {timeout_seconds} s "
                                   f"(locks in {lock_dir})")
            time.sleep(poll_seconds)
        yield list(held)
    finally:
        _release(held)


def _try_lock(path: Path) -> int | None:
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    os.ftruncate(handle, 0)
    os.write(handle, f"{os.getpid()}\n".encode())  # who holds it, for a curious reader
    return handle


def _release(held: dict[str, int]) -> None:
    for handle in held.values():
        os.close(handle)  # closing the descriptor drops the flock
    held.clear()


@contextmanager
def gpu_job(count: int, *, lock_dir: str | Path | None = None, **wait) -> Iterator[list[str]]:
    """For a job that holds ``count`` units of Snakemake's ``gpu`` resource: claim that many of
    the visible GPUs and set CUDA_VISIBLE_DEVICES to them (before CUDA starts in this process).
    With one visible GPU or none, or count 0, nothing is locked or changed."""
    devices = visible_devices() if count > 0 else []
    if count == 0 or len(devices) == 0 or (len(devices) == 1 and count == 1):
        yield devices[:count]  # no GPU (a CPU machine: the job runs on CPU) or the only one
        return
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    with claimed_devices(count, devices, lock_dir or default_lock_dir(), **wait) as mine:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
        try:
            yield mine
        finally:
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved
