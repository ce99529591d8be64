"""Stage 5 (beyond the paper): how aligned a pruned model stays, in its weights (with the dense
model's) and in each language's sentence representations (with English's)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Sequence

import pandas as pd
import torch

from .. import alignment, code_version, modeling, tokens
from ..io import atomic_path, read_json, write_json
from ..tasks import task_spec
from ..model_key import ModelKey

log = logging.getLogger(__name__)


def measure_weight_alignment(
    *, key: ModelKey, model_dir, dense_dir, out_file, prunable: dict
) -> pd.DataFrame:
    """Per prunable matrix of a pruned model: mean unit cosine with its dense model, and the kept
    weights' cosine and relative change (alignment.weight_alignment; CSV)."""
    pruned = modeling.load_prunable_weights(model_dir, **prunable)
    dense = modeling.load_prunable_weights(dense_dir, **prunable)
    missing = [name for name in pruned if name not in dense]
    if missing:
        raise ValueError(f"{dense_dir} has no {missing[0]} ({len(missing)} prunable weights missing): "
                         f"is it the dense model {model_dir} was pruned from?")
    table = alignment.weight_alignment(pruned, dense, list(pruned))
    table.insert(0, "layer", table["parameter"].str.extract(r"layer\.(\d+)\.", expand=False).astype(float))
    # the retraining step model selection kept, and the kept weights' measures after the rung's
    # last step (the prune job's, train()'s measure_last): the same step for every method of a
    # rung, where the saved model's step differs between methods (the findings' claim 4 reads them)
    training = Path(model_dir) / modeling.TRAINING_FILE
    history = read_json(training) if training.exists() else {}
    table["kept_step"] = history.get("best_step")
    last = history.get("last_step") or {}
    measured = last.get("matrices", {})
    table["last_step"] = last.get("step")
    for column in ("kept_cosine", "kept_change"):
        values = [measured.get(name, {}).get(column) for name in table["parameter"]]
        table[f"last_{column}"] = pd.Series(values, index=table.index, dtype=float)  # None (nothing kept): NaN
    for column, value in reversed(key.record().items()):
        table.insert(0, column, value)
    # the code that made both models and measured them (alignprune.code_version), as eval files carry
    table["code"] = code_version.evaluation_field(model_dir, dense_dir)["code"]
    with atomic_path(out_file) as tmp:
        table.to_csv(tmp, index=False)
    return table


class LanguageFile(NamedTuple):
    """One language of a representation-alignment job: its token file and its JSON file."""

    lang: str
    token_file: str | Path
    out_file: str | Path


def measure_representation_alignment(
    *,
    key: ModelKey,
    split: str,
    lang: str,
    reference_lang: str,
    model_dir,
    tokenizer_dir,
    reference_file,
    token_file,
    out_file,
    max_examples: int,
    batch_size: int,
    max_length: int,
    device: torch.device,
) -> dict:
    """Per layer: how close a language's sentence representations are to English's on the same rows.

    A test set whose rows cannot be paired with English's is written as
    ``parallel: false`` with the reason, and no numbers.
    """
    return measure_representation_alignment_files(
        key=key, split=split, reference_lang=reference_lang,
        model_dir=model_dir, tokenizer_dir=tokenizer_dir, reference_file=reference_file,
        files=[LanguageFile(lang, token_file, out_file)], max_examples=max_examples,
        batch_size=batch_size, max_length=max_length, device=device,
    )[0]


def measure_representation_alignment_files(
    *,
    key: ModelKey,
    split: str,
    reference_lang: str,
    model_dir,
    tokenizer_dir,
    reference_file,
    files: Sequence[LanguageFile],
    max_examples: int,
    batch_size: int,
    max_length: int,
    device: torch.device,
) -> list[dict]:
    """``measure_representation_alignment`` for every language of ``files``: the model loads and
    English is encoded once (the same first rows serve every language).

    ``reference_file`` and each language's file are token files of ``tokenizer_dir``'s tokenizer.
    Every token file is read and checked first; each JSON is written atomically as soon as its
    language is measured. Returns the records written.
    """
    spec = task_spec(key.task)
    read = {"tokenizer_dir": tokenizer_dir, "max_length": max_length, "num_labels": spec.num_labels}
    english, pad_id = tokens.read_tokens(reference_file, **read)
    others = [tokens.read_tokens(file.token_file, **read)[0] for file in files]
    model = reference = None
    records = []
    english_code = tokens.code_of(reference_file)
    for file, other in zip(files, others):
        # the model's code, this job's and that of the two token files compared
        code = code_version.evaluation_field(model_dir, extra=english_code | tokens.code_of(file.token_file))
        record = {**key.record(), "split": split, "language": file.lang,
                  "reference_language": reference_lang, **code}
        reason = alignment.not_parallel_reason(english.labels, other.labels, file.lang)
        if reason is not None:
            log.warning("%s %s not parallel: %s", split, file.lang, reason)
            record |= {"parallel": False, "reason": reason, "n_examples": 0, "layers": []}
            write_json(file.out_file, record)
            records.append(record)
            continue
        if model is None:  # only when some language is parallel
            model = modeling.load_classifier(model_dir).to(device)
        pooled = {"batch_size": batch_size, "pad_id": pad_id, "device": device}
        # the first rows: the same examples in both languages
        if reference is None:
            reference = alignment.pooled_states(model, english.head(max_examples), **pooled)
        other = other.head(max_examples)
        layers = alignment.representation_alignment(reference, alignment.pooled_states(model, other, **pooled))
        record |= {"parallel": True, "reason": None, "n_examples": len(other), "layers": layers}
        write_json(file.out_file, record)
        log.info("%s %s: %d rows paired with %s, %d layers measured", split, file.lang, len(other),
                 reference_lang, len(layers))
        records.append(record)
    return records

