"""Training batches: every example once per epoch, grouped by length, reproducible, resumable."""

import itertools

import torch

from alignprune.batching import GROUP_BATCHES, epoch_batches, training_batches
from alignprune.data import EncodedSplit


def nli_like_lengths(n: int, seed: int = 0) -> list[int]:
    """Token counts of premise + hypothesis pairs: log-normal around 40, cut at 8 and 128."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.exp(torch.log(torch.tensor(40.0)) + 0.45 * torch.randn(n, generator=generator))
    return lengths.round().clamp(8, 128).long().tolist()


def padded_tokens(batches, lengths) -> int:
    return sum(len(rows) * max(lengths[row] for row in rows) for rows in batches)


def test_an_epoch_holds_every_example_at_most_once_and_drops_only_the_last_partial_batch():
    lengths = nli_like_lengths(1003)
    for grouped in (True, False):
        batches = epoch_batches(lengths, 32, torch.Generator().manual_seed(1), group_by_length=grouped)
        rows = [row for batch in batches for row in batch]
        assert len(batches) == 31 and all(len(batch) == 32 for batch in batches)
        assert len(set(rows)) == len(rows) == 992


def test_grouping_by_length_cuts_the_padded_tokens_and_keeps_batch_order_random():
    lengths = nli_like_lengths(32 * GROUP_BATCHES * 4)
    grouped = epoch_batches(lengths, 32, torch.Generator().manual_seed(1), group_by_length=True)
    plain = epoch_batches(lengths, 32, torch.Generator().manual_seed(1), group_by_length=False)
    real = sum(lengths)
    # plain random batches of 32 pad to ~their longest example (~2x the real tokens here);
    # sorted groups of 50 batches pad little
    assert padded_tokens(plain, lengths) > 1.7 * real
    assert padded_tokens(grouped, lengths) < 1.1 * real
    # the batches of a group are shuffled: the epoch does not run shortest to longest
    longest = [max(lengths[row] for row in batch) for batch in grouped]
    rising = sum(b > a for a, b in itertools.pairwise(longest))
    assert 0.3 < rising / (len(longest) - 1) < 0.7


def test_same_generator_seed_same_batches_other_seed_other_batches():
    lengths = nli_like_lengths(800)
    first, again, other = (epoch_batches(lengths, 16, torch.Generator().manual_seed(seed), group_by_length=True)
                           for seed in (3, 3, 4))
    assert first == again
    assert first != other


def test_skipping_batches_resumes_the_same_stream_across_epochs():
    lengths = nli_like_lengths(100)
    data = EncodedSplit(input_ids=[[5] * n for n in lengths], labels=[i % 3 for i in range(100)])
    stream = training_batches(data, 16, 1, torch.Generator().manual_seed(0), group_by_length=True)
    full = [next(stream) for _ in range(14)]  # 6 batches per epoch: over two epochs
    resumed = training_batches(data, 16, 1, torch.Generator().manual_seed(0), skip=9, group_by_length=True)
    for expected in full[9:]:
        got = next(resumed)
        assert all(torch.equal(a, b) for a, b in zip(expected, got))
    # dynamic padding: each batch is as wide as its longest example
    ids, attention, _ = full[0]
    assert ids.shape[1] == attention.sum(1).max()
