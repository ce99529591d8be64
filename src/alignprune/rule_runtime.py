"""What every rule script does first: log to the rule's log file, use the rule's threads."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

import torch

from .evaluate import allow_tf32
from .gpu_slots import gpu_job
from .modeling import pick_device


@contextmanager
def rule_job(snakemake):
    """Send logging, warnings and progress bars to ``snakemake.log[0]``; yield the torch device.

    On failure the traceback goes to the log and, after the streams are
    restored, to Snakemake's own output too.
    """
    torch.set_num_threads(snakemake.threads)
    with open(snakemake.log[0], "w", buffering=1) as stream:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = stream
        logging.basicConfig(
            stream=stream,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
        requested = os.environ.get("ALIGNPRUNE_DEVICE")
        # a job holding units of the gpu resource takes that many free GPUs of the machine
        # (before CUDA starts; an explicit ALIGNPRUNE_DEVICE is used as it is)
        gpus = 0 if requested else int(getattr(snakemake.resources, "gpu", 0))
        try:
            with gpu_job(gpus) as claimed:
                device = pick_device(requested)
                allow_tf32(device)
                logging.info("rule %s on %s with %d threads%s", snakemake.rule, device, snakemake.threads,
                             f", GPU(s) {','.join(claimed)}" if claimed else "")
                yield device
        except BaseException:
            logging.exception("job failed")
            raise
        finally:
            sys.stdout, sys.stderr = saved
