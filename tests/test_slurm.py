"""profiles/slurm on a real SLURM (22.05 from Debian, one node on this machine): the demo at
test size with every non-local job going through sbatch gives the same results as a local run.

Not part of `make test` (it needs root and Debian's SLURM packages): `make test-slurm` installs
them and runs this file; CI runs both.
"""

import json
import re

import pandas as pd
import pytest
import yaml

from slurm_cluster import jobs_in_queue, single_node_slurm
from workflow_helpers import ROOT, job_counts, snakemake

pytestmark = pytest.mark.slurm

TEST_SIZE = {
    "seeds": [1],
    "sparsities": [0.5],
    "tasks": {"xnli": {"enabled": True, "languages": ["en", "de", "zh"]}, "pawsx": {"enabled": False}},
    # two pruned methods; the retraining control is a prune job like them, left out for time
    "methods": {"retrain_only": {"enabled": False}, "random": {"enabled": False},
                "magnitude_global_l2": {"enabled": False},
                "magnitude_global_frobenius": {"enabled": False}},
    "finetune": {"epochs": 1, "eval_every": 20},
    "retrain": {"steps": 10, "eval_every": 5},
    "testbed": {"pretrain_steps": 30, "sizes": {"train": 200, "validation": 50, "test": 60}},
    # the alignment analysis of the two pruned models (and the dense one's representations)
    "analysis": {"enabled": True, "seeds": [1], "max_examples": 20},
    "threads": {"train": 1, "evaluate": 1},
}
# one thread everywhere in both runs: the same arithmetic, so the same numbers
ONE_THREAD = ["--set-threads", "testbed_model=1", "finetune=1", "prune=1", "evaluate_xnli=1"]
LOCAL_RULES = {"aggregate", "tables", "plots", "training_curves", "alignment_tables", "all"}
REMOTE_RULES = {"testbed_model", "testbed_data", "tokenize", "finetune", "prune", "evaluate_xnli",
                "weight_alignment", "representation_alignment_xnli"}


def run(tmp_path, name, *args):
    folder = tmp_path / name
    folder.mkdir()
    overlay = folder / "size.yaml"
    paths = {key: str(folder / key) for key in ("resources", "results", "logs", "benchmarks", "checkpoints")}
    overlay.write_text(yaml.safe_dump({**TEST_SIZE, "paths": paths}))
    result = snakemake("-s", str(ROOT / "Snakefile"), "-d", str(folder), *args, *ONE_THREAD,
                       "--configfile", "config.yaml", "profiles/demo/testbed.yaml", str(overlay), timeout=1500)
    return folder, result.stdout + result.stderr


def test_the_demo_through_profiles_slurm_equals_a_local_run(tmp_path):
    local, _ = run(tmp_path, "local", "--cores", "2")
    with single_node_slurm(tmp_path / "cluster"):
        cluster, output = run(
            tmp_path, "slurm", "--profile", "profiles/slurm", "--latency-wait", "5",
            # no accounting database on the test node: job states from squeue, checked often
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
            "--seconds-between-status-checks", "2",
        )
        queue = jobs_in_queue()

    counts = job_counts(output)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S+/slurm_logs/(\w+)/", output)
    # every job but the local rules went through sbatch; the 3 models' evaluation jobs (one per
    # model, each writing 3 languages) as one group, their 3 representation jobs as another, the
    # 2 pruned models' weight alignments as a third, the 5 testbed data files (en train and dev,
    # 3 test sets) and the 5 tokenize jobs that read them as a fourth
    assert sorted(kind for _, kind in submitted) == sorted(
        ["rule_testbed_model", "group_tokens_testbed_data_tokenize", "rule_finetune", "rule_prune", "rule_prune",
         "group_evaluations_evaluate_xnli", "group_representations_representation_alignment_xnli",
         "group_weight_alignments_weight_alignment"])
    assert (counts["evaluate_xnli"], counts["tokenize"], counts["testbed_data"]) == (3, 5, 5)
    assert (counts["representation_alignment_xnli"], counts["weight_alignment"]) == (3, 2)
    assert set(counts) - REMOTE_RULES - {"total"} == LOCAL_RULES
    finished = {job_id: status for job_id, _, status, _ in queue}
    assert all(finished[job_id] == "COMPLETED" for job_id, _ in submitted)
    # each submission asked for what profiles/slurm says: a group's jobs one after another
    # (runtimes added up, one job's memory and CPUs), a GPU for the GPU rules only
    asked = {kind: requests for job_id, kind in submitted for j, _, _, requests in queue if j == job_id}
    gpu = {"tres": "gres:gpu:1"}
    assert asked["rule_testbed_model"] == {"cpus": 2, "mem_mb": 8000, "minutes": 30, "tres": "N/A"}
    assert asked["rule_finetune"] == {"cpus": 8, "mem_mb": 32000, "minutes": 1440, **gpu}
    assert asked["rule_prune"] == {"cpus": 8, "mem_mb": 32000, "minutes": 480, **gpu}
    assert asked["group_evaluations_evaluate_xnli"] == {"cpus": 4, "mem_mb": 16000, "minutes": 3 * 20, **gpu}
    assert asked["group_representations_representation_alignment_xnli"] == {
        "cpus": 4, "mem_mb": 16000, "minutes": 3 * 10, **gpu}
    # CPU jobs, 10 min each
    assert asked["group_weight_alignments_weight_alignment"] == {"cpus": 4, "mem_mb": 16000, "minutes": 2 * 10,
                                                                 "tres": "N/A"}
    # 5 data files (5 min each) and the 5 tokenize jobs that read them (10 min each)
    assert asked["group_tokens_testbed_data_tokenize"] == {"cpus": 2, "mem_mb": 16000, "minutes": 5 * 5 + 5 * 10,
                                                           "tres": "N/A"}

    # the same numbers as the local run: every eval file, every table
    local_evals = sorted((local / "results").rglob("eval/**/*.json"))
    assert len(local_evals) == 9  # dense and 2 pruned models x 3 languages
    for path in local_evals:
        twin = cluster / path.relative_to(local)
        assert json.loads(twin.read_text()) == json.loads(path.read_text()), path
    tables = sorted((local / "results/tables").rglob("*.csv"))
    assert tables
    for path in tables:
        pd.testing.assert_frame_equal(pd.read_csv(cluster / path.relative_to(local)), pd.read_csv(path))
