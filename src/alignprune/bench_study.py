"""What the full study costs: its optimizer steps under each schedule, and how long Snakemake
takes to plan it."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .jobs import finetune_steps

# English training rows of the Hub data sets (facebook/xnli en, google-research-datasets/paws-x en)
TRAIN_ROWS = {"xnli": 392_702, "pawsx": 49_401}


@dataclass
class StudySteps:
    fine_tuning: int
    ladder: int  # retraining, each target from the previous one
    independent: int  # retraining, each target from the dense model with retrain.steps
    independent_same_budget: int  # each target from dense with the ladder's steps up to it

    @property
    def ratio(self) -> float:
        return self.ladder / self.independent_same_budget


def study_steps(config: dict) -> StudySteps:
    """Optimizer steps of every training job of ``config`` (a loaded, checked config)."""
    tasks = [task for task, spec in config["tasks"].items() if spec["enabled"]]
    methods = [name for name, spec in config["methods"].items() if spec["enabled"]]
    seeds, targets, steps = len(config["seeds"]), len(config["sparsities"]), config["retrain"]["steps"]
    fine_tuning = seeds * sum(finetune_steps(config["finetune"], TRAIN_ROWS[task]) for task in tasks)
    chains = len(tasks) * len(methods) * seeds
    return StudySteps(
        fine_tuning=fine_tuning,
        ladder=chains * targets * steps,
        independent=chains * targets * steps,
        # the k-th target of a ladder has been retrained k x steps since the dense model
        independent_same_budget=chains * steps * targets * (targets + 1) // 2,
    )


def plan_seconds(root: Path, repeats: int = 3, targets: tuple[str, ...] = (),
                 configfiles: tuple[str, ...] = ("config.yaml",)) -> tuple[float, int]:
    """Median seconds of ``snakemake -n`` in ``root`` on ``configfiles`` (merged in order; default
    target: the whole study), and the number of jobs planned."""
    seconds, jobs = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        # targets before --quiet, whose values would swallow them
        command = [sys.executable, "-m", "snakemake", "-n", *targets, "--configfile", *configfiles, "--quiet", "rules"]
        out = subprocess.run(command, cwd=root, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"snakemake -n failed in {root}:\n{out.stderr[-2000:]}")
        seconds.append(time.perf_counter() - start)
        jobs = int(re.search(r"^total\s+(\d+)", out.stdout + out.stderr, re.MULTILINE).group(1))
    return statistics.median(seconds), jobs
