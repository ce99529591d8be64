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
from pathlib import Path
from typing import Callable

import torch

from . import bench_startup, bench_study, bench_trainer
from .config_check import load_config
from .criteria import CRITERIA, ScoreInputs
from .evaluate import allow_tf32
from .modeling import prunable_names
from .pruning import apply_masks, compute_masks
from .regularizers import AlignmentPenalty
from .train import TrainSettings, build_optimizer, linear_schedule, training_step

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


def retraining_steps(size: str, device: torch.device, *, batch_size: int, length: int, sparsity: float,
                     warmup: int, repeats: int, peak_tflops: float | None = None) -> list[Timing]:
    """One retraining step: without masks, with masks (ours), and with masks plus each regularizer."""
    model = xlmr_classifier(size).to(device)
    params = dict(model.named_parameters())
    names = prunable_names(model, [PRUNABLE])
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
    optimizer = build_optimizer(model, settings)
    scheduler = linear_schedule(optimizer, settings)
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
        "torch.nn.utils.prune hooks": _prune_hook_step(size, device, masks, batch, settings),
        **{f"masked + {kind}": step(True, kind) for kind in ("l2", "cosine", "frobenius")},
    }
    medians = interleaved(variants, warmup=warmup, repeats=repeats, sync=_sync(device))
    base = medians["masked (baseline)"]
    flops = step_flops(model, batch_size, length)
    return [Timing("retraining step", name, 1000 * t, t / base, note=_utilisation(flops, batch_size * length, t, device,
                                                                                peak_tflops))
            for name, t in medians.items()]


def step_flops(model, batch_size: int, length: int) -> float:
    """Model FLOPs of one training step (forward + backward) on full sequences: 6 per weight
    outside the embeddings per token, plus attention's 12 x layers x hidden x length per token."""
    weights = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    config = model.config
    per_token = 6 * weights + 12 * config.num_hidden_layers * config.hidden_size * length
    return per_token * batch_size * length


# bf16 dense tensor-core peaks (TFLOP/s) of the GPUs the study is run on, for model FLOPs utilisation
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def _utilisation(flops: float, tokens: int, seconds: float, device: torch.device, peak_tflops: float | None) -> str:
    achieved = flops / seconds / 1e12
    if peak_tflops is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak_tflops = next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)
    utilisation = f", MFU {100 * achieved / peak_tflops:.1f}% of {peak_tflops:g}" if peak_tflops else ""
    return f"{tokens / seconds:,.0f} tokens/s, {achieved:.2f} TFLOP/s{utilisation}"


def _prune_hook_step(size, device, masks, batch, settings) -> Callable[[], None]:
    """The same step on a copy of the model masked the torch.nn.utils.prune way: a forward
    pre-hook recomputes weight = weight_orig * weight_mask on every forward."""
    import torch.nn.utils.prune as torch_prune

    model = xlmr_classifier(size).to(device).train()
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        torch_prune.custom_from_mask(modules[name.removesuffix(".weight")], "weight", mask)
    params = dict(model.named_parameters())
    optimizer = build_optimizer(model, settings)
    scheduler = linear_schedule(optimizer, settings)
    return lambda: training_step(model, params, batch, optimizer, scheduler, settings, device=device)


def encoder_linear_weights(size: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the shapes of the prunable encoder Linear weights (84,934,656 in base)."""
    shape = SIZES[size]
    hidden, inter = shape["hidden_size"], shape["intermediate_size"]
    parts = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
             "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
             "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}
    generator = torch.Generator().manual_seed(seed)
    return {
        f"roberta.encoder.layer.{layer}.{part}.weight": torch.randn(rows, cols, generator=generator)
        for layer in range(shape["num_hidden_layers"])
        for part, (rows, cols) in parts.items()
    }


def _torch_prune_masks(weights: dict[str, torch.Tensor], sparsity: float, lamp: bool) -> dict[str, torch.Tensor]:
    """torch.nn.utils.prune.global_unstructured (L1; LAMP via importance_scores) on Linear modules
    that share the weights' storage; returns its masks (the weights themselves are not changed)."""
    import torch.nn.utils.prune as torch_prune

    modules = {}
    for name, weight in weights.items():
        module = torch.nn.Linear(1, 1, bias=False)
        module.weight = torch.nn.Parameter(weight, requires_grad=False)
        modules[name] = module
    pairs = [(module, "weight") for module in modules.values()]
    scores = None
    if lamp:
        lamp_scores = CRITERIA["lamp"](ScoreInputs(weights))
        scores = {(modules[name], "weight"): lamp_scores[name] for name in weights}
    torch_prune.global_unstructured(pairs, pruning_method=torch_prune.L1Unstructured, amount=sparsity,
                                    importance_scores=scores)
    return {name: module.weight_mask.bool() for name, module in modules.items()}


def global_masks(size: str, *, sparsity: float, warmup: int, repeats: int) -> list[Timing]:
    """Global magnitude and LAMP masks: ours (exact, kthvalue) vs torch.nn.utils.prune (topk).
    Time in this process (interleaved); peak memory and mask agreement in a fresh process each."""
    weights = encoder_linear_weights(size)
    timings = []
    for criterion in ("magnitude", "lamp"):
        variants = {
            "ours": lambda: compute_masks(weights, criterion=criterion, scope="global", sparsity=sparsity),
            "torch.nn.utils.prune.global_unstructured": lambda: _torch_prune_masks(
                weights, sparsity, lamp=criterion == "lamp"),
        }
        medians = interleaved(variants, warmup=warmup, repeats=repeats, sync=lambda: None)
        peaks = {name: _peak_memory_mb(size, sparsity, criterion, name) for name in variants}
        base = medians["ours"]
        comparison = f"global {criterion} mask, {sum(w.numel() for w in weights.values()):,} weights"
        for name, seconds in medians.items():
            timings.append(Timing(comparison, name, 1000 * seconds, seconds / base,
                                  peak_mb=peaks[name][0], note=peaks[name][1]))
    return timings


def _peak_memory_mb(size: str, sparsity: float, criterion: str, variant: str) -> tuple[float, str]:
    """Peak resident memory a variant adds to the weights (MB), measured in a fresh process."""
    import json
    import subprocess
    import sys

    code = f"""
import json, torch
from alignprune import bench
weights = bench.encoder_linear_weights({size!r})
peak = bench.peak_rss_mb
before = peak()
if {variant!r} == "ours":
    ours = bench.compute_masks(weights, criterion={criterion!r}, scope="global", sparsity={sparsity})
    added, differ = peak() - before, 0
else:
    theirs = bench._torch_prune_masks(weights, {sparsity}, lamp={criterion == "lamp"})
    added = peak() - before
    ours = bench.compute_masks(weights, criterion={criterion!r}, scope="global", sparsity={sparsity})
    differ = sum(int((ours[n] != theirs[n]).sum()) for n in ours)
print(json.dumps([added, differ]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    peak, differ = json.loads(out.strip().splitlines()[-1])
    return peak, ("" if variant == "ours" else f"{differ} weights differ from ours")


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


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


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


COMPARISONS = ["step", "masks", "train", "eval", "startup", "study"]
# Fixed cost per job on this project's 2-core CPU, seconds to the first batch (evaluate, prune)
STARTUP_TARGETS = {"evaluate": 3.0, "prune": 5.0}


def main(argv: list[str] | None = None) -> list[Timing]:
    parser = argparse.ArgumentParser(prog="python -m alignprune.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="model shape (default: cpu, or base on a GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=128, help="sequence length of the step comparison; "
                        "max_length of the Trainer comparisons")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--only", choices=COMPARISONS, action="append", default=None,
                        help="run this comparison only (repeatable; default: all)")
    parser.add_argument("--mask-size", choices=sorted(SIZES), default="base",
                        help="weight shapes of the mask comparison (default: XLM-R base, 84.9M weights)")
    parser.add_argument("--epoch-batches", type=int, default=bench_trainer.GROUP_BATCHES,
                        help="batches of the training epoch timed against Trainer (default: one length group)")
    parser.add_argument("--train-repeats", type=int, default=3, help="timed epochs per variant against Trainer")
    parser.add_argument("--eval-examples", type=int, default=1024)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak for model FLOPs utilisation (default: known for H100/H200/A100)")
    parser.add_argument("--config", nargs="+", default=["config.yaml"], help="config files of the study comparison")
    parser.add_argument("--startup-repeats", type=int, default=5,
                        help="fresh processes per job kind for the fixed cost (startup, study)")
    parser.add_argument("--study-batches", type=int, default=10,
                        help="training batches per timed run of the throughputs the study projection uses")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = args.size or ("base" if device.type == "cuda" else "cpu")
    only = set(args.only or COMPARISONS)
    if args.threads:
        torch.set_num_threads(args.threads)
    allow_tf32(device)
    sync = _sync(device)
    timings = []
    if "step" in only:
        timings += retraining_steps(
            size, device, batch_size=args.batch_size, length=args.length, sparsity=args.sparsity,
            warmup=args.warmup, repeats=args.repeats, peak_tflops=args.peak_tflops,
        )
    if "masks" in only:
        timings += global_masks(args.mask_size, sparsity=args.sparsity, warmup=1, repeats=max(3, args.repeats // 3))
    if "train" in only:
        rates = bench_trainer.training_throughput(
            lambda: xlmr_classifier(size), device, batch_size=args.batch_size, epoch_batches=args.epoch_batches,
            warmup=args.warmup, repeats=args.train_repeats, max_length=args.length, sync=sync,
        )
        timings += throughputs(f"training, one epoch of {args.epoch_batches} batches", rates)
    if "eval" in only:
        rates = bench_trainer.evaluation_throughput(
            xlmr_classifier(size), device, examples=args.eval_examples, batch_size=args.eval_batch_size,
            warmup=1, repeats=max(3, args.repeats // 3), max_length=args.length, sync=sync,
        )
        timings += throughputs(f"evaluation of {args.eval_examples} examples", rates)
    print(f"device {device}, size {size} {SIZES[size]}, batch {args.batch_size}, length {args.length}, "
          f"{torch.get_num_threads()} threads, medians of {args.repeats} after {args.warmup} warm-up rounds "
          f"({args.train_repeats} epochs for training)")
    if timings:
        print(format_table(timings))
    startup = None
    if "startup" in only or "study" in only:
        startup = startup_costs(size, args.startup_repeats, device)
        print(f"fixed cost per job: fresh processes on the demo testbed ({'tiny' if size == 'tiny' else 'demo'} "
              f"shape, 1 thread, {device}), medians of {args.startup_repeats}")
        print(bench_startup.format_table(startup, STARTUP_TARGETS))
    if "study" in only:
        print(study_table(args.config))
        print(study_projection(args.config, startup, size, device, sync, batches=args.study_batches,
                               repeats=max(1, args.train_repeats)))
    return timings


def startup_costs(size: str, repeats: int, device: torch.device) -> list[bench_startup.StartupCost]:
    """Seconds from process start to the first batch of each job kind (see bench_startup)."""
    import tempfile

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="alignprune-testbed-") as folder:
        bed = bench_startup.testbed_for(size, Path(folder), root)
        return bench_startup.measure(bed, repeats=repeats, device=device.type)


def study_projection(config_files: list[str], startup: list[bench_startup.StartupCost], size: str,
                     device: torch.device, sync, *, batches: int, repeats: int) -> str:
    """The study's planned jobs per stage x (measured fixed cost + compute at measured rates)."""
    root = Path(__file__).resolve().parents[2]
    config = load_config(*(root / name for name in config_files),
                         schema_file=root / "workflow/schemas/config.schema.yaml", workdir=root)
    jobs, stats = bench_study.planned_jobs(root, tuple(config_files))
    counted = {rule: sum(job.rule == rule for job in jobs) for rule in stats}
    if counted != stats:
        raise RuntimeError(f"parsed jobs per rule {counted} differ from the plan's job stats {stats}")
    rates = bench_study.measured_rates(
        lambda: xlmr_classifier(size), device, batch_size=config["finetune"]["batch_size"], batches=batches,
        eval_examples=512, eval_batch_size=config["evaluation"]["batch_size"],
        group_by_length=config["finetune"].get("group_by_length", False), repeats=repeats,
        max_length=config["max_length"], sync=sync,
    )
    # the data part scales with the rows each job of the study reads; the rest as measured
    fixed = {cost.kind: bench_study.FixedCost(cost.median - cost.parts.get("data", 0.0), cost.per_row_s)
             for cost in startup}
    costs = bench_study.project(jobs, config, fixed, rates)
    return "\n".join([
        f"projected study of {' + '.join(config_files)} on {device} at the {size} shape: training "
        f"{rates.train:,.1f} examples/s, evaluation {rates.evaluate:,.1f} examples/s (batch "
        f"{config['finetune']['batch_size']} / {config['evaluation']['batch_size']}, NLI-like lengths); "
        "fixed cost per job as measured above, its data part (read, tokenise) scaled to the rows each job reads",
        bench_study.format_projection(costs),
    ])


def study_table(config_files: list[str]) -> str:
    """Optimizer steps of the full study per schedule, and the time Snakemake takes to plan it."""
    root = Path(__file__).resolve().parents[2]
    config = load_config(*(root / name for name in config_files),
                         schema_file=root / "workflow/schemas/config.schema.yaml", workdir=root)
    steps = bench_study.study_steps(config)
    seconds, jobs = bench_study.plan_seconds(root, configfiles=tuple(config_files))
    return "\n".join([
        f"study of {' + '.join(config_files)}: optimizer steps",
        "| schedule | retraining steps | ratio to ladder |", "|---|---:|---:|",
        f"| ladder (each target from the previous) | {steps.ladder:,} | 1.000 |",
        f"| independent, each target from dense with the ladder's steps up to it | {steps.independent_same_budget:,} "
        f"| {steps.independent_same_budget / steps.ladder:.3f} |",
        f"| independent as configured (retrain.steps per target) | {steps.independent:,} "
        f"| {steps.independent / steps.ladder:.3f} |",
        f"dense fine-tuning: {steps.fine_tuning:,} steps; ladder / same-budget independent = {steps.ratio:.3f}",
        f"snakemake -n on the full config: {jobs:,} jobs planned in {seconds:.1f} s (median of 3)",
    ])


if __name__ == "__main__":
    main()
