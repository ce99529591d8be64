"""What every rule script does first: log to the rule's log file, use the rule's threads."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

import torch

from .evaluate import allow_tf32
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
        try:
            device = pick_device(os.environ.get("ALIGNPRUNE_DEVICE"))
            allow_tf32(device)
            logging.info("rule %s on %s with %d threads", snakemake.rule, device, snakemake.threads)
            yield device
        except BaseException:
            logging.exception("job failed")
            raise
        finally:
            sys.stdout, sys.stderr = saved
