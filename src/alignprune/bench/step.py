"""One retraining step: without masks, with masks (ours), with masks plus each regularizer, and
masked the ``torch.nn.utils.prune`` way (a forward pre-hook)."""

from __future__ import annotations

import copy
from typing import Callable

import torch

from ..modeling import prunable_names
from ..pruning import apply_masks, compute_masks
from ..regularizers import AlignmentPenalty
from ..train import TrainSettings, build_optimizer, linear_schedule, training_step
from .common import Timing, device_sync, interleaved, xlmr_classifier
from .project import study_prunable

# bf16 dense tensor-core peaks (TFLOP/s) of the GPUs the study is run on, for model FLOPs utilisation
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def retraining_steps(size: str, device: torch.device, *, batch_size: int, length: int, sparsity: float,
                     warmup: int, repeats: int, peak_tflops: float | None = None) -> list[Timing]:
    """One retraining step: without masks, with masks (ours), and with masks plus each regularizer."""
    variants, models = step_variants(size, device, batch_size=batch_size, length=length, sparsity=sparsity)
    medians = interleaved(variants, warmup=warmup, repeats=repeats, sync=device_sync(device))
    base = medians["masked (baseline)"]
    flops = step_flops(models["masked"].model, batch_size, length)
    return [Timing("retraining step", name, 1000 * t, t / base, note=_utilisation(flops, batch_size * length, t, device,
                                                                                peak_tflops))
            for name, t in medians.items()]


class _Trained:
    """A model of the comparison with its own optimizer and schedule (its own Adam moments)."""

    def __init__(self, model, settings: TrainSettings):
        self.model = model.train()
        self.params = dict(model.named_parameters())
        self.optimizer = build_optimizer(model, settings)
        self.scheduler = linear_schedule(self.optimizer, settings)


def step_variants(size: str, device: torch.device, *, batch_size: int, length: int,
                  sparsity: float) -> tuple[dict[str, Callable[[], None]], dict[str, _Trained]]:
    """The step comparison's variants (name -> one step) and the models they train: ``masked``,
    which the masked variants share (a masked step keeps every pruned weight at exactly 0.0, so
    each of them steps a masked model whatever ran before), ``no masks``, a copy of its own
    (its steps revive pruned weights), and the torch.nn.utils.prune copy. Each model has its own
    optimizer. Not one copy per masked variant: at the XLM-R base shape a copy with its Adam
    moments takes about 4.5 GB, and six would not fit a 24 GB CPU machine."""
    model = xlmr_classifier(size).to(device)
    params = dict(model.named_parameters())
    names = prunable_names(model, **study_prunable())
    reference = [params[name].detach().clone() for name in names]
    masks = compute_masks(
        {name: params[name].detach() for name in names}, criterion="magnitude", scope="global", sparsity=sparsity
    )
    apply_masks(params, masks)  # as train() does
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    batch = (
        torch.randint(5, vocab, (batch_size, length), generator=generator),
        torch.ones(batch_size, length, dtype=torch.long),
        torch.randint(0, 3, (batch_size,), generator=generator),
    )
    settings = TrainSettings(learning_rate=1e-5, batch_size=batch_size, max_steps=10**9, eval_every=10**9)
    models = {"masked": _Trained(model, settings), "no masks": _Trained(copy.deepcopy(model), settings)}

    def step(trained: _Trained, with_masks: bool, regularizer: str = "none"):
        # as the prune job builds it: constants once, no masks (pruned weights are already 0.0)
        weights = [trained.params[name] for name in names]
        penalty = AlignmentPenalty(regularizer, weights, reference) if regularizer != "none" else None
        return lambda: training_step(
            trained.model, trained.params, batch, trained.optimizer, trained.scheduler, settings, device=device,
            masks=masks if with_masks else None, penalty=penalty, penalty_weight=1.0,
        )

    hooked = _prune_hook_model(size, device, masks, settings)
    models["torch.nn.utils.prune hooks"] = hooked
    variants = {
        "masked (baseline)": step(models["masked"], True),
        "no masks": step(models["no masks"], False),
        "torch.nn.utils.prune hooks": lambda: training_step(hooked.model, hooked.params, batch, hooked.optimizer,
                                                            hooked.scheduler, settings, device=device),
        **{f"masked + {kind}": step(models["masked"], True, kind) for kind in ("l2", "cosine", "frobenius")},
    }
    return variants, models


def step_flops(model, batch_size: int, length: int) -> float:
    """Model FLOPs of one training step (forward + backward) on full sequences: 6 per weight
    outside the embeddings per token, plus attention's 12 x layers x hidden x length per token."""
    weights = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    config = model.config
    per_token = 6 * weights + 12 * config.num_hidden_layers * config.hidden_size * length
    return per_token * batch_size * length


def _utilisation(flops: float, tokens: int, seconds: float, device: torch.device, peak_tflops: float | None) -> str:
    achieved = flops / seconds / 1e12
    if peak_tflops is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak_tflops = next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)
    utilisation = f", MFU {100 * achieved / peak_tflops:.1f}% of {peak_tflops:g}" if peak_tflops else ""
    return f"{tokens / seconds:,.0f} tokens/s, {achieved:.2f} TFLOP/s{utilisation}"


def _prune_hook_model(size, device, masks, settings) -> _Trained:
    """A copy of the model masked the torch.nn.utils.prune way: a forward pre-hook recomputes
    weight = weight_orig * weight_mask on every forward."""
    import torch.nn.utils.prune as torch_prune

    model = xlmr_classifier(size).to(device)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        torch_prune.custom_from_mask(modules[name.removesuffix(".weight")], "weight", mask)
    return _Trained(model, settings)
