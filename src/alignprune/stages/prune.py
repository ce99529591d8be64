"""Stage 3: prune a model to one sparsity target and retrain it, on one of two schedules.

- ladder: the start model is the retrained model of the next lower target (the dense model at
  the first); its masks are kept, the criterion prunes once to the target, the model retrains.
- independent: the start model is the dense model; the criterion prunes gradually during
  retraining, on a cubic schedule (Zhu and Gupta 2017).

Both schedules share ``PruneJob``: the loaded model and data, the prunable weights, the method and
the job's seeds. A method is what the job reads of a validated ``methods`` entry of the config
(operational.method_settings: criterion and regularizer, and scope, weight, reference, units,
gradient_batches, score_steps where its kind reads them); criterion ``none`` is the retraining
control: it retrains like every method, without masks.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file

from .. import alignment, code_version, modeling, tokens
from ..chosen_weights import SWEEP_WEIGHT, read_chosen_code
from ..criteria import prunes
from ..data import EncodedSplit
from ..evaluate import accuracy
from ..model_key import target_label
from ..pruning import Masks, apply_masks, compute_masks, cubic_schedule, mask_sparsity
from ..regularizers import AlignmentPenalty
from ..tasks import task_spec
from ..train import TrainSettings, gradient_saliency, stable_seed, train
from .common import checkpointer, load_pair, remove_checkpoints, reporting, train_settings

log = logging.getLogger(__name__)


@dataclass
class PruneJob:
    """What both schedules share: one prune job's model, data, weights, method and seeds."""

    method: dict  # the validated methods entry
    settings: dict  # the validated retrain section
    model: torch.nn.Module
    names: list[str]  # the prunable weights
    train_data: EncodedSplit
    dev_data: EncodedSplit
    pad_id: int
    device: torch.device
    seed: int  # the job's seed: task, seed and target, not the method (common random numbers)
    start_dir: Path
    start_masks: Masks | None  # the start model's masks (None: an unpruned start model)
    reference_dir: Path  # the unpruned model W0 a regularizer aligns to
    inputs: tuple  # the files a checkpoint of this job is valid for
    identity: dict  # the settings a checkpoint of this job is valid for
    checkpoint_dir: Path | None
    progress: bool
    params: dict[str, torch.Tensor] = field(init=False)  # the model's, by name
    checkpoints: list = field(init=False, default_factory=list)  # every phase's, for the code they resumed
    generator: torch.Generator = field(init=False)  # the random criterion's draws

    def __post_init__(self):
        self.params = dict(self.model.named_parameters())
        # shared by every method too, but not the data order's stream
        self.generator = torch.Generator().manual_seed(stable_seed(self.seed, "random scores"))

    @property
    def control(self) -> bool:
        """The retraining control (criterion none): it prunes nothing, no criterion sees the weights."""
        return not prunes(self.method["criterion"])

    def masks_at(self, target: float, previous: Masks | None, movement_scores=None) -> Masks:
        """Masks that prune ``target`` of the prunable weights, nested in ``previous``."""
        if self.control:
            return self.all_kept()
        return compute_masks(
            {name: self.params[name].detach() for name in self.names},
            criterion=self.method["criterion"],
            scope=self.method["scope"],
            sparsity=target,
            previous=previous,
            generator=self.generator,
            gradient_saliency=self.saliency,
            movement_scores=movement_scores,
        )

    def saliency(self) -> dict[str, torch.Tensor]:
        """The gradient criterion's scores (computed only when that criterion asks for them)."""
        return gradient_saliency(
            self.model, self.train_data, self.names, batches=self.method["gradient_batches"],
            batch_size=self.settings["batch_size"], pad_id=self.pad_id, device=self.device, seed=self.seed,
        )

    def all_kept(self) -> Masks:
        return {name: torch.ones_like(self.params[name], dtype=torch.bool) for name in self.names}

    def zero_scores(self) -> dict[str, torch.Tensor]:
        """Movement scores before the first step."""
        return {name: torch.zeros_like(self.params[name]) for name in self.names}

    def checkpoint(self, phase: str, run: TrainSettings, save_at_end: bool = False):
        made = checkpointer(self.checkpoint_dir, phase, self.settings, run, *self.inputs, device=self.device,
                            job=self.identity, save_at_end=save_at_end)
        if made is not None:
            self.checkpoints.append(made)
        return made

    def resumed_code(self) -> set[str]:
        """The code digests of the runs this job's phases resumed from checkpoints."""
        return set().union(*(c.code for c in self.checkpoints))

    def retrain(self, run: TrainSettings, masks: Masks, movement, **extra) -> dict:
        """Retrain the model under ``masks`` (none for the control: no masking pass per step),
        with the method's regularizer; ``extra``: train()'s on_step and generators, if any."""
        return train(
            self.model, self.train_data, self.dev_data, run,
            pad_id=self.pad_id, device=self.device, masks=None if self.control else masks, progress=self.progress,
            movement=movement, checkpoint=self.checkpoint("retrain", run), measure_last=last_step_measure(self),
            **extra,
            **reporting(self.settings, "retrain"), **regularization(self),
        )


def _choice_code(chosen_file) -> set[str]:
    """The code that made the sweep's choice of this job's weight (none without a choice)."""
    if not chosen_file:
        return set()
    return set(read_chosen_code(chosen_file) or [code_version.UNRECORDED])


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
    chosen_file: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Prune the start model to ``sparsity`` on ``schedule`` (ladder or independent; ``gradual``:
    the validated gradual section, for independent), retrain, save; returns the sparsity report.
    ``method``: the validated methods entry; ``settings``: the validated retrain section;
    ``chosen_file``: the sweep's choice the weight came from (its code joins the model's record)."""
    if method.get("weight") == SWEEP_WEIGHT:
        raise ValueError(
            f"{method_name}: weight: sweep reached the prune job unresolved; the Snakefile passes the weight the "
            "sweep chose (results/sweep/{task}/chosen_weights.yaml): run the job through snakemake"
        )
    control = not prunes(method["criterion"])
    if control and method["regularizer"] != "none":
        raise ValueError(f"{method_name}: the retraining control (criterion none) takes no regularizer")
    train_data, dev_data, pad_id = load_pair(tokenizer_dir, train_file, dev_file, task_spec(task).num_labels,
                                             max_length)
    model = modeling.load_classifier(start_dir).to(device)
    names = modeling.prunable_names(model, **prunable)
    job = PruneJob(
        method=method, settings=settings, model=model, names=names, train_data=train_data, dev_data=dev_data,
        pad_id=pad_id, device=device,
        # Common random numbers: the seed names the task, seed and target, not the method, so every
        # method of a rung draws the same data order and dropout, and two methods that prune the same
        # weights give identical models (a paired difference between methods is theirs alone).
        seed=stable_seed(task, seed, target_label(sparsity)),
        start_dir=start_dir, start_masks=_start_masks(start_dir, names, control, device),
        reference_dir=reference_dir, inputs=(start_dir, reference_dir, train_file, dev_file),
        # the prunable weights too: after an edit of prunable the job reruns on the same inputs,
        # and a checkpoint's masks and scores of other weights must not be resumed
        identity={"method": method, "sparsity": sparsity, "schedule": schedule, "gradual": gradual, "prunable": names},
        checkpoint_dir=checkpoint_dir, progress=progress,
    )
    if schedule == "independent":
        masks, history, tensors = independent(job, sparsity, gradual)
    else:
        masks, history, tensors = ladder(job, sparsity)
    report = sparsity_report(job, method_name, sparsity, masks)
    modeling.save_model(
        model, out_dir, masks=masks, tensors=tensors,
        reports={modeling.SPARSITY_FILE: report, modeling.TRAINING_FILE: history},
        parents=(start_dir, reference_dir),
        code=job.resumed_code() | _choice_code(chosen_file) | tokens.code_of(train_file, dev_file),
    )
    remove_checkpoints(checkpoint_dir)
    return report


def _start_masks(start_dir, names: list[str], control: bool, device) -> Masks | None:
    """The start model's masks (None: it was never pruned), checked against this job."""
    masks = modeling.load_masks(start_dir)
    if masks is None:
        return None
    if set(masks) != set(names):
        raise ValueError(f"{start_dir}: its masks cover other weights than the prunable patterns select")
    masks = {name: mask.to(device) for name, mask in masks.items()}
    if control and not all(bool(mask.all()) for mask in masks.values()):
        raise ValueError(f"{start_dir} is pruned: the retraining control starts from unpruned models only")
    return masks


def ladder(job: PruneJob, sparsity: float) -> tuple[Masks, dict, dict]:
    """Prune the start model once to ``sparsity`` (keeping its masks), then retrain for
    retrain.steps. Returns the masks, the training history and the extra tensors to save."""
    movement = _movement_scores(job) if job.method["criterion"] == "movement" else None
    masks = job.masks_at(sparsity, job.start_masks, movement)
    if not job.control:
        apply_masks(job.params, masks)
    before = accuracy(job.model, job.dev_data, batch_size=128, pad_id=job.pad_id, device=job.device)
    log.info("pruned to %.2f: English dev accuracy before retraining %.4f", sparsity, before["accuracy"])
    history: dict = {"history": [], "best_step": 0}
    tensors = {}
    if job.settings["steps"] > 0:
        if movement is not None:  # scores of this retraining decide the next target of the ladder
            tensors[modeling.MOVEMENT_FILE] = job.zero_scores()
        run = train_settings(job.settings, max_steps=job.settings["steps"], seed=job.seed)
        history = job.retrain(run, masks, movement=tensors.get(modeling.MOVEMENT_FILE))
    history["dev_accuracy_before_retraining"] = before["accuracy"]
    return masks, history, tensors


def independent(job: PruneJob, sparsity: float, gradual: dict) -> tuple[Masks, dict, dict]:
    """Start from the dense model and prune gradually during retraining: ``gradual``'s
    pruning_steps prunings over its pruning_fraction of retrain.steps, on a cubic schedule.
    Model selection only among evaluations at the final sparsity. Returns as ``ladder``."""
    if job.start_masks is not None:
        raise ValueError(f"the independent schedule starts from the dense model, not {job.start_dir}")
    steps = job.settings["steps"]
    if steps == 0:
        raise ValueError("the independent schedule prunes during retraining: retrain.steps must be > 0")
    plan = cubic_schedule(sparsity, steps, gradual["pruning_steps"], gradual["pruning_fraction"])
    masks = job.all_kept()
    movement = job.zero_scores() if job.method["criterion"] == "movement" else None
    run = train_settings(job.settings, max_steps=steps, seed=job.seed, select_from=max(plan))
    # the control: no masks to apply or schedule, so no masking pass per step
    on_step = None if job.control else partial(_prune_on_plan, job, plan, movement)
    history = job.retrain(run, masks, movement=movement, on_step=on_step, generators={"pruning": job.generator})
    history["pruning_steps"] = history.pop("events")
    return masks, history, {}


def _prune_on_plan(job: PruneJob, plan: dict[int, float], movement, step: int, masks: Masks) -> dict | None:
    """train()'s on_step for the independent schedule: at a step of the plan, prune ``masks``
    (in place) to the plan's sparsity there; the event goes to the history."""
    if step not in plan:
        return None
    for name, mask in job.masks_at(plan[step], masks, movement).items():
        masks[name].copy_(mask)
    return {"sparsity": mask_sparsity(masks)}


def _movement_scores(job: PruneJob) -> dict[str, torch.Tensor]:
    """Movement scores for this target: those saved by the previous target's retraining, or,
    at the first target, scores accumulated over ``score_steps`` training steps from here.

    The first target's scoring steps train a copy: the model this rung prunes and retrains is
    the start model itself and gets ``retrain.steps`` optimizer steps, as with every other
    criterion (the scoring steps are extra compute, not extra training of the pruned model)."""
    saved = Path(job.start_dir) / modeling.MOVEMENT_FILE
    if saved.exists():
        return {name: score.to(job.device) for name, score in load_file(saved).items()}
    scorer = copy.deepcopy(job.model)
    params = dict(scorer.named_parameters())
    scores = {name: torch.zeros_like(params[name]) for name in job.names}
    steps = job.method["score_steps"]
    scoring = train_settings(job.settings, max_steps=steps, eval_every=steps, seed=job.seed + 1)
    log.info("movement: accumulating scores over %d training steps of a copy of the model", steps)
    train(scorer, job.train_data, job.dev_data, scoring, pad_id=job.pad_id, device=job.device, masks=job.start_masks,
          movement=scores, progress=job.progress, checkpoint=job.checkpoint("movement_scores", scoring, save_at_end=True),
          **reporting(job.settings, "movement_scores"))
    del scorer
    return scores


def last_step_measure(job: PruneJob):
    """train()'s measure_last: per prunable matrix, the kept weights' cosine and relative change
    from the dense model's (alignment.kept_weight_change, the weight alignment's measures), after the
    rung's last step. The saved model is the step model selection kept, which differs between
    methods; the last step is the same for every method of a rung, so the findings compare the
    regularizers' effect there (claim 4). None where the reference is the pretrained model: the
    weight alignment measures against the dense one."""
    if job.method.get("reference") == "pretrained":
        return None
    # checked before training: after it, an error would lose the whole retraining
    files = modeling.tensor_files(job.reference_dir)
    _require_prunable(job, files, "dense model", ": is it the model this one was pruned from?")

    def measure() -> dict:
        dense = modeling.load_weights(job.reference_dir, job.names, files)  # at the end: no memory held
        matrices = {}
        for name in job.names:
            measured = alignment.kept_weight_change(job.params[name].detach(), dense[name].to(job.device))
            # None for NaN (a matrix with nothing kept): training.json stays standard JSON
            matrices[name] = {key: None if math.isnan(value) else value
                              for key, value in zip(("kept_cosine", "kept_change"), measured)}
        return {"matrices": matrices}

    return measure


def _require_prunable(job: PruneJob, stored, role: str, hint: str = "") -> None:
    """Refuse a reference folder whose tensors (``stored``: their names) lack a prunable weight."""
    missing = [name for name in job.names if name not in stored]
    if missing:
        raise ValueError(f"{role} {job.reference_dir} lacks prunable weights, e.g. {missing[:3]}{hint}")


def regularization(job: PruneJob) -> dict:
    """Keyword arguments of ``train`` for the method's regularizer (none: no penalty)."""
    kind = job.method["regularizer"]
    if kind == "none" or job.method["weight"] == 0:  # weight: a key of every regularized method
        return {}
    weight = job.method["weight"]
    stored = load_file(Path(job.reference_dir) / "model.safetensors")
    _require_prunable(job, stored, "reference model")
    references = [stored[name].to(device=job.device, dtype=job.params[name].dtype) for name in job.names]
    # No masks: train() keeps every pruned weight at exactly 0.0 (also when gradual pruning
    # grows the masks), so M*W is W, and the penalty's gradient on pruned weights is zeroed.
    weights = [job.params[name] for name in job.names]
    units = job.method.get("units")  # the UNIT_REGULARIZERS' only (method_settings); they refuse None
    penalty = AlignmentPenalty(kind, weights, references, None, units)
    return {"penalty": penalty, "penalty_weight": weight,
            "penalty_floor": lambda masks: penalty.floor([masks[name] for name in job.names])}


def sparsity_report(job: PruneJob, method_name: str, sparsity: float, masks: Masks) -> dict:
    """The measured sparsity of the retrained model, checked against the target; every weight
    its mask prunes must be exactly 0 (the saved model's zeros are the pruning: no slack)."""
    leaked = {name: int(((job.params[name] != 0) & ~masks[name]).sum()) for name in job.names}
    leaked = {name: count for name, count in leaked.items() if count}
    if leaked:
        raise RuntimeError(
            f"{sum(leaked.values())} pruned weights are not 0 after retraining, in {len(leaked)} matrices "
            f"(e.g. {next(iter(leaked))}): something updated them past their masks; nothing was saved"
        )
    measured = modeling.measure_sparsity(job.model, job.names)
    # Exact up to rounding: at most half a weight per layer (layer scope) or overall (global
    # scope); the check allows one weight per layer.
    tolerance = len(job.names) / measured["n_prunable"]
    # the control's target names its rung of retraining budgets; it prunes nothing
    expected = 0.0 if job.control else sparsity
    if abs(measured["sparsity_prunable"] - expected) > tolerance:
        raise RuntimeError(
            f"measured sparsity {measured['sparsity_prunable']:.6f} differs from {expected}"
            + (f" (retraining control at the rung of target {sparsity})" if job.control else " (target)")
        )
    return {
        "target": sparsity,
        "method": method_name,
        **job.method,
        "mask_sparsity": mask_sparsity(masks),
        **measured,
        "layers": {name: 1.0 - masks[name].float().mean().item() for name in job.names},
    }
