"""Batches of token ids padded to the longest example in the batch (dynamic padding)."""

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


def training_batches(
    data: EncodedSplit, batch_size: int, pad_id: int, generator: torch.Generator, *, skip: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches, a fresh permutation per epoch; the last short batch is dropped.

    ``skip``: leave out the first batches (a resumed run goes on with the batches it had not
    seen; the permutations are drawn as before, only the padding work is saved).
    """
    if len(data) < batch_size:
        raise ValueError(f"training set has {len(data)} examples, fewer than batch size {batch_size}")
    while True:
        order = torch.randperm(len(data), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            if skip > 0:
                skip -= 1
                continue
            rows = order[start : start + batch_size]
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
