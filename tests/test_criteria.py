"""Criteria scores against hand-computed values."""

import pytest
import torch

from alignprune.criteria import ScoreInputs, lamp_scores, lookahead_scores, sort_non_negative, xlmr_neighbours

P = "roberta.encoder.layer."


def test_lamp_scores_equal_hand_computed_values():
    w = torch.tensor([[1.0, -3.0], [2.0, 0.5]])
    # squares 1, 9, 4, 0.25; ascending 0.25 < 1 < 4 < 9; suffix sums 14.25, 14, 13, 9
    expected = torch.tensor([[1 / 14, 9 / 9], [4 / 13, 0.25 / 14.25]])
    assert torch.allclose(lamp_scores(ScoreInputs({"w": w}))["w"], expected)


def test_lamp_largest_weight_of_every_layer_scores_one():
    g = torch.Generator().manual_seed(0)
    weights = {n: torch.randn(5, 7, generator=g) * scale for n, scale in (("a", 1.0), ("b", 100.0))}
    scores = lamp_scores(ScoreInputs(weights))
    for name, w in weights.items():
        assert scores[name].flatten()[w.abs().argmax()] == pytest.approx(1.0)
        assert scores[name].max() == pytest.approx(1.0)


def test_fast_sort_equals_torch_stable_sort_with_ties_zeros_and_extremes():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(10_000, generator=g).pow(2)
    values[::7] = 0.0  # pruned weights
    values[1::13] = 0.25  # ties among kept weights
    values[5], values[6] = torch.finfo(torch.float32).max, torch.finfo(torch.float32).tiny / 4  # subnormal
    ordered, order = sort_non_negative(values)
    expected_values, expected_order = torch.sort(values, stable=True)
    assert torch.equal(ordered, expected_values)
    assert torch.equal(order, expected_order)  # ties by position, as the stable sort


def test_xlmr_neighbours_follow_the_block():
    parts = ["attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "intermediate.dense", "output.dense"]
    names = [f"{P}{layer}.{part}.weight" for layer in (0, 1) for part in parts]
    n = xlmr_neighbours(names)
    assert n[f"{P}0.attention.self.query.weight"] == ([], [])
    assert n[f"{P}1.attention.self.key.weight"] == ([f"{P}0.output.dense.weight"], [])
    assert n[f"{P}0.attention.self.value.weight"] == ([], [f"{P}0.attention.output.dense.weight"])
    assert n[f"{P}0.attention.output.dense.weight"] == (
        [f"{P}0.attention.self.value.weight"], [f"{P}0.intermediate.dense.weight"])
    assert n[f"{P}0.intermediate.dense.weight"] == (
        [f"{P}0.attention.output.dense.weight"], [f"{P}0.output.dense.weight"])
    assert n[f"{P}0.output.dense.weight"] == ([f"{P}0.intermediate.dense.weight"], [
        f"{P}1.attention.self.query.weight", f"{P}1.attention.self.key.weight",
        f"{P}1.attention.self.value.weight"])
    assert n[f"{P}1.output.dense.weight"] == ([f"{P}1.intermediate.dense.weight"], [])


def test_lookahead_scores_equal_hand_computed_values():
    inter = torch.tensor([[1.0, 2.0], [0.0, 3.0], [1.0, 1.0]])  # intermediate: 2 -> 3
    out = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # output: 3 -> 2
    attn_out = torch.tensor([[1.0, 1.0], [2.0, 0.0]])  # attention output: 2 -> 2
    weights = {
        f"{P}0.attention.output.dense.weight": attn_out,
        f"{P}0.intermediate.dense.weight": inter,
        f"{P}0.output.dense.weight": out,
    }
    scores = lookahead_scores(ScoreInputs(weights))
    # intermediate[j, k]: previous = attention output row k, next = output column j
    prev_rows = torch.tensor([1 + 1, 4 + 0.0])
    next_cols = torch.tensor([4 + 1, 0 + 1, 1 + 1.0])
    for j in range(3):
        for k in range(2):
            expected = inter[j, k] ** 2 * prev_rows[k] * next_cols[j]
            assert scores[f"{P}0.intermediate.dense.weight"][j, k] == pytest.approx(expected.item())
    # output has no next layer here (counts as 1); its previous is intermediate
    inter_rows = (inter**2).sum(dim=1)
    assert torch.allclose(scores[f"{P}0.output.dense.weight"], out**2 * inter_rows[None, :])
    # attention output has no previous layer here (value is absent)
    inter_cols = (inter**2).sum(dim=0)
    assert torch.allclose(scores[f"{P}0.attention.output.dense.weight"], attn_out**2 * inter_cols[:, None])
