"""The one training loop: dense fine-tuning and every prune-and-retrain job.

Fused AdamW with linear warm-up and decay, random (or length-grouped) batches with
dynamic padding, bf16 autocast and TF32 on GPU, model selection on the English dev
set. With masks, the gradients of pruned weights are zeroed before each step, so
their Adam moments stay zero and the step (update and weight decay) leaves them at
exactly 0.0; weights pruned during training get their moments zeroed when they are
pruned.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from .batching import training_batches
from .checkpoint import Checkpointer
from .data import EncodedSplit
from .evaluate import accuracy, autocast
from .progress import TrainingProgress
from .pruning import Masks, apply_masks


def stable_seed(*parts) -> int:
    """A seed derived from names and numbers, the same in every process and Python version."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def random_streams(seed: int) -> torch.Generator:
    """Seed a run's dropout (torch's global generator) with ``seed`` and return its data order's
    generator, seeded from another key of it. One integer for both would make the two draw the
    same numbers on CPU: the first batch's dropout masks from the numbers that ordered the data."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(stable_seed(seed, "data order"))


@dataclass
class TrainSettings:
    learning_rate: float
    batch_size: int
    max_steps: int
    eval_every: int
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_batch_size: int = 128
    # batches of examples of similar length (less padding, but see the config schema's caveat)
    group_by_length: bool = False
    seed: int = 0
    # evaluations before this step are not candidates for model selection (gradual pruning:
    # only checkpoints at the final sparsity count)
    select_from: int = 0


def build_optimizer(model, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW over the model's trainable parameters, without weight decay on biases and LayerNorm."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            # As in BERT/XLM-R recipes: no weight decay on biases and LayerNorm.
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel over all tensors (CPU and CUDA); ~5x faster than the foreach step on CPU
    return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=True)


def linear_schedule(optimizer, settings: TrainSettings):
    """Linear warm-up over ``warmup_ratio`` of ``max_steps``, then linear decay to 0 at ``max_steps``."""
    warmup = int(settings.warmup_ratio * settings.max_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (settings.max_steps - step) / max(1, settings.max_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class NonFiniteLoss(FloatingPointError):
    """The loss or the gradient norm became NaN or infinite."""


def train(
    model,
    train_data: EncodedSplit,
    dev_data: EncodedSplit,
    settings: TrainSettings,
    *,
    pad_id: int,
    device: torch.device,
    masks: Masks | None = None,
    penalty: Callable[[], torch.Tensor] | None = None,
    penalty_weight: float = 0.0,
    penalty_floor: Callable[[Masks], torch.Tensor] | None = None,
    movement: dict[str, torch.Tensor] | None = None,
    on_step: Callable[[int, Masks], dict | None] | None = None,
    measure_last: Callable[[], dict] | None = None,
    generators: dict[str, torch.Generator] | None = None,
    checkpoint: Checkpointer | None = None,
    progress: bool = True,
    log_every: int = 100,
    tensorboard_dir: str | Path | None = None,
) -> dict:
    """Train in place; leave the model at its best English-dev checkpoint. Returns the history.

    With ``penalty`` the loss is task loss + ``penalty_weight`` x penalty() (a regularizer);
    ``penalty_floor(masks)``, the least value the masks leave it, is logged beside it at each
    evaluation, a mean over the same steps (the penalty above it is what retraining moved).
    With ``movement`` (name -> tensor), -w * grad is added to it at every step.
    ``on_step(step, masks)`` runs after every optimizer step; it may prune more by
    updating the mask tensors in place (gradual pruning); what it returns is kept in the
    history's ``events``. ``measure_last()`` runs once after the last step, before the model goes
    back to its best checkpoint; what it returns is the history's ``last_step`` (the weights after
    the whole budget, the same step for every model retrained on it). ``generators`` are random
    generators of the caller (e.g. of ``on_step``) saved and restored with the checkpoints. With
    ``checkpoint``, the run resumes from its latest checkpoint and writes one every
    ``checkpoint.every`` steps.
    A NaN or infinite loss stops the run (NonFiniteLoss) before it is checkpointed.
    Every ``log_every`` steps (and at each evaluation) one plain line is logged (see
    alignprune.progress); ``progress`` draws a live bar when stderr is a terminal;
    ``tensorboard_dir`` receives the same numbers as TensorBoard events.
    """
    model.to(device).train()
    params = dict(model.named_parameters())
    if masks:
        masks = {name: mask.to(device) for name, mask in masks.items()}
        apply_masks(params, masks)
    optimizer = build_optimizer(model, settings)
    scheduler = linear_schedule(optimizer, settings)
    # same seed, same run; a resume restores dropout's state below and replays the data order to its step
    batch_generator = random_streams(settings.seed)
    generators = generators or {}
    # movement scores as they stood at the best dev evaluation: when the model goes back to that
    # checkpoint, the scores handed on (the next rung's criterion) must be those of the weights kept
    best_movement = {name: torch.zeros_like(score) for name, score in movement.items()} if movement else None
    tensors = {
        name: group
        for name, group in (("masks", masks), ("movement", movement), ("movement_best", best_movement))
        if group
    }

    # everything of the loop a resumed run needs besides the tensors
    loop = {"step": 0, "history": [], "events": [], "best": {"dev_accuracy": -1.0, "step": 0},
            "loss_sum": 0.0, "penalty_sum": 0.0, "floor_sum": 0.0, "seconds": 0.0}
    best_state = None
    saved = checkpoint.latest() if checkpoint else None
    if saved is not None:
        loop, best_state = checkpoint.restore(
            saved, model=model, optimizer=optimizer, scheduler=scheduler, generators=generators,
            tensors=tensors, device=device,
        )
    resumed_from = loop["step"] if saved is not None else None
    batches = training_batches(train_data, settings.batch_size, pad_id, batch_generator, skip=loop["step"],
                                 group_by_length=settings.group_by_length)

    history, best = loop["history"], loop["best"]
    # summed on the device and read at evaluations and checkpoints only: no host sync per step
    running_loss = torch.full((), loop["loss_sum"], device=device)
    running_penalty = torch.full((), loop["penalty_sum"], device=device)
    running_norm = torch.zeros((), device=device)
    # the penalty's floor under each step's masks, summed like the penalty (recomputed only when
    # on_step changes the masks)
    floor = penalty_floor(masks) if penalty_floor is not None and masks else None
    if floor is not None and "floor_sum" not in loop:  # a checkpoint written before floors were
        # logged: its steps since the last evaluation at the restored masks (the ladder's fixed ones)
        loop["floor_sum"] = floor.item() * (loop["step"] - (history[-1]["step"] if history else 0))
    running_floor = torch.full((), loop.get("floor_sum", 0.0), device=device)
    started = time.perf_counter() - loop["seconds"]
    reporter = TrainingProgress(
        total_steps=settings.max_steps, start_step=loop["step"], batch_size=settings.batch_size, every=log_every,
        elapsed=loop["seconds"], bar=progress, tensorboard_dir=tensorboard_dir,
    )
    # summed since the last progress line (read there: one host sync per line)
    line_loss = torch.zeros((), device=device)
    line_penalty = torch.zeros((), device=device)
    for step in range(loop["step"] + 1, settings.max_steps + 1):
        learning_rate = scheduler.get_last_lr()[0]  # this step's (training_step steps the scheduler)
        loss, regularizer, grad_norm = training_step(
            model, params, next(batches), optimizer, scheduler, settings, device=device,
            masks=masks, penalty=penalty, penalty_weight=penalty_weight, movement=movement,
        )
        if floor is not None:  # the masks this step's penalty was measured under
            running_floor = running_floor + floor
        if on_step is not None:
            event = on_step(step, masks)
            if event:  # on_step pruned more (it returns an event whenever it changes the masks)
                loop["events"].append({"step": step, **event})
                if masks:
                    apply_masks(params, masks)
                    clear_optimizer_state(optimizer, params, masks)
                    floor = penalty_floor(masks) if floor is not None else None
        running_penalty = running_penalty + regularizer
        running_loss = running_loss + loss
        running_norm = running_norm + grad_norm
        line_loss = line_loss + loss
        if penalty is not None:
            line_penalty = line_penalty + regularizer
        reporter.update()

        evaluate_now = step % settings.eval_every == 0 or step == settings.max_steps
        checkpoint_now = checkpoint is not None and checkpoint.due(step, settings.max_steps)
        if evaluate_now or checkpoint_now:
            _stop_if_not_finite(running_loss + running_penalty + running_norm, step, checkpoint)
            running_norm = torch.zeros((), device=device)
        if evaluate_now:
            with reporter.paused():
                dev = accuracy(
                    model, dev_data, batch_size=settings.eval_batch_size, pad_id=pad_id, device=device
                )
            steps = step - (history[-1]["step"] if history else 0)
            entry = {
                "step": step,
                "train_loss": running_loss.item() / steps,
                "penalty": running_penalty.item() / steps,
                # the least value the masks left the penalty: penalty - floor is what retraining moved
                **({"penalty_floor": running_floor.item() / steps} if floor is not None else {}),
                "dev_accuracy": dev["accuracy"],
                "seconds": time.perf_counter() - started,
            }
            history.append(entry)
            running_loss = torch.zeros((), device=device)
            running_penalty = torch.zeros((), device=device)
            running_floor = torch.zeros((), device=device)
            if step >= settings.select_from and dev["accuracy"] > best["dev_accuracy"]:
                best.update(dev_accuracy=dev["accuracy"], step=step)
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                for name, score in (best_movement or {}).items():
                    score.copy_(movement[name])
        if evaluate_now or reporter.due(step):
            since = step - reporter.last_step
            reporter.line(
                step, loss=line_loss.item() / since, lr=learning_rate,
                penalty=line_penalty.item() / since if penalty is not None else None,
                dev_accuracy=dev["accuracy"] if evaluate_now else None,
            )
            line_loss = torch.zeros((), device=device)
            line_penalty = torch.zeros((), device=device)
        if checkpoint_now:
            with reporter.paused():
                loop.update(step=step, loss_sum=running_loss.item(), penalty_sum=running_penalty.item(),
                            floor_sum=running_floor.item(),
                            seconds=time.perf_counter() - started)
                checkpoint.save(step, model=model, optimizer=optimizer, scheduler=scheduler, generators=generators,
                                tensors=tensors, loop=loop, best_state=best_state)
    reporter.close()
    last_step = {"step": settings.max_steps, **measure_last()} if measure_last is not None else None
    if best_state is not None and best["step"] != settings.max_steps:
        model.load_state_dict(best_state)
        for name, score in (best_movement or {}).items():
            movement[name].copy_(score)
    return {
        "settings": asdict(settings),
        "history": history,
        "events": loop["events"],
        "best_step": best["step"],
        "best_dev_accuracy": best["dev_accuracy"],
        "train_examples": len(train_data),
        "dev_examples": len(dev_data),
        "resumed_from_step": resumed_from,
        **({"last_step": last_step} if last_step is not None else {}),
    }


def _stop_if_not_finite(total: torch.Tensor, step: int, checkpoint: Checkpointer | None) -> None:
    if torch.isfinite(total):
        return
    kept = checkpoint.latest() if checkpoint else None
    raise NonFiniteLoss(
        f"the training loss or gradient became NaN or infinite by step {step}; "
        + (f"the last good checkpoint {kept} is kept" if kept else "no checkpoint was written before it")
        + ". Lower the learning rate or the regularizer weight, then rerun (a rerun with the same settings "
        "resumes from that checkpoint and stops here again)."
    )


def training_step(
    model,
    params: dict[str, torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler,
    settings: TrainSettings,
    *,
    device: torch.device,
    masks: Masks | None = None,
    penalty: Callable[[], torch.Tensor] | None = None,
    penalty_weight: float = 0.0,
    movement: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step of ``train``; returns the task loss, the penalty and the gradient norm
    before clipping, detached, on the device.

    A penalty with ``accumulate_grad(weight)`` (an ``AlignmentPenalty``) adds weight x its
    gradient to ``.grad`` itself after the task loss's backward pass, without autograd; any other
    penalty is a callable whose differentiable value is added to the loss. Movement scores read
    the gradient before an ``AlignmentPenalty`` adds to it (a callable's is already in it)."""
    ids, attention, labels = batch
    with autocast(device):
        loss = model(input_ids=ids.to(device), attention_mask=attention.to(device), labels=labels.to(device)).loss
    total = loss
    regularizer = torch.zeros((), device=device)
    regularized = penalty is not None and penalty_weight > 0
    analytic = regularized and hasattr(penalty, "accumulate_grad")
    if regularized and not analytic:
        regularizer = penalty()
        total = loss + penalty_weight * regularizer
    total.backward()
    if movement is not None:  # scored on the task loss's gradient (Sanh et al.), not the penalty's pull
        accumulate_movement(movement, params)
    if analytic:  # before masking and clipping, as autograd's gradient would be
        regularizer = penalty.accumulate_grad(penalty_weight)
    if masks:
        for name, mask in masks.items():
            params[name].grad.masked_fill_(~mask, 0.0)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
    # Pruned weights are 0.0 with zero gradients and zero Adam moments, so AdamW's update and
    # its decoupled weight decay both leave them at exactly 0.0: no re-masking after the step.
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach(), regularizer.detach(), grad_norm.detach()


@torch.no_grad()
def clear_optimizer_state(optimizer: torch.optim.Optimizer, params: dict[str, torch.Tensor], masks: Masks) -> None:
    """Zero AdamW's moments of pruned weights (pruned during training, they had some), so the
    next steps leave those weights at 0.0."""
    for name, mask in masks.items():
        state = optimizer.state.get(params[name], {})
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in state:
                state[moment].masked_fill_(~mask, 0.0)


@torch.no_grad()
def accumulate_movement(scores: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> None:
    """Movement pruning's first-order score (Sanh et al. 2020): S -= w * dL/dw, per step.

    A weight whose gradient step moves it away from zero gains score; one pulled
    towards zero loses it.
    """
    for name, score in scores.items():
        score.sub_(params[name].detach() * params[name].grad)


@contextlib.contextmanager
def full_float32():
    """Float32 matmuls at full float32 precision (no TF32) inside; the settings are restored after."""
    matmul, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


def gradient_saliency(
    model,
    data: EncodedSplit,
    names: list[str],
    *,
    batches: int,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    seed: int,
) -> dict[str, torch.Tensor]:
    """First-order Taylor saliency: sum over ``batches`` training batches of |w * dL/dw|, the
    absolute value taken per batch (dL/dw: the gradient of the batch's mean loss).

    Computed in float32 without autocast or TF32 even where training runs under bf16
    autocast: the ranking of small products decides which weights go, and bf16 gradients
    reorder them (on the tiny model, bf16 and fp32 masks at 50% agreed on only 87% of
    weights). A few dozen batches, so the full-precision cost is small.
    """
    model.to(device).eval()  # no dropout: the saliency of a weight, not of a dropout mask
    params = dict(model.named_parameters())
    saliency = {name: torch.zeros_like(params[name], dtype=torch.float32) for name in names}
    generator = torch.Generator().manual_seed(seed)
    batch_iter = training_batches(data, batch_size, pad_id, generator)
    # autocast off as well: a caller's (or the GPU default's) bf16 autocast does not reach in here
    with full_float32(), torch.autocast(device.type, enabled=False):
        for _ in range(batches):
            ids, attention, labels = next(batch_iter)
            model.zero_grad(set_to_none=True)
            loss = model(
                input_ids=ids.to(device), attention_mask=attention.to(device), labels=labels.to(device)
            ).loss
            loss.backward()
            for name in names:
                saliency[name] += (params[name].detach().float() * params[name].grad.float()).abs()
    model.zero_grad(set_to_none=True)
    model.train()
    return saliency
