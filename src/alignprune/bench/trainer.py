"""Our training loop and evaluation against transformers.Trainer, same model, data and batch size.

Trainer runs as configured at its best (dynamic padding with DataCollatorWithPadding,
``train_sampling_strategy="group_by_length"``) and as XTREME's and transformers'
run_xnli run it (every example padded to max_length, default_data_collator).
The examples are synthetic token ids whose lengths follow an NLI-like distribution
(``nli_like_lengths``): what decides these ratios is how much padding each side computes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Callable

import torch

from ..batching import GROUP_BATCHES
from ..data import EncodedSplit
from ..evaluate import predict, uses_bf16
from ..train import TrainSettings, train
from .common import interleaved

PAD_ID = 1  # XLM-R's


def nli_like_lengths(n: int, seed: int = 0, max_length: int = 128) -> list[int]:
    """Token counts of premise + hypothesis pairs: log-normal, median 40 (mean ~44), cut at 8
    and max_length. An assumption of the benchmark: real XNLI English train pairs are of this
    order with XLM-R's tokenizer; the ratios below scale with the padding they save."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.exp(torch.log(torch.tensor(40.0)) + 0.45 * torch.randn(n, generator=generator))
    return lengths.round().clamp(8, max_length).long().tolist()


def synthetic_split(n: int, vocab: int, seed: int = 0, max_length: int = 128) -> EncodedSplit:
    generator = torch.Generator().manual_seed(seed)
    ids = [[0] + torch.randint(5, vocab, (length - 2,), generator=generator).tolist() + [2]
           for length in nli_like_lengths(n, seed, max_length)]
    return EncodedSplit(ids, torch.randint(0, 3, (n,), generator=generator).tolist())


def _pad_tokenizer():
    """A tokenizer that only pads (what DataCollatorWithPadding needs), built in memory."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": PAD_ID, "</s>": 2, "<unk>": 3}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
                                   pad_token="<pad>", unk_token="<unk>")


def hf_dataset(data: EncodedSplit, *, pad_to: int | None):
    """The split as a datasets.Dataset; ``pad_to``: every example padded to that length (run_xnli)."""
    import datasets

    rows = {"input_ids": data.input_ids, "label": data.labels, "length": [len(ids) for ids in data.input_ids]}
    if pad_to:
        rows["attention_mask"] = [[1] * len(ids) + [0] * (pad_to - len(ids)) for ids in data.input_ids]
        rows["input_ids"] = [ids + [PAD_ID] * (pad_to - len(ids)) for ids in data.input_ids]
    return datasets.Dataset.from_dict(rows)


def _trainer(model, device: torch.device, data: EncodedSplit, *, style: str, settings: TrainSettings,
             max_length: int, callbacks=()):
    """A Trainer as run_xnli runs it (style "run_xnli") or at its best ("best")."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments, default_data_collator

    best = style == "best"
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-trainer-"),
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length" if best else "random",
        bf16=uses_bf16(device),  # as our loop autocasts
        tf32=True if device.type == "cuda" else None,
        use_cpu=device.type == "cpu",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=settings.seed,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=hf_dataset(data, pad_to=None if best else max_length),
        data_collator=DataCollatorWithPadding(_pad_tokenizer()) if best else default_data_collator,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # its metrics lines would interleave with the table
    return trainer


def _step_clock(sync: Callable[[], None]):
    """A TrainerCallback and an on_step hook that record the time at the start of training and
    at the end of each step."""
    from transformers import TrainerCallback

    times: list[float] = []

    def tick(*_):
        sync()
        times.append(time.perf_counter())

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            tick()

        def on_step_end(self, args, state, control, **kwargs):
            tick()

    return times, Clock(), tick


def training_throughput(make_model, device: torch.device, *, batch_size: int, epoch_batches: int = GROUP_BATCHES,
                        warmup: int, repeats: int, max_length: int = 128, sync=lambda: None) -> dict[str, float]:
    """Median training examples per second over one whole epoch of ``epoch_batches`` batches
    (every example once: each side computes exactly its own padding), each variant run
    ``repeats`` times in turn from the same initial model after a ``warmup``-step run."""
    vocab = make_model().config.vocab_size
    data = synthetic_split(batch_size * epoch_batches, vocab, seed=1, max_length=max_length)
    dev = synthetic_split(8, vocab, seed=2, max_length=max_length)

    def ours(group_by_length: bool) -> Callable[[int], list[float]]:
        def run(steps: int) -> list[float]:
            settings = TrainSettings(learning_rate=2e-5, batch_size=batch_size, max_steps=steps, eval_every=10**9,
                                     group_by_length=group_by_length)
            times, _, tick = _step_clock(sync)
            model = make_model()
            tick()  # our setup (optimizer, batches) is inside train(): timed, unlike Trainer's
            train(model, data, dev, settings, pad_id=PAD_ID, device=device, on_step=tick, progress=False)
            return times
        return run

    def trainer(style: str) -> Callable[[int], list[float]]:
        def run(steps: int) -> list[float]:
            settings = TrainSettings(learning_rate=2e-5, batch_size=batch_size, max_steps=steps, eval_every=10**9)
            times, clock, _ = _step_clock(sync)
            _trainer(make_model().to(device), device, data, style=style, settings=settings,
                     max_length=max_length, callbacks=[clock]).train()
            return times
        return run

    variants = {"ours, group_by_length": ours(True),
                "Trainer, group_by_length + dynamic padding": trainer("best"),
                f"Trainer as run_xnli (padded to {max_length})": trainer("run_xnli"),
                "ours, random batches (the config's default)": ours(False)}
    for run in variants.values():
        run(warmup)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            times = run(epoch_batches)
            assert len(times) == epoch_batches + 1, (name, len(times))
            rates[name].append(len(data) / (times[-1] - times[0]))
    return {name: statistics.median(values) for name, values in rates.items()}


def evaluation_throughput(model, device: torch.device, *, examples: int, batch_size: int, warmup: int,
                          repeats: int, max_length: int = 128, sync=lambda: None) -> dict[str, float]:
    """Median evaluation examples per second: our predict (length-sorted batches, dynamic
    padding, inference mode) vs Trainer.evaluate (run_xnli: padded to max_length; and with
    its length-grouped sampler and dynamic padding)."""
    model = model.to(device)
    data = synthetic_split(examples, model.config.vocab_size, seed=3, max_length=max_length)
    settings = TrainSettings(learning_rate=2e-5, batch_size=batch_size, max_steps=1, eval_every=1,
                             eval_batch_size=batch_size)
    trainers = {style: _trainer(model, device, data, style=style, settings=settings, max_length=max_length)
                for style in ("run_xnli", "best")}
    eval_sets = {"run_xnli": hf_dataset(data, pad_to=max_length), "best": hf_dataset(data, pad_to=None)}
    variants = {
        "ours": lambda: predict(model, data, batch_size=batch_size, pad_id=PAD_ID, device=device),
        f"Trainer.evaluate as run_xnli (padded to {max_length})":
            lambda: trainers["run_xnli"].evaluate(eval_sets["run_xnli"]),
        "Trainer.evaluate, group_by_length + dynamic padding": lambda: trainers["best"].evaluate(eval_sets["best"]),
    }
    seconds = interleaved(variants, warmup=warmup, repeats=repeats, sync=sync)
    return {name: examples / value for name, value in seconds.items()}

