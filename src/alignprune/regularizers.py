"""Alignment regularizers between the pruned network and its unpruned reference W0.

Our reading of the paper's two regularizers (its exact equations were not
available; see the README). For a prunable layer l with weight W (out x in),
mask M, reference W0, N_l weights and units u of k_l weights each:

- cosine:    k_l x sum over units u of 1 - cos((M*W)_u, W0_u)
- frobenius: N_l x ||M*W - W0||_F^2 / ||W0||_F^2
- l2:        ||W - W0||_2^2                      (the classic baseline)

each summed over layers. Units are rows (output units, k_l = in) by default,
columns (input units, k_l = out) as an option.

Each penalty is thus a sum over the prunable weights of one term per weight
(its unit's cosine distance; its layer's relative squared error; its own squared
drift), so a regularizer weight pulls every parameter equally hard whatever the
number of layers, units or their width: at a given relative drift from W0 the
gradient per parameter does not depend on the model's shape. The per-layer
quantities (mean cosine distance of the units, relative Frobenius error) are the
same as an average would give; only their aggregation is a weighted sum.

``AlignmentPenalty`` is what training uses: it computes the value and the exact
gradient analytically (one pass per layer, no autograd graph and no stacked
copies of the weights) and adds weight x gradient to the weights'
``.grad`` after the task loss's backward pass. ``alignment_penalty`` is the same
definition through autograd, layer by layer: the reference the analytic gradient
is tested against, and a differentiable value for analysis. ``penalty_floor`` is the least value
the masks leave a penalty (at W = M*W0), logged beside it during retraining.
"""

from __future__ import annotations

import torch

# the kinds that compare units (rows or columns) and read ``units``: defined with method_settings,
# which passes a prune job its method's units for these kinds only
from .operational import UNIT_REGULARIZERS

# As the config schema's regularizer enum. A kind added here needs a branch in alignment_penalty
# and in AlignmentPenalty (its setup and accumulate_grad); one listed without them is refused
# there, not computed as another kind.
REGULARIZERS = ("none", "l2", "cosine", "frobenius")
UNITS = ("rows", "columns")
EPS = 1e-8  # norms below it count as EPS (as in torch.nn.functional.cosine_similarity)


def _check(kind: str, units: str | None) -> int:
    """The dimension a unit's weights lie along in an (out x in) weight (``units`` is read by
    UNIT_REGULARIZERS alone; the others may get None)."""
    if kind not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {kind!r}; known: {REGULARIZERS}")
    if kind not in UNIT_REGULARIZERS:
        return 1
    if units not in UNITS:
        raise ValueError(f"the {kind} regularizer compares units: unknown units {units!r}; known: {UNITS}")
    return 1 if units == "rows" else 0


def add_scaled(grad: torch.Tensor, term: torch.Tensor, coefficient: float) -> None:
    """grad += coefficient x term (``term`` may be overwritten). A coefficient beyond the dtype's
    range (an absurd regularizer weight) overflows to inf, as autograd's gradient would, so that
    training stops with its non-finite-gradient message, instead of failing inside ``add_``'s
    conversion of ``alpha`` (l2 and Frobenius add through here; cosine's terms, scaled as
    tensors by addcmul_, overflow to inf by themselves)."""
    if abs(coefficient) <= torch.finfo(term.dtype).max:
        grad.add_(term, alpha=coefficient)
    else:
        grad.add_(term.mul_(coefficient))


def alignment_penalty(
    kind: str,
    weights: list[torch.Tensor],
    references: list[torch.Tensor],
    masks: list[torch.Tensor] | None = None,
    units: str | None = "rows",
) -> torch.Tensor:
    """The regularizer ``kind`` over all prunable layers, differentiable in ``weights``
    (autograd, layer by layer: the reference definition)."""
    dim = _check(kind, units)
    total = weights[0].new_zeros(()) if weights else torch.zeros(())
    if kind == "none":
        return total
    for i, (w, r) in enumerate(zip(weights, references)):
        r = r.to(w.dtype)
        if kind == "l2":  # l2 compares the weights as they are
            total = total + (w - r).pow(2).sum()
            continue
        v = w * masks[i].to(w.dtype) if masks is not None else w
        if kind == "frobenius":
            total = total + w.numel() * (v - r).pow(2).sum() / r.pow(2).sum()
        elif kind == "cosine":
            dot = (v * r).sum(dim)
            cosine = dot / (v.norm(dim=dim).clamp_min(EPS) * r.norm(dim=dim).clamp_min(EPS))
            total = total + w.shape[dim] * (1.0 - cosine).sum()
        else:
            raise NotImplementedError(f"regularizer {kind!r} has no definition: add its branch to alignment_penalty")
    return total


def penalty_floor(
    kind: str,
    references: list[torch.Tensor],
    masks: list[torch.Tensor],
    units: str | None = "rows",
) -> torch.Tensor:
    """The least value the regularizer ``kind`` can take while the weights ``masks`` prune stay 0:
    its value at W = M*W0, every kept weight equal to its reference (for each kind the closest
    point of the masked weights to W0; cosine: cos((M*W)_u, W0_u) <= |(M*W0)_u| / |W0_u|, reached
    there). Retraining can move only the penalty above it, so penalty - floor measures how far the
    kept weights moved. Layer by layer: no copy of all the weights at once."""
    with torch.no_grad():
        terms = [alignment_penalty(kind, [r * m.to(r.dtype)], [r], None, units)
                 for r, m in zip(references, masks)]
    return torch.stack(terms).sum() if terms else torch.zeros(())


class AlignmentPenalty:
    """The regularizer ``kind`` of ``weights`` against ``references``, with its gradient.

    ``accumulate_grad(weight)`` adds weight x the penalty's gradient to each weight's
    ``.grad`` and returns the penalty's value; calling the object returns the value
    alone. Both are detached and stay on the device (no host sync). What does not
    change between steps (references, masks, reference norms) is read once, here.

    The work is one pass per layer over its weight, reference and gradient, through
    two scratch buffers of the largest layer's size allocated here: no temporary of the
    weights' total size per step (on CPU each would cost fresh pages every step).
    """

    def __init__(
        self,
        kind: str,
        weights: list[torch.Tensor],
        references: list[torch.Tensor],
        masks: list[torch.Tensor] | None = None,
        units: str = "rows",
    ):
        self.dim = _check(kind, units)
        if len(references) != len(weights) or (masks is not None and len(masks) != len(weights)):
            raise ValueError(f"{len(weights)} weights need as many references and masks; got "
                             f"{len(references)} references and {len(masks or [])} masks")
        if not weights:
            raise ValueError("no weights to regularize: the model has no prunable weights")
        self.kind, self.units, self.weights = kind, units, list(weights)
        with torch.no_grad():
            self.references = [r.detach().to(w.dtype) for w, r in zip(weights, references)]
            for w, r in zip(weights, self.references):
                if w.shape != r.shape:
                    raise ValueError(f"a weight of shape {tuple(w.shape)} has a reference of shape {tuple(r.shape)}")
            # l2 compares the weights as they are; the others the pruned weights M*W
            self.masks = None
            if masks is not None and kind in ("cosine", "frobenius"):
                self.masks = [m.to(w.dtype) for w, m in zip(weights, masks)]
            if kind == "frobenius":
                squares = torch.stack(torch._foreach_norm(self.references)).double().pow(2).tolist()  # once
                if any(s == 0 for s in squares):
                    raise ValueError("a reference layer is all zeros: the Frobenius penalty divides by its "
                                     "norm; align to another reference or use l2")
                self.scales = [w.numel() / s for w, s in zip(weights, squares)]  # N / ||W0||^2 per layer
            elif kind == "cosine":
                self.reference_norms = [r.norm(dim=self.dim, keepdim=True).clamp_min(EPS) for r in self.references]
            elif kind not in ("none", "l2"):  # before any step: accumulate_grad has no branch for it
                raise NotImplementedError(f"regularizer {kind!r} has no analytic gradient: add its setup here "
                                          "and its branch to AlignmentPenalty.accumulate_grad (regularizers.py)")
            size = max(w.numel() for w in weights)
            self.scratch = [weights[0].new_empty(size, dtype=weights[0].dtype) for _ in range(2)]

    def __call__(self) -> torch.Tensor:
        return self.accumulate_grad(None)

    def floor(self, masks: list[torch.Tensor]) -> torch.Tensor:
        """``penalty_floor`` of this penalty's references under ``masks`` (one per weight, in order)."""
        return penalty_floor(self.kind, self.references, masks, self.units)

    @torch.no_grad()
    def accumulate_grad(self, weight: float | None) -> torch.Tensor:
        """Add ``weight`` x d(penalty)/d(weights) to the weights' ``.grad`` (None: value only);
        return the penalty's value (0-dim, detached, on the weights' device)."""
        if self.kind == "none":
            return self.weights[0].new_zeros(())
        terms = []
        for i, (param, r) in enumerate(zip(self.weights, self.references)):
            w = param.detach()
            if weight and param.grad is None:
                param.grad = torch.zeros_like(param)
            grad = param.grad if weight else None
            mask = self.masks[i] if self.masks is not None else None
            a, b = (buffer[: w.numel()].view(w.shape) for buffer in self.scratch)
            if self.kind == "cosine":
                terms.append(self._cosine(w, r, self.reference_norms[i], mask, grad, weight, a, b))
                continue
            # l2 or frobenius (the constructor refuses any other kind)
            if mask is not None:  # frobenius: M*W - W0
                torch.mul(w, mask, out=a).sub_(r)
            else:
                torch.sub(w, r, out=a)
            square = torch.linalg.vector_norm(a).square()
            scale = 1.0 if self.kind == "l2" else self.scales[i]
            terms.append(square * scale if self.kind == "frobenius" else square)
            if grad is not None:
                if mask is not None:
                    a.mul_(mask)  # chain rule through M*W
                add_scaled(grad, a, 2.0 * weight * scale)
        return torch.stack(terms).sum()

    def _cosine(self, v, r, r_norm, mask, grad, weight, a, b) -> torch.Tensor:
        # For a unit v = (M*W)_u with reference r: c = <v, r> / (|v|_e |r|_e), |x|_e = max(|x|, EPS);
        # dc/dv = r / (|v|_e |r|_e) - c v / |v|^2 (the second term only where |v| >= EPS, as the
        # clamp passes no gradient below it). The term is k (1 - c), so its gradient is -k dc/dv.
        dim = self.dim
        if mask is not None:
            v = torch.mul(v, mask, out=a)
        v_norm = torch.linalg.vector_norm(v, dim=dim, keepdim=True)
        v_clamped = v_norm.clamp_min(EPS)
        cosine = torch.mul(v, r, out=b).sum(dim, keepdim=True) / (v_clamped * r_norm)
        k = v.shape[dim]
        term = k * (1.0 - cosine).sum()
        if grad is None:
            return term
        along_v = torch.where(v_norm >= EPS, (k * weight) * cosine / v_clamped.square(), 0.0)
        along_r = (-k * weight) / (v_clamped * r_norm)
        if mask is None:  # straight into the gradient: two passes, no scratch
            grad.addcmul_(v, along_v).addcmul_(r, along_r)
        else:  # chain rule through M*W
            grad.addcmul_(torch.mul(v, along_v, out=b).addcmul_(r, along_r), mask)
        return term
