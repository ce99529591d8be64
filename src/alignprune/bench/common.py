"""What every comparison shares: the model shapes, interleaved timing, and the result rows.

Every comparison runs its variants in one process on the same model, batch and precision,
interleaved round by round after warm-up, and reports the median time per call and its ratio
to the comparison's baseline.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

# Encoder shapes: (hidden, layers, heads, intermediate). Vocabulary kept small on CPU:
# the embedding is not prunable and only adds a constant to every variant.
SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, vocab_size=1000),
    "cpu": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536, vocab_size=8000),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=250002),
}


@dataclass
class Timing:
    comparison: str
    variant: str
    median_ms: float | None
    ratio: float
    peak_mb: float | None = None
    note: str = ""
    per_second: float | None = None  # examples per second, for the throughput comparisons


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


def device_sync(device: torch.device) -> Callable[[], None]:
    """What waits for the device's queued work: ``torch.cuda.synchronize`` on CUDA, nothing on CPU."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB). VmHWM, not ru_maxrss: on Linux a child started
    by a large parent inherits the parent's ru_maxrss, which would hide the child's own peak."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def format_table(timings: list[Timing]) -> str:
    lines = ["| comparison | variant | median ms | examples/s | time / first variant's | peak MB | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    lines += [
        f"| {t.comparison} | {t.variant} | {'' if t.median_ms is None else f'{t.median_ms:,.1f}'} | "
        f"{'' if t.per_second is None else f'{t.per_second:,.1f}'} | {t.ratio:.3f} | "
        f"{'' if t.peak_mb is None else f'{t.peak_mb:,.0f}'} | {t.note} |"
        for t in timings
    ]
    return "\n".join(lines)


def throughputs(comparison: str, rates: dict[str, float]) -> list[Timing]:
    """Rows of a throughput comparison; the ratio is time per example relative to the first variant."""
    first = next(iter(rates.values()))
    return [Timing(comparison, name, None, first / rate, per_second=rate) for name, rate in rates.items()]
