"""alignprune.model_key: every file named after a model, and each name read back."""

import ast
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from alignprune import model_key
from alignprune.model_key import Layout, ModelKey, target_label, weight_label

LAYOUT = Layout("results", "logs", "benchmarks")
DENSE = ModelKey.of("xnli", 1)
PRUNED = ModelKey.of("xnli", 2, "magnitude_global", 0.5)
SWEPT = ModelKey.of("pawsx", 3, "magnitude_global_l2", "0.9", 1000.0)


def test_the_file_layout_is_the_documented_one():
    assert LAYOUT.model_dir(DENSE) == "results/xnli/seed~1/dense/model"
    assert LAYOUT.eval_file(PRUNED, "test", "de") == "results/xnli/seed~2/method~magnitude_global/sparsity~0.50/eval/test/de.json"
    assert LAYOUT.representation_file(DENSE, "test", "fr") == "results/xnli/seed~1/dense/analysis/test/fr.json"
    assert LAYOUT.weight_alignment_file(PRUNED) == (
        "results/xnli/seed~2/method~magnitude_global/sparsity~0.50/analysis/weight_alignment.csv")
    assert LAYOUT.model_dir(SWEPT) == "results/sweep/pawsx/seed~3/method~magnitude_global_l2/weight~1000/sparsity~0.90/model"
    assert LAYOUT.log(PRUNED, "prune") == "logs/xnli/seed~2/method~magnitude_global/sparsity~0.50/prune.log"
    assert LAYOUT.benchmark(DENSE, "analysis/representation_alignment_test") == (
        "benchmarks/xnli/seed~1/dense/analysis/representation_alignment_test.tsv")


def test_patterns_name_the_rules_wildcards():
    assert LAYOUT.model_dir(ModelKey.pattern()) == "results/{task}/seed~{seed}/method~{method}/sparsity~{sparsity}/model"
    assert LAYOUT.log(ModelKey.pattern(dense=True), "finetune") == "logs/{task}/seed~{seed}/dense/finetune.log"
    assert LAYOUT.benchmark(ModelKey.pattern(sweep=True), "prune") == (
        "benchmarks/sweep/{task}/seed~{seed}/method~{method}/weight~{weight}/sparsity~{sparsity}/prune.tsv")
    assert LAYOUT.eval_file(ModelKey.pattern("xnli", variant=True), "test", "de") == (
        "results/xnli/seed~{seed}/{variant}/eval/test/de.json")


@pytest.mark.parametrize("key", [DENSE, PRUNED, SWEPT])
def test_every_name_reads_back_as_its_key(key):
    for path in (LAYOUT.model_dir(key), LAYOUT.eval_file(key, "validation", "zh"), LAYOUT.log(key, "eval"),
                 LAYOUT.benchmark(key, "analysis/weight_alignment"), "/abs/olute/" + LAYOUT.model_dir(key)):
        assert ModelKey.parse(path) == key
    if key.weight is None:
        assert ModelKey.from_variant(key.task, key.seed, key.variant) == key
        assert re.fullmatch(model_key.VARIANT_PATTERN, key.variant)
    # under a results root whose last folder is named like the sweep's (paths.results: runs/sweep)
    under_sweep = Layout("runs/sweep", "runs/sweep/logs", "benchmarks")
    assert ModelKey.parse(under_sweep.model_dir(key)) == key
    assert ModelKey.parse(under_sweep.eval_file(key, "test", "de")) == key


def test_wildcards_of_each_rule_give_the_same_key_as_its_path():
    class Wildcards(SimpleNamespace):
        def items(self):
            return vars(self).items()

    assert ModelKey.from_wildcards(Wildcards(task="xnli", seed="1")) == DENSE
    assert ModelKey.from_wildcards(Wildcards(task="xnli", seed="2", method="magnitude_global", sparsity="0.50")) == PRUNED
    assert ModelKey.from_wildcards(Wildcards(seed="2", variant="method~magnitude_global/sparsity~0.50"), task="xnli") == PRUNED
    assert ModelKey.from_wildcards(Wildcards(task="pawsx", seed="3", method="magnitude_global_l2",
                                             weight="1000", sparsity="0.90")) == SWEPT


def test_one_spelling_of_targets_and_weights_and_the_record_columns():
    assert target_label(0.5) == target_label("0.50") == "0.50" and target_label(0.1) == "0.10"
    assert weight_label(1000.0) == "1000" and weight_label("0.10") == "0.1" and weight_label(1.25e-6) == "1.25e-06"
    assert PRUNED.sparsity == 0.5 and DENSE.sparsity is None
    assert DENSE.record() == {"task": "xnli", "seed": 1, "method": "dense", "sparsity_target": 0.0}
    assert PRUNED.record() == {"task": "xnli", "seed": 2, "method": "magnitude_global", "sparsity_target": 0.5}
    assert PRUNED.with_target("0.30").target == "0.30" and SWEPT.with_target("0.50").weight == "1000"
    assert PRUNED.dense() == ModelKey.of("xnli", 2)


def test_impossible_keys_and_names_are_refused():
    with pytest.raises(ValueError, match="dense model has no target"):
        ModelKey.of("xnli", 1, "dense", 0.5)
    with pytest.raises(ValueError, match="pruned one a target"):
        ModelKey.of("xnli", 1, "random")
    with pytest.raises(ValueError, match="no model folder"):
        ModelKey.parse("results/tables/xnli/evals.csv")
    with pytest.raises(ValueError, match="sweep model has a weight"):
        ModelKey.parse("results/xnli/seed~1/method~m/weight~1/sparsity~0.50/model")


def test_the_module_imports_only_the_standard_library():
    """The Snakefile imports it at plan time: no torch, nothing outside the standard library."""
    tree = ast.parse(Path(model_key.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
