"""Side-by-side benchmarks: ``python -m alignprune.bench``.

Every comparison runs its variants in one process on the same model, batch and
precision, interleaved round by round after warm-up, and reports the median
time per call and its ratio to the comparison's baseline. On CPU the model is
XLM-R-shaped but small (``--size cpu``); with a GPU, ``--size base`` is the
real XLM-RoBERTa-base shape.
"""

from __future__ import annotations

import argparse

import torch

from ..batching import GROUP_BATCHES
from ..evaluate import allow_tf32
from . import startup, study, trainer
from .common import SIZES, Timing, device_sync, format_table, throughputs, xlmr_classifier
from .masks import global_masks
from .step import retraining_steps

COMPARISONS = ["step", "masks", "train", "eval", "startup", "study"]
# Fixed cost per job on this project's 2-core CPU, seconds to the first batch (evaluate, prune)
STARTUP_TARGETS = {"evaluate": 3.0, "prune": 5.0}


def rounds(count: int, what: str = "round") -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def main(argv: list[str] | None = None) -> list[Timing]:
    parser = argparse.ArgumentParser(
        prog="python -m alignprune.bench", description=__doc__.splitlines()[0],
        epilog="The study projection (--only study) computes at the config's own settings, not at "
               "--batch-size, --eval-batch-size or --length (it uses the config's finetune and evaluation "
               "batch sizes and max_length); its fixed costs come from the startup measurement, whose "
               "job processes run 1 thread whatever --threads says.")
    parser.add_argument("--size", choices=sorted(SIZES), default=None,
                        help="model shape of the step, train and eval comparisons, of the startup jobs' model and "
                             "of the study projection (default: cpu, or base on a GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="batch size of the step and train comparisons (not the study projection's)")
    parser.add_argument("--length", type=int, default=128, help="sequence length of the step comparison; "
                        "max_length of the Trainer comparisons (not the study projection's)")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--warmup", type=int, default=3,
                        help="warm-up rounds of the step comparison; steps of the train comparison's warm-up run "
                             "per variant (masks and eval: 1 warm-up round)")
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed rounds of the step comparison; masks and eval time max(3, repeats // 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of this process (default: torch's); "
                             "not the startup jobs' (1 thread)")
    parser.add_argument("--only", choices=COMPARISONS, action="append", default=None,
                        help="run this comparison only (repeatable; default: all)")
    parser.add_argument("--mask-size", choices=sorted(SIZES), default="base",
                        help="weight shapes of the mask comparison (default: XLM-R base, 84.9M weights)")
    parser.add_argument("--epoch-batches", type=int, default=GROUP_BATCHES,
                        help="batches of the training epoch timed against Trainer (default: one length group)")
    parser.add_argument("--train-repeats", type=int, default=3,
                        help="timed epochs per variant against Trainer; timed runs of the study projection's "
                             "throughputs (after one warm-up run)")
    parser.add_argument("--eval-examples", type=int, default=1024,
                        help="examples of the eval comparison and of the study projection's evaluation throughput")
    parser.add_argument("--eval-batch-size", type=int, default=128,
                        help="batch size of the eval comparison (not the study projection's)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak for model FLOPs utilisation (default: known for H100/H200/A100)")
    parser.add_argument("--config", nargs="+", default=["config.yaml"], help="config files of the study comparison")
    parser.add_argument("--startup-repeats", type=int, default=5,
                        help="fresh processes per job kind for the fixed cost (startup, study), after one "
                             "discarded round")
    parser.add_argument("--study-batches", type=int, default=10,
                        help="training batches per timed run of the throughputs the study projection uses")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = args.size or ("base" if device.type == "cuda" else "cpu")
    only = set(args.only or COMPARISONS)
    if args.threads:
        torch.set_num_threads(args.threads)
    allow_tf32(device)
    sync = device_sync(device)
    print(f"device {device}, size {size} {SIZES[size]}, {torch.get_num_threads()} threads")
    timings = []

    def report(heading: str, rows: list[Timing]) -> None:
        """A comparison's table under its own heading: its batch, and its own rounds."""
        print(heading)
        print(format_table(rows))
        timings.extend(rows)

    evaluation_repeats = max(3, args.repeats // 3)
    if "step" in only:
        report(f"retraining step, batch {args.batch_size} x {args.length}, sparsity {args.sparsity:g}: medians of "
               f"{rounds(args.repeats)} after {rounds(args.warmup, 'warm-up round')}",
               retraining_steps(size, device, batch_size=args.batch_size, length=args.length,
                                sparsity=args.sparsity, warmup=args.warmup, repeats=args.repeats,
                                peak_tflops=args.peak_tflops))
    if "masks" in only:
        report(f"masks on the {args.mask_size} shape's weights: medians of {rounds(evaluation_repeats)} after "
               "1 warm-up round; peak memory in a fresh process per variant",
               global_masks(args.mask_size, sparsity=args.sparsity, warmup=1, repeats=evaluation_repeats))
    if "train" in only:
        rates = trainer.training_throughput(
            lambda: xlmr_classifier(size), device, batch_size=args.batch_size, epoch_batches=args.epoch_batches,
            warmup=args.warmup, repeats=args.train_repeats, max_length=args.length, sync=sync,
        )
        report(f"training, batch {args.batch_size}, max_length {args.length}: medians of "
               f"{rounds(args.train_repeats, 'epoch')} per variant after a warm-up run of "
               f"{rounds(args.warmup, 'step')}",
               throughputs(f"training, one epoch of {args.epoch_batches} batches", rates))
    if "eval" in only:
        rates = trainer.evaluation_throughput(
            xlmr_classifier(size), device, examples=args.eval_examples, batch_size=args.eval_batch_size,
            warmup=1, repeats=evaluation_repeats, max_length=args.length, sync=sync,
        )
        report(f"evaluation, batch {args.eval_batch_size}, max_length {args.length}: medians of "
               f"{rounds(evaluation_repeats)} after 1 warm-up round",
               throughputs(f"evaluation of {args.eval_examples} examples", rates))
    costs = None
    if "startup" in only or "study" in only:
        costs = startup.startup_costs(size, args.startup_repeats, device.type)
        data = ("a tiny testbed's data and tokenizer (2 languages)" if size == "tiny"
                else "the demo's data and tokenizer")
        print(f"fixed cost per job: fresh processes on {data} with a {size}-shape model "
              f"({costs[0].parameters:,} parameters), 1 thread, {device}: medians of "
              f"{rounds(args.startup_repeats)} after 1 discarded round")
        print(startup.format_table(costs, STARTUP_TARGETS))
    if "study" in only:
        print(study.study_table(args.config))
        print(study.study_projection(args.config, costs, size, device, sync, batches=args.study_batches,
                                     repeats=max(1, args.train_repeats), eval_examples=args.eval_examples))
    return timings
