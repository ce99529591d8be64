"""Stage 4: accuracy and measured sparsity of one model on every split and language of its task,
one JSON each, with one load of the model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from .. import code_version, hub, modeling, tokens
from ..evaluate import accuracy
from ..io import write_json
from ..tasks import task_spec
from ..model_key import ModelKey

log = logging.getLogger(__name__)


class EvalFile(NamedTuple):
    """One evaluation of a model: a split of a language, its token file and its JSON file."""

    split: str
    lang: str
    token_file: str | Path
    out_file: str | Path


def evaluate_model(
    *,
    key: ModelKey,
    lang: str,
    split: str,
    model_dir: str | Path,
    tokenizer_dir: str | Path,
    token_file: str | Path,
    out_file: str | Path,
    batch_size: int,
    max_length: int,
    prunable: dict,
    device: torch.device,
) -> dict:
    """Accuracy, example count and measured sparsity of one model on one split of one language."""
    return evaluate_model_files(
        key=key, model_dir=model_dir, tokenizer_dir=tokenizer_dir,
        files=[EvalFile(split, lang, token_file, out_file)], batch_size=batch_size, max_length=max_length,
        prunable=prunable, device=device,
    )[0]


def evaluate_model_files(
    *,
    key: ModelKey,
    model_dir: str | Path,
    tokenizer_dir: str | Path,
    files: Sequence[EvalFile],
    batch_size: int,
    max_length: int,
    prunable: dict,
    device: torch.device,
) -> list[dict]:
    """``evaluate_model`` on every (split, language) of ``files`` with one load of the model.

    Every token file is read and checked (made by ``tokenizer_dir``'s tokenizer) before the
    model loads; each JSON is written atomically as soon as its evaluation ends, so a failure
    leaves whole files only.
    """
    spec = task_spec(key.task)
    splits = [tokens.read_tokens(file.token_file, tokenizer_dir, max_length=max_length, num_labels=spec.num_labels)
              for file in files]
    model = modeling.load_classifier(model_dir).to(device)
    names = modeling.prunable_names(model, **prunable)
    # the weights do not change between evaluations: measured once
    sparsity = {k: v for k, v in modeling.measure_sparsity(model, names).items() if k.startswith("sparsity")}
    pretrained = hub.provenance(tokenizer_dir)  # the pretrained model's source and commit: read once
    results = []
    for file, (encoded, pad_id) in zip(files, splits):
        # the code that made the model, its token file, and evaluates it
        code = code_version.evaluation_field(model_dir, extra=tokens.code_of(file.token_file))
        result = {
            **key.record(),
            "split": file.split,
            "language": file.lang,
            **accuracy(model, encoded, batch_size=batch_size, pad_id=pad_id, device=device),
            **sparsity,
            **pretrained,
            **hub.data_provenance(file.token_file),  # the data's source and commit
            **code,
        }
        write_json(file.out_file, result)
        log.info("%s %s: accuracy %.4f (%d of %d)", file.split, file.lang, result["accuracy"],
                 result["correct"], result["n_examples"])
        results.append(result)
    return results
