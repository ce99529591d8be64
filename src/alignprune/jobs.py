"""One function per workflow stage, with explicit arguments (the rule scripts call these)."""

from __future__ import annotations

import copy
import logging
import math
import shutil
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple, Sequence

import pandas as pd
import torch
from safetensors.torch import load_file

from . import alignment, data, hub, modeling
from .checkpoint import Checkpointer, file_identity
from .criteria import prunes
from .evaluate import accuracy
from .io import atomic_path, write_json
from .pruning import apply_masks, compute_masks, cubic_schedule, mask_sparsity
from .regularizers import AlignmentPenalty
from .tasks import task_spec
from .train import TrainSettings, gradient_saliency, train

log = logging.getLogger(__name__)


def stable_seed(*parts) -> int:
    """A seed derived from names and numbers, the same in every process and Python version."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def _train_settings(
    settings: dict, *, max_steps: int, seed: int, eval_every: int | None = None, select_from: int = 0
) -> TrainSettings:
    """TrainSettings from a ``finetune`` or ``retrain`` config section."""
    return TrainSettings(
        learning_rate=settings["learning_rate"],
        batch_size=settings["batch_size"],
        max_steps=max_steps,
        eval_every=eval_every or settings["eval_every"],
        warmup_ratio=settings.get("warmup_ratio", 0.0),
        weight_decay=settings.get("weight_decay", 0.0),
        group_by_length=settings.get("group_by_length", False),
        seed=seed,
        select_from=select_from,
    )


def _load_pair(tokenizer, train_file, dev_file, num_labels, max_length):
    train_data = data.encode(tokenizer, data.read_split(train_file, num_labels), max_length)
    dev_data = data.encode(tokenizer, data.read_split(dev_file, num_labels), max_length)
    return train_data, dev_data


def download_model(model_id: str, out_dir: str | Path, revision: str = "main") -> dict:
    """Pretrained masked-LM weights and tokenizer in save_pretrained layout, with the record of
    where they came from (hub.PROVENANCE_FILE): the commit ``revision`` resolved to, or a local
    folder's path and digest. Returns that record."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    # model_id: a Hub id or a local save_pretrained folder
    local = Path(model_id).is_dir()
    with hub.downloading(f"the model {model_id}", from_hub=not local), \
            atomic_path(out_dir, directory=True) as tmp:
        if local:
            folder = Path(model_id)
            files = [f for f in folder.iterdir() if f.is_file() and any(f.match(p) for p in hub.MODEL_FILES)]
            record = hub.local_record(folder, files)
        else:
            folder, record = hub.snapshot(model_id, revision, allow_patterns=hub.MODEL_FILES)
        AutoTokenizer.from_pretrained(folder).save_pretrained(tmp)
        AutoModelForMaskedLM.from_pretrained(folder, use_safetensors=True).save_pretrained(tmp)
        hub.write_model_record(tmp, record)
    log.info("model %s: %s", model_id, record)
    return record


def download_split(task: str, lang: str, split: str, source: dict, out_file: str | Path) -> dict:
    spec = task_spec(task)
    where = f"{task}/{lang}/{split} from {source.get('local') or source['hub']}"
    with hub.downloading(where, from_hub=source.get("local") is None):
        files, record = data.raw_split_files(spec, lang, split, source)
    raw = data.read_raw_files(files)
    try:
        frame, report = data.normalise(spec, raw)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if frame.empty:
        raise ValueError(f"{where}: no usable rows out of {report.rows_in}")
    data.write_split(frame, out_file, provenance=record)
    counts = {
        "rows_in": report.rows_in,
        "dropped_bad_label": report.dropped_bad_label,
        "dropped_placeholder": report.dropped_placeholder,
        "rows_out": report.rows_out,
    }
    log.info("%s/%s/%s: %s from %s", task, lang, split, counts, record)
    return counts


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
    """Fine-tune the pretrained model on the training language; checkpoints in ``checkpoint_dir``."""
    spec = task_spec(task)
    tokenizer = modeling.load_tokenizer(pretrained_dir)
    train_data, dev_data = _load_pair(tokenizer, train_file, dev_file, spec.num_labels, max_length)
    torch.manual_seed(seed)  # the classification head is initialised from this
    model = modeling.load_classifier(pretrained_dir, num_labels=spec.num_labels)
    # The first job that loads the model checks what the config says about it, before training.
    modeling.check_max_length(model, max_length)
    modeling.prunable_names(model, **prunable)
    train_settings = _train_settings(settings, max_steps=finetune_steps(settings, len(train_data)), seed=stable_seed(task, seed, "dense"))
    checkpoint = _checkpointer(
        checkpoint_dir, "finetune", settings, train_settings, pretrained_dir, train_file, dev_file
    )
    history = train(
        model, train_data, dev_data, train_settings,
        pad_id=tokenizer.pad_token_id, device=device, progress=progress, checkpoint=checkpoint,
        **_reporting(settings, "finetune"),
    )
    modeling.save_model(model, out_dir, reports={modeling.TRAINING_FILE: history})
    _remove_checkpoints(checkpoint_dir)
    return history


def finetune_steps(settings: dict, train_rows: int) -> int:
    """Optimizer steps of the dense fine-tuning: ``epochs`` passes over the training rows."""
    return math.ceil(settings["epochs"] * train_rows / settings["batch_size"])


def _checkpointer(folder, phase: str, section: dict, settings: TrainSettings, *inputs, job=None, save_at_end=False):
    """Checkpoints of one training phase of a job, valid only for these settings and input files."""
    if folder is None:
        return None
    identity = {"settings": asdict(settings), "job": job or {}, "inputs": file_identity(*inputs)}
    return Checkpointer(Path(folder) / phase, section.get("checkpoint_every", 500), identity, save_at_end)


def _reporting(section: dict, phase: str) -> dict:
    """train()'s reporting arguments from a finetune or retrain section: a log line every
    ``log_every`` steps; TensorBoard events of the phase under ``tensorboard_dir`` (the rule
    script sets it when the config's tensorboard is on)."""
    folder = section.get("tensorboard_dir")
    return {"log_every": section.get("log_every", 100), "tensorboard_dir": None if folder is None else Path(folder) / phase}


def _remove_checkpoints(folder) -> None:
    """The job's outputs are saved: its checkpoints are no longer needed."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def prune_and_retrain(
    *,
    task: str,
    seed: int,
    method_name: str,
    method: dict,
    sparsity: float,
    start_dir: str | Path,
    reference_dir: str | Path,
    tokenizer_dir: str | Path,
    train_file: str | Path,
    dev_file: str | Path,
    out_dir: str | Path,
    settings: dict,
    max_length: int,
    prunable: dict,
    device: torch.device,
    schedule: str = "ladder",
    gradual: dict | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Prune the start model to ``sparsity``, retrain, save.

    ladder: prune once, keeping the start model's masks, then retrain. independent: start
    from the dense model and prune gradually during retraining on a cubic schedule
    (``gradual``: pruning_steps, pruning_fraction). ``method`` holds criterion, scope and
    optionally regularizer, weight, units, gradient_batches and score_steps;
    ``reference_dir`` is the unpruned model W0 a regularizer aligns to. Criterion ``none``
    (the retraining control) prunes nothing: it retrains like every method, without masks.
    """
    control = not prunes(method["criterion"])
    if control and method.get("regularizer", "none") != "none":
        raise ValueError(f"{method_name}: the retraining control (criterion none) takes no regularizer")
    spec = task_spec(task)
    tokenizer = modeling.load_tokenizer(tokenizer_dir)
    train_data, dev_data = _load_pair(tokenizer, train_file, dev_file, spec.num_labels, max_length)
    model = modeling.load_classifier(start_dir).to(device)
    names = modeling.prunable_names(model, **prunable)
    params = dict(model.named_parameters())
    previous = modeling.load_masks(start_dir)
    if previous is not None:
        if set(previous) != set(names):
            raise ValueError(f"{start_dir}: its masks cover other weights than the prunable patterns select")
        previous = {name: mask.to(device) for name, mask in previous.items()}
        if control and not all(bool(mask.all()) for mask in previous.values()):
            raise ValueError(f"{start_dir} is pruned: the retraining control starts from unpruned models only")
    # Common random numbers: the seed names the task, seed and target, not the method, so every
    # method of a rung draws the same data order and dropout, and two methods that prune the same
    # weights give identical models (a paired difference between methods is theirs alone).
    job_seed = stable_seed(task, seed, f"{sparsity:.2f}")
    pad_id = tokenizer.pad_token_id
    job = {"method": method, "sparsity": sparsity, "schedule": schedule, "gradual": gradual}
    inputs = (start_dir, reference_dir, train_file, dev_file)

    def saliency():
        return gradient_saliency(
            model, train_data, names, batches=method.get("gradient_batches", 32),
            batch_size=settings["batch_size"], pad_id=pad_id, device=device, seed=job_seed,
        )

    # the random criterion's draws: shared by every method too, but not the data order's stream
    generator = torch.Generator().manual_seed(stable_seed(job_seed, "random scores"))

    def masks_at(target: float, previous_masks, movement_scores=None):
        if control:  # no criterion sees the weights: all kept
            return {name: torch.ones_like(params[name], dtype=torch.bool) for name in names}
        return compute_masks(
            {name: params[name].detach() for name in names},
            criterion=method["criterion"],
            scope=method.get("scope", "layer"),
            sparsity=target,
            previous=previous_masks,
            generator=generator,
            gradient_saliency=saliency,
            movement_scores=movement_scores,
        )

    tensors = {}
    if schedule == "independent":
        if previous is not None:
            raise ValueError(f"the independent schedule starts from the dense model, not {start_dir}")
        if settings["steps"] == 0:
            raise ValueError("the independent schedule prunes during retraining: retrain.steps must be > 0")
        gradual = gradual or {}
        plan = cubic_schedule(
            sparsity, settings["steps"], gradual.get("pruning_steps", 10), gradual.get("pruning_fraction", 0.7)
        )
        masks = {name: torch.ones_like(params[name], dtype=torch.bool) for name in names}
        movement = {name: torch.zeros_like(params[name]) for name in names} if method["criterion"] == "movement" else None

        def prune_on_schedule(step: int, current) -> dict | None:
            if step not in plan:
                return None
            for name, mask in masks_at(plan[step], current, movement).items():
                current[name].copy_(mask)
            return {"sparsity": mask_sparsity(current)}

        retrain = _train_settings(settings, max_steps=settings["steps"], seed=job_seed, select_from=max(plan))
        history = train(
            model, train_data, dev_data, retrain,
            # the control: no masks to apply or schedule, so no masking pass per step
            pad_id=pad_id, device=device, masks=None if control else masks, progress=progress, movement=movement,
            on_step=None if control else prune_on_schedule, generators={"pruning": generator},
            checkpoint=_checkpointer(checkpoint_dir, "retrain", settings, retrain, *inputs, job=job),
            **_reporting(settings, "retrain"),
            **regularization(method, names, params, reference_dir, device),
        )
        history["pruning_steps"] = history.pop("events")
    else:
        movement = None
        if method["criterion"] == "movement":
            movement = _movement_scores(
                model, start_dir, names, train_data, dev_data, previous, method, settings,
                pad_id=pad_id, device=device, seed=job_seed, progress=progress,
                checkpoint=lambda scoring: _checkpointer(
                    checkpoint_dir, "movement_scores", settings, scoring, *inputs, job=job, save_at_end=True
                ),
            )
        masks = masks_at(sparsity, previous, movement)
        if not control:
            apply_masks(params, masks)
        before = accuracy(model, dev_data, batch_size=128, pad_id=pad_id, device=device)
        log.info("pruned to %.2f: English dev accuracy before retraining %.4f", sparsity, before["accuracy"])
        history: dict = {"history": [], "best_step": 0}
        if settings["steps"] > 0:
            if movement is not None:  # scores of this retraining decide the next target of the ladder
                tensors[modeling.MOVEMENT_FILE] = {name: torch.zeros_like(params[name]) for name in names}
            retrain = _train_settings(settings, max_steps=settings["steps"], seed=job_seed)
            history = train(
                model, train_data, dev_data, retrain,
                pad_id=pad_id, device=device, masks=None if control else masks, progress=progress,
                movement=tensors.get(modeling.MOVEMENT_FILE),
                checkpoint=_checkpointer(checkpoint_dir, "retrain", settings, retrain, *inputs, job=job),
                **_reporting(settings, "retrain"),
                **regularization(method, names, params, reference_dir, device),
            )
        history["dev_accuracy_before_retraining"] = before["accuracy"]

    measured = modeling.measure_sparsity(model, names)
    # Exact up to rounding: half a weight per layer (layer scope) or overall (global scope).
    tolerance = len(names) / measured["n_prunable"]
    # the control's target names its rung of retraining budgets; it prunes nothing
    expected = 0.0 if control else sparsity
    if abs(measured["sparsity_prunable"] - expected) > tolerance:
        raise RuntimeError(
            f"measured sparsity {measured['sparsity_prunable']:.6f} differs from {expected}"
            + (f" (retraining control at the rung of target {sparsity})" if control else " (target)")
        )
    report = {
        "target": sparsity,
        "method": method_name,
        **method,
        "mask_sparsity": mask_sparsity(masks),
        **measured,
        "layers": {name: 1.0 - masks[name].float().mean().item() for name in names},
    }
    modeling.save_model(
        model, out_dir, masks=masks, tensors=tensors,
        reports={modeling.SPARSITY_FILE: report, modeling.TRAINING_FILE: history},
    )
    _remove_checkpoints(checkpoint_dir)
    return report


def _movement_scores(
    model, start_dir, names, train_data, dev_data, previous, method, settings, *, pad_id, device, seed, progress,
    checkpoint=lambda scoring: None,
) -> dict[str, torch.Tensor]:
    """Movement scores for this target: those saved by the previous target's retraining, or,
    at the first target, scores accumulated over ``score_steps`` training steps from here.

    The first target's scoring steps train a copy: the model this rung prunes and retrains is
    the start model itself and gets ``retrain.steps`` optimizer steps, as with every other
    criterion (the scoring steps are extra compute, not extra training of the pruned model)."""
    saved = Path(start_dir) / modeling.MOVEMENT_FILE
    if saved.exists():
        return {name: score.to(device) for name, score in load_file(saved).items()}
    scorer = copy.deepcopy(model)
    params = dict(scorer.named_parameters())
    scores = {name: torch.zeros_like(params[name]) for name in names}
    steps = method.get("score_steps", 200)
    scoring = _train_settings(settings, max_steps=steps, eval_every=steps, seed=seed + 1)
    log.info("movement: accumulating scores over %d training steps of a copy of the model", steps)
    train(scorer, train_data, dev_data, scoring, pad_id=pad_id, device=device, masks=previous,
          movement=scores, progress=progress, checkpoint=checkpoint(scoring), **_reporting(settings, "movement_scores"))
    del scorer
    return scores


def regularization(method: dict, names, params, reference_dir, device) -> dict:
    """Keyword arguments of ``train`` for the method's regularizer (none: no penalty)."""
    kind, weight = method.get("regularizer", "none"), method.get("weight", 0.0)
    if kind == "none" or weight == 0:
        return {}
    stored = load_file(Path(reference_dir) / "model.safetensors")
    missing = [name for name in names if name not in stored]
    if missing:
        raise ValueError(f"reference model {reference_dir} lacks prunable weights, e.g. {missing[:3]}")
    references = [stored[name].to(device=device, dtype=params[name].dtype) for name in names]
    # No masks: train() keeps every pruned weight at exactly 0.0 (also when gradual pruning
    # grows the masks), so M*W is W, and the penalty's gradient on pruned weights is zeroed.
    penalty = AlignmentPenalty(kind, [params[name] for name in names], references, None, method.get("units", "rows"))
    return {"penalty": penalty, "penalty_weight": weight}


def parse_variant(variant: str) -> tuple[str, float]:
    """'dense' -> ('dense', 0.0); 'method~m/sparsity~0.50' -> ('m', 0.5)."""
    if variant == "dense":
        return "dense", 0.0
    method_part, sparsity_part = variant.split("/")
    return method_part.removeprefix("method~"), float(sparsity_part.removeprefix("sparsity~"))


def _model_keys(task: str, seed: int, variant: str) -> dict:
    method, target = parse_variant(variant)
    return {"task": task, "seed": seed, "method": method, "sparsity_target": target}


class EvalFile(NamedTuple):
    """One evaluation of a model: a split of a language, its data file and its JSON file."""

    split: str
    lang: str
    data_file: str | Path
    out_file: str | Path


def evaluate_model(
    *,
    task: str,
    seed: int,
    variant: str,
    lang: str,
    split: str,
    model_dir: str | Path,
    tokenizer_dir: str | Path,
    data_file: str | Path,
    out_file: str | Path,
    batch_size: int,
    max_length: int,
    prunable: dict,
    device: torch.device,
) -> dict:
    """Accuracy, example count and measured sparsity of one model on one split of one language."""
    return evaluate_model_files(
        task=task, seed=seed, variant=variant, model_dir=model_dir, tokenizer_dir=tokenizer_dir,
        files=[EvalFile(split, lang, data_file, out_file)], batch_size=batch_size, max_length=max_length,
        prunable=prunable, device=device,
    )[0]


def evaluate_model_files(
    *,
    task: str,
    seed: int,
    variant: str,
    model_dir: str | Path,
    tokenizer_dir: str | Path,
    files: Sequence[EvalFile],
    batch_size: int,
    max_length: int,
    prunable: dict,
    device: torch.device,
) -> list[dict]:
    """``evaluate_model`` on every (split, language) of ``files`` with one load of the model.

    Every data file is read and checked before the model loads; each JSON is written
    atomically as soon as its evaluation ends, so a failure leaves whole files only.
    """
    spec = task_spec(task)
    frames = [data.read_split(file.data_file, spec.num_labels) for file in files]
    tokenizer = modeling.load_tokenizer(tokenizer_dir)
    model = modeling.load_classifier(model_dir).to(device)
    names = modeling.prunable_names(model, **prunable)
    # the weights do not change between evaluations: measured once
    sparsity = {k: v for k, v in modeling.measure_sparsity(model, names).items() if k.startswith("sparsity")}
    results = []
    for file, frame in zip(files, frames):
        encoded = data.encode(tokenizer, frame, max_length)
        result = {
            **_model_keys(task, seed, variant),
            "split": file.split,
            "language": file.lang,
            **accuracy(model, encoded, batch_size=batch_size, pad_id=tokenizer.pad_token_id, device=device),
            **sparsity,
            **hub.provenance(tokenizer_dir, file.data_file),  # the pretrained model's and the data's commits
        }
        write_json(file.out_file, result)
        log.info("%s %s: accuracy %.4f (%d of %d)", file.split, file.lang, result["accuracy"],
                 result["correct"], result["n_examples"])
        results.append(result)
    return results


def measure_weight_alignment(
    *, task: str, seed: int, variant: str, model_dir, dense_dir, out_file, prunable: dict
) -> pd.DataFrame:
    """Per prunable matrix of a pruned model: mean unit cosine with its dense model (CSV)."""
    pruned = modeling.load_classifier(model_dir)
    dense = modeling.load_classifier(dense_dir)
    names = modeling.prunable_names(pruned, **prunable)
    table = alignment.weight_alignment(pruned, dense, names)
    table.insert(0, "layer", table["parameter"].str.extract(r"layer\.(\d+)\.", expand=False).astype(float))
    for column, value in reversed(_model_keys(task, seed, variant).items()):
        table.insert(0, column, value)
    with atomic_path(out_file) as tmp:
        table.to_csv(tmp, index=False)
    return table


class LanguageFile(NamedTuple):
    """One language of a representation-alignment job: its data file and its JSON file."""

    lang: str
    data_file: str | Path
    out_file: str | Path


def measure_representation_alignment(
    *,
    task: str,
    seed: int,
    variant: str,
    split: str,
    lang: str,
    reference_lang: str,
    model_dir,
    tokenizer_dir,
    reference_file,
    data_file,
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
        task=task, seed=seed, variant=variant, split=split, reference_lang=reference_lang,
        model_dir=model_dir, tokenizer_dir=tokenizer_dir, reference_file=reference_file,
        files=[LanguageFile(lang, data_file, out_file)], max_examples=max_examples,
        batch_size=batch_size, max_length=max_length, device=device,
    )[0]


def measure_representation_alignment_files(
    *,
    task: str,
    seed: int,
    variant: str,
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

    Every data file is read and checked first; each JSON is written atomically as soon as its
    language is measured. Returns the records written.
    """
    spec = task_spec(task)
    english = data.read_split(reference_file, spec.num_labels)
    others = [data.read_split(file.data_file, spec.num_labels) for file in files]
    tokenizer = model = reference = None

    def states(frame):
        return alignment.pooled_states(
            model, data.encode(tokenizer, frame, max_length),
            batch_size=batch_size, pad_id=tokenizer.pad_token_id, device=device,
        )

    records = []
    for file, other in zip(files, others):
        record = {**_model_keys(task, seed, variant), "split": split, "language": file.lang,
                  "reference_language": reference_lang}
        reason = alignment.not_parallel_reason(english, other, file.lang)
        if reason is not None:
            log.warning("%s %s not parallel: %s", split, file.lang, reason)
            record |= {"parallel": False, "reason": reason, "n_examples": 0, "layers": []}
            write_json(file.out_file, record)
            records.append(record)
            continue
        if model is None:  # only when some language is parallel
            tokenizer = modeling.load_tokenizer(tokenizer_dir)
            model = modeling.load_classifier(model_dir).to(device)
        # the first rows: the same examples in both languages
        if reference is None:
            reference = states(english.head(max_examples))
        other = other.head(max_examples)
        layers = alignment.representation_alignment(reference, states(other))
        record |= {"parallel": True, "reason": None, "n_examples": len(other), "layers": layers}
        write_json(file.out_file, record)
        log.info("%s %s: %d rows paired with %s, %d layers measured", split, file.lang, len(other),
                 reference_lang, len(layers))
        records.append(record)
    return records
