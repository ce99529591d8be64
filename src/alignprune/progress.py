"""What a running training job tells a person: a plain log line every N steps, a live bar on a
terminal only, and optionally TensorBoard scalars.

A line reads (between the logging prefix and the end)::

    step 500/938  loss 0.4955  lr 1.66e-04  1412.3 examples/s  elapsed 0:00:45  ETA 0:00:39  dev accuracy 0.8140

``loss`` is the mean task loss of the steps since the previous line, ``examples/s`` their
throughput without the time spent evaluating and checkpointing, ``ETA`` the remaining steps
at this process's mean time per step (evaluations included), ``elapsed`` counts the time
before a resume too. ``dev accuracy`` ends the lines of evaluation steps.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger("alignprune.train")


def duration(seconds: float) -> str:
    """H:MM:SS (and days beyond 24 hours) of a number of seconds."""
    return str(datetime.timedelta(seconds=round(seconds)))


def summary_writer(folder: str | Path, purge_step: int | None = None):
    """A TensorBoard SummaryWriter writing event files into ``folder``.

    ``purge_step``: a resumed run hides the events an earlier attempt wrote at or after this step.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch's writer needs the tensorboard package
        raise ImportError(
            "tensorboard: true needs the tensorboard package: pip install -e '.[tensorboard]' "
            "(under --sdm conda: add tensorboard==2.21.0 to envs/pipeline.yaml) "
            f"(or set tensorboard: false) ({err})"
        ) from None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


class TrainingProgress:
    """Progress of one training run from ``start_step`` to ``total_steps``.

    ``every``: steps between log lines (evaluation steps and the last step write one too).
    ``bar``: draw a tqdm bar, which tqdm does only when stderr is a terminal (a job's log
    file gets the plain lines alone). ``elapsed``: seconds the run had taken before a resume.
    """

    def __init__(
        self,
        *,
        total_steps: int,
        start_step: int,
        batch_size: int,
        every: int,
        elapsed: float = 0.0,
        bar: bool = True,
        tensorboard_dir: str | Path | None = None,
        desc: str = "train",
    ):
        if every < 1:
            raise ValueError(f"log_every = {every}: give a number of steps >= 1")
        self.total, self.every, self.batch_size = total_steps, every, batch_size
        now = time.perf_counter()
        self.started = now - elapsed
        self.process_start, self.process_step = now, start_step
        self.window_start, self.window_step, self.paused_seconds = now, start_step, 0.0
        # disable=None: tqdm draws only when its stream (stderr) is a terminal
        self.bar = tqdm(total=total_steps, initial=start_step, disable=None if bar else True, mininterval=5, desc=desc)
        self.writer = None
        if tensorboard_dir is not None:
            self.writer = summary_writer(tensorboard_dir, purge_step=start_step + 1 if start_step else None)

    @property
    def last_step(self) -> int:
        """The step of the latest line (the start step before the first one)."""
        return self.window_step

    def update(self) -> None:
        """One optimizer step done."""
        self.bar.update()

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total

    @contextmanager
    def paused(self):
        """Time spent inside (evaluation, checkpointing) does not count in examples/s."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.paused_seconds += time.perf_counter() - start

    def line(self, step: int, *, loss: float, lr: float, penalty: float | None = None,
             dev_accuracy: float | None = None) -> str:
        """Log one line for ``step``; ``loss`` (and ``penalty``) are means over the steps since the last line."""
        now = time.perf_counter()
        steps = step - self.window_step
        seconds = now - self.window_start - self.paused_seconds
        throughput = steps * self.batch_size / seconds if seconds > 0 and steps > 0 else math.nan
        done_here = step - self.process_step
        eta = (now - self.process_start) / done_here * (self.total - step) if done_here > 0 else math.nan
        parts = [f"step {step}/{self.total}", f"loss {loss:.4f}"]
        if penalty is not None:
            parts.append(f"penalty {penalty:.4g}")
        parts += [
            f"lr {lr:.2e}",
            f"{throughput:.1f} examples/s",
            f"elapsed {duration(now - self.started)}",
            f"ETA {duration(eta) if math.isfinite(eta) else '?'}",
        ]
        if dev_accuracy is not None:
            parts.append(f"dev accuracy {dev_accuracy:.4f}")
            self.bar.set_postfix(loss=f"{loss:.4f}", dev=f"{dev_accuracy:.4f}")
        text = "  ".join(parts)
        log.info(text)
        if self.writer is not None:
            self._scalars(step, loss=loss, lr=lr, penalty=penalty, throughput=throughput, dev_accuracy=dev_accuracy)
        self.window_start, self.window_step, self.paused_seconds = now, step, 0.0
        return text

    def _scalars(self, step, *, loss, lr, penalty, throughput, dev_accuracy) -> None:
        scalars = {"train/loss": loss, "train/learning_rate": lr, "train/examples_per_second": throughput,
                   "train/penalty": penalty, "dev/accuracy": dev_accuracy}
        for tag, value in scalars.items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
