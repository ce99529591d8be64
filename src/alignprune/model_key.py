"""A model's identity and every file named after it: the one place paths are spelled and parsed.

A model is a ``ModelKey``: its task, seed, method ('dense' for the fine-tuned model), sparsity
target (a canonical two-decimal string, ``"0.50"``; None for dense) and, for a run of the
regularizer-weight sweep, the weight under test (``"0.1"``, ``"1000"``). Its folder below
``paths.results`` (and ``paths.logs``, ``paths.benchmarks``) is::

    {task}/seed~{seed}/dense
    {task}/seed~{seed}/method~{method}/sparsity~{target}
    sweep/{task}/seed~{seed}/method~{method}/weight~{weight}/sparsity~{target}

``Layout`` names the files of a key under those roots (model, eval and analysis files, logs,
benchmarks); ``ModelKey.parse`` reads a key back from any of them, ``from_wildcards`` from a
rule's wildcards. A key whose fields are wildcards (``"{seed}"``) names a Snakemake path
pattern (``ModelKey.pattern``); ``VARIANT`` as the method stands for the evaluation and
representation rules' one wildcard ``{variant}``: the whole model folder below the seed,
``dense`` or ``method~{method}/sparsity~{target}``.

Standard library only: the Snakefile imports this at plan time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DENSE = "dense"
SWEEP = "sweep"
# the name of each part of a folder: seed~1, method~random, weight~0.1, sparsity~0.50
SEED, METHOD, WEIGHT, SPARSITY = "seed~", "method~", "weight~", "sparsity~"
# what each wildcard matches (the Snakefile's wildcard_constraints)
SEED_PATTERN = r"\d+"
TARGET_PATTERN = r"\d\.\d\d"
WEIGHT_PATTERN = r"[0-9.e+-]+"
METHOD_NAME_PATTERN = r"[A-Za-z0-9_]+"
VARIANT_PATTERN = rf"{DENSE}|{METHOD}{METHOD_NAME_PATTERN}/{SPARSITY}{TARGET_PATTERN}"
# the evaluation and representation rules' wildcard for a whole model folder below the seed
VARIANT = "{variant}"

_FOLDER = re.compile(
    rf"(?:^|/)(?P<sweep>{SWEEP}/)?(?P<task>[^/]+)/{SEED}(?P<seed>{SEED_PATTERN})/"
    rf"(?:{DENSE}|{METHOD}(?P<method>{METHOD_NAME_PATTERN})/"
    rf"(?:{WEIGHT}(?P<weight>{WEIGHT_PATTERN})/)?{SPARSITY}(?P<target>{TARGET_PATTERN}))(?=/|$)"
)


def target_label(sparsity: float | str) -> str:
    """The one way to print a sparsity target: 0.5 -> '0.50' (the config allows two decimals)."""
    return f"{float(sparsity):.2f}"


def weight_label(weight: float | str) -> str:
    """The one way to print a sweep weight: 0.1 -> '0.1', 1000.0 -> '1000'."""
    return f"{float(weight):g}"


def target_part(target: str) -> str:
    """A target's folder (or file) name: 'sparsity~0.50'."""
    return f"{SPARSITY}{target}"


def method_part(method: str) -> str:
    """A method's folder (or file) name: 'method~random'."""
    return f"{METHOD}{method}"


@dataclass(frozen=True)
class ModelKey:
    """One model: fields as they appear in its folder names (seed an int, or a wildcard)."""

    task: str
    seed: int | str
    method: str = DENSE
    target: str | None = None
    weight: str | None = None

    @classmethod
    def of(cls, task: str, seed: int | str, method: str = DENSE, sparsity: float | str | None = None,
           weight: float | str | None = None) -> ModelKey:
        """A concrete key from any spelling: a float or string target, an int or string seed."""
        dense = method == DENSE
        if dense != (sparsity is None) or (dense and weight is not None):
            raise ValueError(f"a dense model has no target or weight, a pruned one a target: "
                             f"method {method!r}, sparsity {sparsity!r}, weight {weight!r}")
        return cls(task, int(seed), method, None if dense else target_label(sparsity),
                   None if weight is None else weight_label(weight))

    @classmethod
    def pattern(cls, task: str = "{task}", *, dense: bool = False, sweep: bool = False,
                variant: bool = False) -> ModelKey:
        """The Snakemake pattern of a rule's models: wildcards {seed}, {method}, {sparsity}
        ({weight} for the sweep); ``dense``: the dense model; ``variant``: any model of the
        study, dense or pruned, as the one wildcard {variant}."""
        if dense or variant:
            return cls(task, "{seed}", VARIANT if variant else DENSE)
        return cls(task, "{seed}", "{method}", "{sparsity}", "{weight}" if sweep else None)

    @classmethod
    def from_variant(cls, task: str, seed: int | str, variant: str) -> ModelKey:
        """The key of a {variant} wildcard: 'dense' or 'method~m/sparsity~0.50'."""
        return cls.parse(f"{task}/{SEED}{seed}/{variant}")

    @classmethod
    def from_wildcards(cls, wildcards, task: str | None = None) -> ModelKey:
        """The key of a job from its wildcards (task: for the per-task rules, which have none)."""
        names = dict(wildcards.items())
        task = task or names["task"]
        if "variant" in names:
            return cls.from_variant(task, names["seed"], names["variant"])
        return cls.of(task, names["seed"], names.get("method", DENSE), names.get("sparsity"),
                      names.get("weight"))

    @classmethod
    def parse(cls, path: str | Path) -> ModelKey:
        """The key of any file or folder named after a model (the last model folder in ``path``)."""
        matches = list(_FOLDER.finditer(str(Path(path).as_posix())))
        if not matches:
            raise ValueError(f"no model folder in {str(path)!r}")
        found = matches[-1].groupdict()
        # A 'sweep/' before a model without a weight is the results root's own last folder
        # (paths.results: runs/sweep), not the sweep's: every sweep model has a weight.
        if found["weight"] is not None and not found["sweep"]:
            raise ValueError(f"a sweep model has a weight and no other model has: {str(path)!r}")
        return cls(found["task"], int(found["seed"]), found["method"] or DENSE, found["target"], found["weight"])

    @property
    def variant(self) -> str:
        """The model's folder below its seed: 'dense', 'method~m/sparsity~0.50' (with the sweep:
        'method~m/weight~0.1/sparsity~0.50')."""
        if self.method in (DENSE, VARIANT):
            return self.method
        weight = "" if self.weight is None else f"{WEIGHT}{self.weight}/"
        return f"{method_part(self.method)}/{weight}{target_part(self.target)}"

    @property
    def folder(self) -> str:
        """The model's folder below a root: '{task}/seed~1/dense', 'sweep/{task}/seed~1/...'."""
        sweep = "" if self.weight is None else f"{SWEEP}/"
        return f"{sweep}{self.task}/{SEED}{self.seed}/{self.variant}"

    @property
    def sparsity(self) -> float | None:
        """The target as a number (None for dense), for computing with it."""
        return None if self.target is None else float(self.target)

    def record(self) -> dict:
        """The columns that name a model in every eval and alignment record."""
        return {"task": self.task, "seed": int(self.seed), "method": self.method,
                "sparsity_target": 0.0 if self.target is None else float(self.target)}

    def with_target(self, target: str) -> ModelKey:
        """The same method (and sweep weight) at another target: a ladder's start."""
        return ModelKey(self.task, self.seed, self.method, target, self.weight)

    def dense(self) -> ModelKey:
        """The dense model of the same task and seed."""
        return ModelKey(self.task, self.seed)


@dataclass(frozen=True)
class Layout:
    """Every file named after a model, under a run's roots (config paths.results, .logs,
    .benchmarks). ``key`` may be a pattern (ModelKey.pattern)."""

    results: str
    logs: str
    benchmarks: str

    @classmethod
    def of(cls, paths: dict) -> Layout:
        return cls(paths["results"], paths["logs"], paths["benchmarks"])

    def model_dir(self, key: ModelKey) -> str:
        return f"{self.results}/{key.folder}/model"

    def eval_file(self, key: ModelKey, split: str, lang: str) -> str:
        return f"{self.results}/{key.folder}/eval/{split}/{lang}.json"

    def representation_file(self, key: ModelKey, split: str, lang: str) -> str:
        return f"{self.results}/{key.folder}/analysis/{split}/{lang}.json"

    def weight_alignment_file(self, key: ModelKey) -> str:
        return f"{self.results}/{key.folder}/analysis/weight_alignment.csv"

    def log(self, key: ModelKey, job: str) -> str:
        """A job's log: '{logs}/{folder}/{job}.log' (job 'finetune', 'prune', 'eval',
        'analysis/weight_alignment', ...)."""
        return f"{self.logs}/{key.folder}/{job}.log"

    def benchmark(self, key: ModelKey, job: str) -> str:
        """A job's benchmark: '{benchmarks}/{folder}/{job}.tsv'."""
        return f"{self.benchmarks}/{key.folder}/{job}.tsv"
