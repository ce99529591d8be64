"""Stage 2: dense fine-tuning of the pretrained model on the training language, with model
selection on its dev split only."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import modeling, tokens
from ..tasks import task_spec
from ..train import stable_seed, train
from .common import checkpointer, load_pair, remove_checkpoints, reporting, train_settings


def finetune(
    *,
    task: str,
    seed: int,
    pretrained_dir: str | Path,
    train_file: str | Path,
    dev_file: str | Path,
    out_dir: str | Path,
    settings: dict,
    max_length: int,
    prunable: dict,
    device: torch.device,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune the pretrained model on the training language; checkpoints in ``checkpoint_dir``.
    ``train_file``, ``dev_file``: token files of the pretrained model's tokenizer;
    ``settings``: the validated ``finetune`` config section."""
    spec = task_spec(task)
    train_data, dev_data, pad_id = load_pair(pretrained_dir, train_file, dev_file, spec.num_labels, max_length)
    torch.manual_seed(seed)  # the classification head is initialised from this
    model = modeling.load_classifier(pretrained_dir, num_labels=spec.num_labels)
    # The first job that loads the model checks what the config says about it, before training.
    modeling.check_max_length(model, max_length)
    modeling.prunable_names(model, **prunable)
    steps = finetune_steps(settings, len(train_data))
    run = train_settings(settings, max_steps=steps, seed=stable_seed(task, seed, "dense"))
    checkpoint = checkpointer(checkpoint_dir, "finetune", settings, run, pretrained_dir, train_file, dev_file,
                              device=device)
    history = train(
        model, train_data, dev_data, run,
        pad_id=pad_id, device=device, progress=progress, checkpoint=checkpoint,
        **reporting(settings, "finetune"),
    )
    modeling.save_model(model, out_dir, reports={modeling.TRAINING_FILE: history}, parents=(pretrained_dir,),
                        code=(checkpoint.code if checkpoint else set()) | tokens.code_of(train_file, dev_file))
    remove_checkpoints(checkpoint_dir)
    return history


def finetune_steps(settings: dict, train_rows: int) -> int:
    """Optimizer steps of the dense fine-tuning: ``epochs`` x the training rows in batches, i.e.
    ``epochs`` passes over the rows. An epoch's batches drop its last partial batch
    (batching.epoch_batches), so the steps run a few batches into one more epoch (XNLI at 5
    epochs: 61,360 steps, 5 of a sixth epoch): the examples seen are ``epochs`` x the rows.
    Left so: counting whole batches per epoch instead would change every model's step count."""
    return math.ceil(settings["epochs"] * train_rows / settings["batch_size"])
