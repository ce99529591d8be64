"""What the training stages (finetune, prune) share: settings, seeds, data, checkpoints, reporting.

A ``section`` is a validated ``finetune`` or ``retrain`` config section (every key the schema
gives a default is there), as a rule script passes it (alignprune.rule_runtime.training_settings).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from .. import tokens
from ..checkpoint import Checkpointer, delete, file_identity
from ..evaluate import numerics
from ..train import TrainSettings


def train_settings(
    section: dict, *, max_steps: int, seed: int, eval_every: int | None = None, select_from: int = 0
) -> TrainSettings:
    """TrainSettings from a ``finetune`` or ``retrain`` config section."""
    return TrainSettings(
        learning_rate=section["learning_rate"],
        batch_size=section["batch_size"],
        max_steps=max_steps,
        eval_every=eval_every or section["eval_every"],
        warmup_ratio=section["warmup_ratio"],
        weight_decay=section["weight_decay"],
        group_by_length=section["group_by_length"],
        seed=seed,
        select_from=select_from,
    )


def load_pair(tokenizer_dir, train_file, dev_file, num_labels: int, max_length: int):
    """The training and dev token files of a training job (checked against ``tokenizer_dir``'s
    tokenizer) and their padding id."""
    train_data, pad_id = tokens.read_tokens(train_file, tokenizer_dir, max_length=max_length, num_labels=num_labels)
    dev_data, _ = tokens.read_tokens(dev_file, tokenizer_dir, max_length=max_length, num_labels=num_labels)
    return train_data, dev_data, pad_id


def checkpointer(folder, phase: str, section: dict, settings: TrainSettings, *inputs, device: torch.device,
                 job=None, save_at_end=False):
    """Checkpoints of one training phase of a job, valid only for these settings, input files and
    the device's arithmetic (bf16 on a GPU, float32 on CPU)."""
    if folder is None:
        return None
    identity = {"settings": asdict(settings), "job": job or {}, "inputs": file_identity(*inputs),
                "numerics": numerics(device)}
    return Checkpointer(Path(folder) / phase, section["checkpoint_every"], identity, save_at_end)


def reporting(section: dict, phase: str) -> dict:
    """train()'s reporting arguments from a finetune or retrain section: a log line every
    ``log_every`` steps; TensorBoard events of the phase under ``tensorboard_dir``."""
    # Not a config key: the rule script adds it only when the config's tensorboard is on, so
    # its absence means no TensorBoard (it names the job's own folder, known only to the rule).
    folder = section.get("tensorboard_dir")
    return {"log_every": section["log_every"], "tensorboard_dir": None if folder is None else Path(folder) / phase}


def remove_checkpoints(folder) -> None:
    """The job's outputs are saved: its checkpoints are no longer needed."""
    if folder is not None:
        delete(folder)
