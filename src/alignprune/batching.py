"""Batches of token ids padded to the longest example in the batch (dynamic padding).

Training batches are random (XTREME's recipe) or, with ``group_by_length``, grouped by
length as transformers' Trainer does: each epoch's permutation is cut into groups of
``GROUP_BATCHES`` batches, a group is sorted by length before it is cut into batches, and
the batches of the epoch are shuffled. A batch then holds examples of similar length, so
far less padding is computed, but its examples are no longer a random sample.
"""

from __future__ import annotations

from typing import Iterator

import torch

from .data import EncodedSplit


def collate(input_ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in input_ids)
    ids = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, example in enumerate(input_ids):
        ids[row, : len(example)] = torch.tensor(example, dtype=torch.long)
        attention[row, : len(example)] = 1
    return ids, attention


# transformers' LengthGroupedSampler sorts groups of 50 batches as well
GROUP_BATCHES = 50


def epoch_batches(
    lengths: list[int], batch_size: int, generator: torch.Generator, *, group_by_length: bool = False
) -> list[list[int]]:
    """Row numbers of one epoch's batches; the rows left over after the last full batch are dropped."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    order = order[: len(order) - len(order) % batch_size]
    if group_by_length:
        group = GROUP_BATCHES * batch_size
        order = [row for start in range(0, len(order), group)
                 for row in sorted(order[start : start + group], key=lengths.__getitem__)]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if group_by_length:  # else the batches of a group would come shortest first
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def training_batches(
    data: EncodedSplit, batch_size: int, pad_id: int, generator: torch.Generator, *, skip: int = 0,
    group_by_length: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless batches, a fresh shuffle per epoch (``epoch_batches``).

    ``skip``: leave out the first batches (a resumed run goes on with the batches it had not
    seen; the shuffles are drawn as before, only the padding work is saved).
    """
    if len(data) < batch_size:
        raise ValueError(f"training set has {len(data)} examples, fewer than batch size {batch_size}")
    lengths = [len(ids) for ids in data.input_ids]
    while True:
        for rows in epoch_batches(lengths, batch_size, generator, group_by_length=group_by_length):
            if skip > 0:
                skip -= 1
                continue
            ids, attention = collate([data.input_ids[i] for i in rows], pad_id)
            yield ids, attention, torch.tensor([data.labels[i] for i in rows])


def inference_batches(
    data: EncodedSplit, batch_size: int, pad_id: int
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Batches of examples of similar length (sorted), with their original row numbers."""
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids, attention = collate([data.input_ids[i] for i in rows], pad_id)
        yield rows, ids, attention
