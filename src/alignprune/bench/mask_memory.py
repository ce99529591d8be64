"""The fresh process of the mask comparison's memory measurement:

    python -m alignprune.bench.mask_memory SIZE SPARSITY CRITERION VARIANT

builds the random weights of ``SIZE``, then the masks of ``VARIANT`` (``ours`` or
``torch.nn.utils.prune.global_unstructured``), and prints ``[added MB, weights that differ
from ours]`` as JSON: the peak resident memory the masks added to the weights', and (for
torch's variant) how many mask entries differ from ours.
"""

from __future__ import annotations

import argparse
import json

from ..pruning import compute_masks
from .common import SIZES, peak_rss_mb
from .masks import VARIANTS, encoder_linear_weights, torch_prune_masks


def measure(size: str, sparsity: float, criterion: str, variant: str) -> tuple[float, int]:
    weights = encoder_linear_weights(size)
    before = peak_rss_mb()
    if variant == VARIANTS[0]:  # ours
        compute_masks(weights, criterion=criterion, scope="global", sparsity=sparsity)
        return peak_rss_mb() - before, 0
    theirs = torch_prune_masks(weights, sparsity, lamp=criterion == "lamp")
    added = peak_rss_mb() - before
    ours = compute_masks(weights, criterion=criterion, scope="global", sparsity=sparsity)
    return added, sum(int((ours[name] != theirs[name]).sum()) for name in ours)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alignprune.bench.mask_memory",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("sparsity", type=float)
    parser.add_argument("criterion", choices=["magnitude", "lamp"])
    parser.add_argument("variant", choices=VARIANTS)
    args = parser.parse_args(argv)
    print(json.dumps(list(measure(args.size, args.sparsity, args.criterion, args.variant))))


if __name__ == "__main__":
    main()
