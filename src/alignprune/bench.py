"""Side-by-side benchmarks: ``python -m alignprune.bench``.

Every comparison runs its variants in one process on the same model, batch and
precision, interleaved round by round after warm-up, and reports the median
time per call and its ratio to the comparison's baseline. On CPU the model is
XLM-R-shaped but small (``--size cpu``); with a GPU, ``--size base`` is the
real XLM-RoBERTa-base shape.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from .pruning import compute_masks
from .regularizers import AlignmentPenalty
from .train import TrainSettings, _linear_schedule, _optimizer, training_step

# Encoder shapes: (hidden, layers, heads, intermediate). Vocabulary kept small on CPU:
# the embedding is not prunable and only adds a constant to every variant.
SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, vocab_size=1000),
    "cpu": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536, vocab_size=8000),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=250002),
}
PRUNABLE = r"^roberta\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$"


@dataclass
class Timing:
    comparison: str
    variant: str
    median_ms: float
    ratio: float


def xlmr_classifier(size: str, num_labels: int = 3):
    """A randomly initialised XLM-R sequence classifier of the given shape."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    config = XLMRobertaConfig(max_position_embeddings=514, num_labels=num_labels, **SIZES[size])
    torch.manual_seed(0)
    return XLMRobertaForSequenceClassification(config)


def interleaved(variants: dict[str, Callable[[], None]], *, warmup: int, repeats: int, sync) -> dict[str, float]:
    """Median seconds per call of each variant, calls interleaved so drift hits all alike."""
    for _ in range(warmup):
        for run in variants.values():
            run()
    sync()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def retraining_steps(size: str, device: torch.device, *, batch_size: int, length: int, sparsity: float,
                     warmup: int, repeats: int) -> list[Timing]:
    """One retraining step: without masks, with masks (ours), and with masks plus each regularizer."""
    import re

    model = xlmr_classifier(size).to(device)
    params = dict(model.named_parameters())
    names = [name for name in params if re.match(PRUNABLE, name)]
    reference = [params[name].detach().clone() for name in names]
    masks = compute_masks(
        {name: params[name].detach() for name in names}, criterion="magnitude", scope="global", sparsity=sparsity
    )
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    batch = (
        torch.randint(5, vocab, (batch_size, length), generator=generator),
        torch.ones(batch_size, length, dtype=torch.long),
        torch.randint(0, 3, (batch_size,), generator=generator),
    )
    settings = TrainSettings(learning_rate=1e-5, batch_size=batch_size, max_steps=10**9, eval_every=10**9)
    optimizer = _optimizer(model, settings)
    scheduler = _linear_schedule(optimizer, settings)
    weights = [params[name] for name in names]

    def step(with_masks: bool, regularizer: str = "none"):
        # as the prune job builds it: constants once, no masks (pruned weights are already 0.0)
        penalty = AlignmentPenalty(regularizer, weights, reference) if regularizer != "none" else None
        return lambda: training_step(
            model, params, batch, optimizer, scheduler, settings, device=device,
            masks=masks if with_masks else None, penalty=penalty, penalty_weight=1.0,
        )

    model.train()
    variants = {
        "masked (baseline)": step(True),
        "no masks": step(False),
        **{f"masked + {kind}": step(True, kind) for kind in ("l2", "cosine", "frobenius")},
    }
    medians = interleaved(variants, warmup=warmup, repeats=repeats, sync=_sync(device))
    base = medians["masked (baseline)"]
    return [Timing("retraining step", name, 1000 * t, t / base) for name, t in medians.items()]


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def format_table(timings: list[Timing]) -> str:
    lines = ["| comparison | variant | median ms | ratio |", "|---|---|---:|---:|"]
    lines += [f"| {t.comparison} | {t.variant} | {t.median_ms:.1f} | {t.ratio:.3f} |" for t in timings]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Timing]:
    parser = argparse.ArgumentParser(prog="python -m alignprune.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="model shape (default: cpu, or base on a GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = args.size or ("base" if device.type == "cuda" else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    timings = retraining_steps(
        size, device, batch_size=args.batch_size, length=args.length, sparsity=args.sparsity,
        warmup=args.warmup, repeats=args.repeats,
    )
    print(f"device {device}, size {size} {SIZES[size]}, batch {args.batch_size} x {args.length}, "
          f"{torch.get_num_threads()} threads, medians of {args.repeats} after {args.warmup} warm-up rounds")
    print(format_table(timings))
    return timings


if __name__ == "__main__":
    main()
