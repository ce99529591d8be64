"""How aligned a pruned model stays: with its dense weights, and across languages.

Weight alignment: per prunable matrix, the mean over units (rows: output
neurons) of the cosine between the pruned and the dense unit.

Representational alignment: XNLI and PAWS-X test sets are translations of the
same English examples, so row i of French and row i of English say the same
thing. Per layer, sentence representations (hidden states mean-pooled over
the tokens of the input pair) of a language are compared with English's on
the same rows: mean cosine of paired rows, and linear CKA of the two sets
(Kornblith et al. 2019), which ignores rotations and scale of the space.
"""

from __future__ import annotations

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


def weight_alignment(pruned: torch.nn.Module, dense: torch.nn.Module, names: list[str]) -> pd.DataFrame:
    """One row per prunable matrix: mean unit cosine with the dense matrix, and its sparsity."""
    pruned_params, dense_params = dict(pruned.named_parameters()), dict(dense.named_parameters())
    rows = []
    for name in names:
        weight, reference = pruned_params[name].detach(), dense_params[name].detach()
        if weight.shape != reference.shape:
            raise ValueError(f"{name}: pruned shape {tuple(weight.shape)} != dense {tuple(reference.shape)}")
        rows.append(
            {
                "parameter": name,
                "units": weight.shape[0],
                "mean_cosine": float(unit_cosines(weight, reference).mean()),
                "sparsity": float((weight == 0).double().mean()),
            }
        )
    return pd.DataFrame(rows)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two sets of n representations (n x d1, n x d2), in float64."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same examples: {x.shape[0]} rows vs {y.shape[0]}")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    # ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), computed on d x d matrices
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return float(cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)))


def paired_cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cosine between row i of x and row i of y."""
    return float(torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=1).mean())


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


def not_parallel_reason(english: pd.DataFrame, other: pd.DataFrame, language: str) -> str | None:
    """Why row i of ``other`` cannot be taken as the translation of English row i (None: it can).

    Translations keep the label, so equal row counts and the same label on every row
    are required; a row dropped in one language only breaks both.
    """
    if len(english) != len(other):
        return f"{language} has {len(other)} rows, English {len(english)}: rows cannot be paired"
    differ = int((english["label"].to_numpy() != other["label"].to_numpy()).sum())
    if differ:
        return f"{differ} of {len(other)} rows of {language} have another label than the English row"
    return None


def representation_alignment(english: torch.Tensor, other: torch.Tensor) -> list[dict]:
    """Per layer: cosine and linear CKA of ``other``'s pooled states with English's (same rows)."""
    return [
        {
            "layer": layer,
            "cosine": paired_cosine(other[layer], english[layer]),
            "cka": linear_cka(other[layer], english[layer]),
        }
        for layer in range(english.shape[0])
    ]
