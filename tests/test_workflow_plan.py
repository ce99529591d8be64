"""Planning the full study: job counts per rule, and no network at planning time."""

import yaml

from workflow_helpers import ROOT, job_counts, snakemake


def test_dry_run_of_the_full_config_counts_jobs_and_touches_no_network(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"  # plan into an empty folder, whatever results/ holds
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    marker = tmp_path / "network-calls.txt"
    result = snakemake("-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay), network_marker=marker)
    assert not marker.exists(), marker.read_text()

    counts = job_counts(result.stdout + result.stderr)
    tasks = config["tasks"]
    seeds, methods, targets = len(config["seeds"]), len(config["methods"]), len(config["sparsities"])
    assert list(config["methods"]) == [
        "random", "magnitude_layer", "magnitude_global", "gradient", "movement", "lamp", "lookahead",
        "magnitude_global_l2", "magnitude_global_cosine", "magnitude_global_frobenius",
    ]
    models = seeds * (1 + methods * targets)
    languages = {task: len(spec["languages"]) for task, spec in tasks.items()}
    splits = len(config["eval_splits"])
    assert (seeds, methods, targets, languages) == (3, 10, 9, {"xnli": 15, "pawsx": 7})
    assert counts["evaluate"] == sum(models * splits * n for n in languages.values()) == 12012
    assert counts["prune"] == len(tasks) * seeds * methods * targets == 540
    assert counts["finetune"] == len(tasks) * seeds == 6
    # English train + every language's validation and test split
    assert counts["download_data"] == sum(1 + splits * n for n in languages.values()) == 46
    assert counts["download_model"] == 1
    assert counts["aggregate"] == counts["tables"] == counts["plots"] == len(tasks)
    assert "testbed" not in counts
    # alignment analysis: the first seed's models; representations of every non-English language
    analysed = len(config["analysis"]["seeds"])
    assert config["analysis"] == {"enabled": True, "seeds": [1], "max_examples": 1000}
    non_english = sum(n - 1 for n in languages.values())
    assert counts["representation_alignment"] == analysed * (1 + methods * targets) * non_english == 1820
    assert counts["weight_alignment"] == len(tasks) * analysed * methods * targets == 180
    assert counts["alignment_tables"] == len(tasks)


def test_one_sparsity_target_needs_only_its_ladder(tmp_path):
    """Naming one pruned model plans the dense model and the lower targets of that method only."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    target = tmp_path / "results/xnli/seed~2/method~magnitude_global/sparsity~0.30/eval/test/de.json"
    result = snakemake(str(target), "-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay))
    counts = job_counts(result.stdout + result.stderr)
    assert counts == {
        "download_data": 3,  # en train, en validation, de test
        "download_model": 1,
        "finetune": 1,
        "prune": 3,  # 0.10 -> 0.20 -> 0.30
        "evaluate": 1,
        "total": 9,
    }


def test_slurm_profile_plans_the_full_study_with_the_slurm_executor(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    result = snakemake("-n", "--profile", "profiles/slurm", "--configfile", "config.yaml", str(overlay))
    output = result.stdout + result.stderr
    assert "Using profiles profiles/slurm" in output
    counts = job_counts(output)
    assert counts["evaluate"] == 12012 and counts["prune"] == 540 and counts["finetune"] == 6
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # every rule the profile sizes exists, and every GPU rule asks for a GPU
    assert set(profile["set-resources"]) <= set(counts)
    for rule in ("finetune", "prune", "evaluate", "representation_alignment"):
        assert profile["set-resources"][rule]["gpu"] == 1


def test_independent_schedule_starts_every_target_from_the_dense_model(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(
        {"schedule": "independent", "paths": {k: str(tmp_path / k) for k in config["paths"]}}
    ))
    target = tmp_path / "results/xnli/seed~2/method~magnitude_global/sparsity~0.30/eval/test/de.json"
    result = snakemake(str(target), "-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay))
    assert job_counts(result.stdout + result.stderr)["prune"] == 1  # no ladder below 0.30


def test_sweep_plans_each_regularized_method_with_each_weight_on_its_own_ladder(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    result = snakemake("sweep", "-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay))
    counts = job_counts(result.stdout + result.stderr)
    sweep = config["sweep"]
    regularized = [m for m, spec in config["methods"].items() if spec.get("regularizer", "none") != "none"]
    weights = sum(len(sweep["weights"][config["methods"][m]["regularizer"]]) for m in regularized)
    assert (len(regularized), weights, sweep["seeds"]) == (3, 12, [1])
    assert counts["prune_sweep"] == 2 * weights * len(sweep["sparsities"]) == 72
    assert counts["finetune"] == 2  # seed 1 of each task: the sweep needs no other seed
    assert counts["download_data"] == 4  # English train and dev of each task; no zero-shot language
    assert counts["sweep_table"] == 2 and "evaluate" not in counts and "prune" not in counts
