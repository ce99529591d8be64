"""How aligned a pruned model stays: with its dense weights, and across languages.

Weight alignment: per prunable matrix, the mean over units (rows: output
neurons) of the cosine between the pruned and the dense unit. Pruning alone
lowers that cosine (the pruned weights' share of the unit is gone whatever
retraining does), so two measures of the kept weights alone stand beside it,
with M the kept weights (the pruned model's non-zeros): the mean unit cosine
with the dense unit's kept part M*W0, and the relative change of the kept
weights, |W - M*W0| / |M*W0| over the matrix. Both read 1 and 0 for a pruned
copy that was never retrained; they are what the alignment regularizers act on
(the penalty above its floor, regularizers.penalty_floor, at the defaults: rows
as units, the dense model as reference: Frobenius' is numel |W - M*W0|^2 /
|W0|^2, cosine's the unit's width x sum_u |M*W0_u| / |W0_u| (1 - kept cosine_u),
a weighted sum where the table gives the plain mean over units). M is read off
the weights: a kept weight that is exactly 0 counts as pruned, as in the
sparsity beside it.

Representational alignment: XNLI and PAWS-X test sets are translations of the
same English examples, so row i of French and row i of English say the same
thing. Per layer, sentence representations (hidden states mean-pooled over
the tokens of the input pair) of a language are compared with English's on
the same rows: the mean cosine of paired rows after centring each set (without
centring, unrelated rows that share a mean vector score near 1), and debiased
linear CKA of the two sets (Kornblith et al. 2019), which ignores rotations
and scale of the space. Plain linear CKA is biased upwards when the width d is
not small next to the number of rows n: independent Gaussian sets score about
d / (n + d) (0.43 at n = 1,000, d = 768), so it would rise with anything that
lowers the rank of the representations. The debiased form replaces each HSIC
by its unbiased estimator (Song et al. 2012), which is about 0 for independent
sets. Each measure comes with a baseline: the same measure with the other
language's rows shuffled, which breaks the pairing and keeps everything else.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch

from .batching import inference_batches
from .data import EncodedSplit
from .evaluate import autocast


def unit_cosines(weight: torch.Tensor, reference: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Cosine of each row of ``weight`` with the same row of ``reference`` (a zero row gives 0)."""
    weight, reference = weight.double(), reference.double()
    dots = (weight * reference).sum(1)
    norms = weight.norm(dim=1) * reference.norm(dim=1)
    return dots / norms.clamp_min(eps)


def kept_weight_change(weight: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(mean unit cosine of ``weight`` with ``reference``'s kept part, relative change of the kept
    weights): kept = ``weight``'s non-zeros. Units with nothing kept are left out of the mean
    (nothing of theirs can move); NaN for both when nothing of the matrix is kept."""
    weight, reference = weight.double(), reference.double()
    kept = weight != 0
    kept_reference = reference * kept
    units = kept.any(1)
    if not units.any():
        return float("nan"), float("nan")
    cosine = unit_cosines(weight[units], kept_reference[units]).mean()
    change = (weight - kept_reference).norm() / kept_reference.norm().clamp_min(1e-12)
    return float(cosine), float(change)


def weight_alignment(
    pruned: Mapping[str, torch.Tensor], dense: Mapping[str, torch.Tensor], names: list[str]
) -> pd.DataFrame:
    """One row per prunable matrix (``names``, keys of both weight mappings): mean unit cosine
    with the dense matrix, the kept weights' own cosine and relative change
    (``kept_weight_change``), and the matrix's sparsity."""
    rows = []
    for name in names:
        weight, reference = pruned[name].detach(), dense[name].detach()
        if weight.shape != reference.shape:
            raise ValueError(f"{name}: pruned shape {tuple(weight.shape)} != dense {tuple(reference.shape)}")
        kept_cosine, kept_change = kept_weight_change(weight, reference)
        rows.append(
            {
                "parameter": name,
                "units": weight.shape[0],
                "mean_cosine": float(unit_cosines(weight, reference).mean()),
                "kept_cosine": kept_cosine,
                "kept_change": kept_change,
                "sparsity": float((weight == 0).double().mean()),
            }
        )
    return pd.DataFrame(rows)


def _unbiased_hsic_terms(xty: torch.Tensor, sq_x: torch.Tensor, sq_y: torch.Tensor, n: int) -> torch.Tensor:
    """n (n - 3) x the unbiased HSIC of two linear kernels of centred features (Song et al. 2012).

    With K = X X^T, L = Y Y^T and K~, L~ their copies with a zero diagonal:
    tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1. For centred features
    K 1 = 0, so 1'K~1 = -tr K and K~ 1 = -diag K, which leaves
    ||Y^T X||_F^2 - n/(n-2) diag(K).diag(L) + tr K tr L / ((n-1)(n-2)).
    ``xty``: ||Y^T X||_F^2; ``sq_x``, ``sq_y``: squared norms of the rows (diag K, diag L).
    """
    return xty - n / (n - 2) * sq_x.dot(sq_y) + sq_x.sum() * sq_y.sum() / ((n - 1) * (n - 2))


def linear_cka(x: torch.Tensor, y: torch.Tensor, debiased: bool = True) -> float:
    """Linear CKA of two sets of n representations (n x d1, n x d2), in float64.

    debiased (default): each HSIC by its unbiased estimator, so independent sets score
    about 0 whatever d / n (it can be slightly negative); False: the plain, biased CKA.
    Computed on d x d matrices, never the n x n Gram matrices.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same examples: {x.shape[0]} rows vs {y.shape[0]}")
    n = x.shape[0]
    if debiased and n < 4:
        raise ValueError(f"debiased CKA needs at least 4 rows, got {n}")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    self_x = torch.linalg.matrix_norm(x.T @ x) ** 2
    self_y = torch.linalg.matrix_norm(y.T @ y) ** 2
    if debiased:
        sq_x, sq_y = x.pow(2).sum(1), y.pow(2).sum(1)
        cross = _unbiased_hsic_terms(cross, sq_x, sq_y, n)
        self_x = _unbiased_hsic_terms(self_x, sq_x, sq_x, n)
        self_y = _unbiased_hsic_terms(self_y, sq_y, sq_y, n)
    return float(cross / torch.sqrt(self_x * self_y))


def paired_cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cosine between row i of x and row i of y, each set centred on its own mean first
    (what the rows share with every other row of their set says nothing about the pairing)."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    return float(torch.nn.functional.cosine_similarity(x, y, dim=1).mean())


@torch.inference_mode()
def pooled_states(model, data: EncodedSplit, *, batch_size: int, pad_id: int, device) -> torch.Tensor:
    """Mean-pooled hidden states of every layer (embeddings first): layers+1 x n x hidden, float32."""
    model.eval()
    pooled = None
    for rows, ids, attention in inference_batches(data, batch_size, pad_id):
        ids, attention = ids.to(device), attention.to(device)
        with autocast(device):
            states = model(input_ids=ids, attention_mask=attention, output_hidden_states=True).hidden_states
        weights = (attention / attention.sum(1, keepdim=True)).unsqueeze(-1).float()
        batch = torch.stack([(layer.float() * weights).sum(1) for layer in states]).cpu()
        if pooled is None:
            pooled = torch.empty(batch.shape[0], len(data), batch.shape[-1])
        pooled[:, rows] = batch
    return pooled


def not_parallel_reason(english: Sequence[int], other: Sequence[int], language: str) -> str | None:
    """Why row i of ``other`` cannot be taken as the translation of English row i (None: it can);
    ``english``, ``other``: the labels of the rows.

    Translations keep the label, so equal row counts and the same label on every row
    are required; a row dropped in one language only breaks both.
    """
    if len(english) != len(other):
        return f"{language} has {len(other)} rows, English {len(english)}: rows cannot be paired"
    differ = sum(int(a != b) for a, b in zip(english, other))
    if differ:
        return f"{differ} of {len(other)} rows of {language} have another label than the English row"
    return None


def representation_alignment(english: torch.Tensor, other: torch.Tensor, seed: int = 0) -> list[dict]:
    """Per layer: centred paired cosine and debiased linear CKA of ``other``'s pooled states with
    English's (same rows), and both again with ``other``'s rows shuffled (``*_shuffled``: the
    value of a set that is not paired at all; one permutation from ``seed`` for every layer)."""
    permutation = torch.randperm(other.shape[1], generator=torch.Generator().manual_seed(seed))
    rows = []
    for layer in range(english.shape[0]):
        shuffled = other[layer][permutation]
        rows.append({
            "layer": layer,
            "cosine": paired_cosine(other[layer], english[layer]),
            "cka": linear_cka(other[layer], english[layer]),
            "cosine_shuffled": paired_cosine(shuffled, english[layer]),
            "cka_shuffled": linear_cka(shuffled, english[layer]),
        })
    return rows
