"""Side-by-side benchmarks of the package: ``python -m alignprune.bench`` (see ``cli``).

- ``cli``: the command line, which runs the comparisons below and prints their tables;
- ``common``: timing (interleaved medians), the benchmark model shapes, the result rows;
- ``step``: one retraining step, masked or not, with each regularizer, against torch's prune hooks;
- ``masks``: global magnitude and LAMP masks against ``torch.nn.utils.prune`` (``mask_memory``:
  the fresh process that measures their peak memory);
- ``trainer``: our training loop and evaluation against ``transformers.Trainer``;
- ``startup``: per-job fixed cost, fresh processes timed to their first batch;
- ``study``: the full study's optimizer steps, its plan, and its projected cost;
- ``project``: the project checkout the benchmarks run in (its root, config.yaml's prunable weights).

Nothing is imported here: ``python -m alignprune.bench.startup`` times its own imports.
"""
