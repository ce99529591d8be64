"""Planning the full study: job counts per rule, and no network at planning time."""

import re

import pytest
import yaml

from workflow_helpers import ROOT, job_counts, snakemake


def test_dry_run_of_the_full_config_counts_jobs_and_touches_no_network(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"  # plan into an empty folder, whatever results/ holds
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    marker = tmp_path / "network-calls.txt"
    result = snakemake("-n", "--configfile", "config.yaml", str(overlay), network_marker=marker)
    assert not marker.exists(), marker.read_text()
    outputs = planned_outputs(result.stdout + result.stderr)

    counts = job_counts(result.stdout + result.stderr)
    tasks = config["tasks"]
    seeds, methods, targets = len(config["seeds"]), len(config["methods"]), len(config["sparsities"])
    assert list(config["methods"]) == [
        "retrain_only", "random", "magnitude_layer", "magnitude_global", "gradient", "movement", "lamp", "lookahead",
        "magnitude_global_l2", "magnitude_global_cosine", "magnitude_global_frobenius",
    ]
    models = seeds * (1 + methods * targets)
    languages = {task: len(spec["languages"]) for task, spec in tasks.items()}
    splits = len(config["eval_splits"])
    assert (seeds, methods, targets, languages) == (3, 11, 9, {"xnli": 15, "pawsx": 7})
    # one evaluation job per model and task: it writes every split x language file of the model;
    # the sweep's models (weight: sweep) on the zero-shot languages of the test split: each weight
    # of each regularizer's grid and the unregularized reference (magnitude_global at weight 0)
    swept = len(config["sweep"]["sparsities"]) * (1 + sum(len(w) for w in config["sweep"]["weights"].values()))
    assert {rule: n for rule, n in counts.items() if rule.startswith("evaluate")} == {
        "evaluate_xnli": models, "evaluate_pawsx": models, "evaluate_sweep_xnli": swept, "evaluate_sweep_pawsx": swept,
    }
    assert models == 300 and counts["evaluate_xnli"] + counts["evaluate_pawsx"] == 600 and swept == 39
    assert (counts["prune_sweep"], counts["sweep_choice"], counts["sweep_table"]) == (78, 2, 2)
    eval_files = [path for rule, files in outputs if rule in ("evaluate_xnli", "evaluate_pawsx") for path in files]
    assert len(eval_files) == len(set(eval_files)) == sum(models * splits * n for n in languages.values()) == 13200
    # the xnli dense model of seed 1: one job, 2 splits x 15 languages
    job = next(files for rule, files in outputs if files[0] == f"{tmp_path}/results/xnli/seed~1/dense/eval/validation/en.json")
    assert job == [f"{tmp_path}/results/xnli/seed~1/dense/eval/{split}/{lang}.json"
                   for split in config["eval_splits"] for lang in tasks["xnli"]["languages"]]
    assert counts["prune"] == len(tasks) * seeds * methods * targets == 594
    assert counts["finetune"] == len(tasks) * seeds == 6
    # English train + every language's validation and test split
    assert counts["download_data"] == sum(1 + splits * n for n in languages.values()) == 46
    assert counts["download_model"] == 1
    assert counts["aggregate"] == counts["tables"] == counts["plots"] == counts["findings"] == len(tasks)
    assert not {"testbed_model", "testbed_data"} & set(counts)
    # representation alignment: the first seed's models, every non-English language
    analysed = len(config["analysis"]["seeds"])
    assert config["analysis"] == {"enabled": True, "seeds": [1], "max_examples": 1000}
    non_english = sum(n - 1 for n in languages.values())
    assert {rule: n for rule, n in counts.items() if rule.startswith("representation")} == {
        "representation_alignment_xnli": analysed * (1 + methods * targets),
        "representation_alignment_pawsx": analysed * (1 + methods * targets),
    }
    assert counts["representation_alignment_xnli"] + counts["representation_alignment_pawsx"] == 200
    # the files they write: 100 models x 20 non-English task-languages
    representation_files = [path for rule, files in outputs if rule.startswith("representation") for path in files]
    assert len(representation_files) == len(set(representation_files)) == analysed * (1 + methods * targets) * non_english == 2000
    # weight alignment: every seed's retrained models (the findings pair them by seed)
    assert counts["weight_alignment"] == len(tasks) * seeds * methods * targets == 594
    assert counts["alignment_tables"] == len(tasks)


def planned_outputs(output: str) -> list[tuple[str, list[str]]]:
    """(rule, output files) of every job a dry run prints."""
    jobs, rule = [], None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("    output: ") and rule is not None:
            jobs.append((rule, line.removeprefix("    output: ").split(", ")))
            rule = None
    return jobs


def test_one_sparsity_target_needs_only_its_ladder(tmp_path):
    """Naming one eval file plans the dense model, the lower targets of that method only, and the
    one job that evaluates the model on every split and language."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    target = tmp_path / "results/xnli/seed~2/method~magnitude_global/sparsity~0.30/eval/test/de.json"
    result = snakemake(str(target), "-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay))
    counts = job_counts(result.stdout + result.stderr)
    assert counts == {
        "download_data": 31,  # en train; validation and test of the 15 languages
        "tokenize": 31,  # each of them once
        "download_model": 1,
        "finetune": 1,
        "prune": 3,  # 0.10 -> 0.20 -> 0.30
        "evaluate_xnli": 1,
        "total": 68,
    }


def test_slurm_profile_plans_the_full_study_with_the_slurm_executor(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    result = snakemake("-n", "--profile", "profiles/slurm", "--configfile", "config.yaml", str(overlay))
    output = result.stdout + result.stderr
    assert "Using profiles profiles/slurm" in output
    counts = job_counts(output)
    assert counts["evaluate_xnli"] == counts["evaluate_pawsx"] == 300
    assert counts["prune"] == 594 and counts["finetune"] == 6
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # every rule the profile sizes exists, and every GPU rule asks for a GPU and is sized
    per_model = [f"{kind}_{task}" for kind in ("evaluate", "evaluate_sweep", "representation_alignment")
                 for task in config["tasks"]]
    demo_only = {"testbed_model", "testbed_data"}  # the demo's rules, sized for a demo run through SLURM
    assert set(profile["set-resources"]) - demo_only <= set(counts)
    assert set(profile["set-threads"]) - demo_only <= set(counts)
    for rule in ("finetune", "prune", *per_model):
        assert profile["set-resources"][rule]["gpu"] == 1
    # every rule whose jobs hold a GPU (as the dry run shows them) is sized and threaded, not left
    # at the defaults (30 minutes, 2 CPUs): the sweep's prune jobs once were
    holding, rule = set(), None
    for line in output.splitlines():
        if re.match(r"(local)?rule \w+:", line):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("    resources:") and re.search(r"\bgpu=1\b", line):
            holding.add(rule)
    assert {"finetune", "prune", "prune_sweep"} <= holding
    for rule in holding:
        sized = profile["set-resources"][rule]
        assert sized["gpu"] == 1 and sized["runtime"] >= 60 and sized["cpus_per_task"] == profile["set-threads"][rule]
    # the per-model jobs go in groups of a few models per submission, each with its own threads
    assert profile["groups"] == [
        "download_data=downloads", "tokenize=tokens", "testbed_data=tokens",
        "evaluate_xnli=evaluations", "evaluate_pawsx=evaluations",
        "evaluate_sweep_xnli=evaluations", "evaluate_sweep_pawsx=evaluations",
        "representation_alignment_xnli=representations", "representation_alignment_pawsx=representations",
        "weight_alignment=weight_alignments",
    ]
    assert profile["group-components"] == [
        "downloads=12", "tokens=11", "evaluations=5", "representations=5", "weight_alignments=30",
    ]
    assert counts["tokenize"] == counts["download_data"] == 46
    # the 46 downloads (one file each, one after another within a group): 4 submissions of up to 12
    assert profile["set-resources"]["download_data"]["serial"] == 1
    # the 594 weight alignments (CPU, one after another within a group): 20 submissions of up to 30
    assert counts["weight_alignment"] == 594 and profile["set-resources"]["weight_alignment"]["serial"] == 1
    assert all(profile["set-threads"][rule] == 4 for rule in per_model)


def test_independent_schedule_starts_every_target_from_the_dense_model(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(
        {"schedule": "independent", "paths": {k: str(tmp_path / k) for k in config["paths"]}}
    ))
    target = tmp_path / "results/xnli/seed~2/method~magnitude_global/sparsity~0.30/eval/test/de.json"
    result = snakemake(str(target), "-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay))
    assert job_counts(result.stdout + result.stderr)["prune"] == 1  # no ladder below 0.30


def test_an_output_at_a_target_the_config_does_not_train_is_refused_by_name(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    target = tmp_path / "results/xnli/seed~1/method~magnitude_global/sparsity~0.55/eval/test/de.json"
    with pytest.raises(AssertionError) as failed:  # workflow_helpers.snakemake: a failed run raises
        snakemake(str(target), "-n", "--configfile", "config.yaml", str(overlay))
    output = str(failed.value)
    assert "sparsity~0.55 is not among sparsities (0.10, 0.20" in output, output
    assert "add 0.55 there" in output


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
    # and the unregularized reference's ladder (magnitude_global at weight 0), once for all three
    assert counts["prune_sweep"] == 2 * (weights + 1) * len(sweep["sparsities"]) == 78
    assert counts["finetune"] == 2  # seed 1 of each task: the sweep needs no other seed
    # English train and dev of each task, and the test split of the zero-shot languages (14 + 6):
    # each sweep model is evaluated there for the sweep table (reported beside English dev only)
    assert counts["download_data"] == counts["tokenize"] == 4 + 14 + 6
    assert (counts["sweep_choice"], counts["sweep_table"]) == (2, 2) and "prune" not in counts
    assert counts["evaluate_sweep_xnli"] == counts["evaluate_sweep_pawsx"] == (weights + 1) * len(sweep["sparsities"])
    assert not [rule for rule in counts if rule.startswith(("evaluate_xnli", "evaluate_pawsx", "representation"))]


def test_a_method_with_a_number_beside_a_swept_one_is_not_swept(tmp_path):
    """Only cosine says `weight: sweep`: the sweep retrains cosine's grid and the reference, not
    l2's or Frobenius's, whose numbers the study uses (their runs would be spent for nothing)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({
        "paths": {k: str(tmp_path / k) for k in config["paths"]},
        "methods": {"magnitude_global_l2": {"weight": 0.1}, "magnitude_global_frobenius": {"weight": 1.0e-6}},
    }))
    result = snakemake("sweep", "-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay))
    counts = job_counts(result.stdout + result.stderr)
    sweep = config["sweep"]
    cosine = len(sweep["weights"]["cosine"])
    assert counts["prune_sweep"] == 2 * (cosine + 1) * len(sweep["sparsities"]) == 2 * 5 * 3
    assert counts["evaluate_sweep_xnli"] == (cosine + 1) * len(sweep["sparsities"])
    plan = snakemake("-n", "--configfile", "config.yaml", str(overlay))
    assert "method~magnitude_global_frobenius/weight~" not in plan.stdout + plan.stderr


def planned_jobs(output: str) -> list[dict]:
    """rule, input and output files of every job a dry run prints (inputs in the rule's order)."""
    jobs: list[dict] = []
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            jobs.append({"rule": line.split()[1].rstrip(":"), "input": [], "output": []})
        elif line.startswith(("    input: ", "    output: ")) and jobs:
            key, files = line.strip().split(": ", 1)
            jobs[-1][key] = files.split(", ")
    return jobs


def test_pretrained_reference_plans_the_pretrained_model_as_the_prune_jobs_reference(tmp_path):
    """A method with `reference: pretrained`: every prune job of its ladder gets the pretrained
    model's folder as its reference input (rule prune's second input), the dense model only as the
    first target's start; a method with the default reference gets the dense model."""
    from alignprune.config_check import pretrained_dir

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({
        "paths": {k: str(tmp_path / k) for k in config["paths"]},
        "methods": {"l2_to_pretrained": {"criterion": "magnitude", "scope": "global", "regularizer": "l2",
                                         "weight": 1e-3, "reference": "pretrained"}},
    }))
    targets = [tmp_path / f"results/xnli/seed~1/method~{m}/sparsity~0.20/eval/test/de.json"
               for m in ("l2_to_pretrained", "magnitude_global_l2")]
    result = snakemake(*map(str, targets), "-n", "--configfile", "config.yaml", str(overlay))
    planned = planned_jobs(result.stdout + result.stderr)
    jobs = {job["output"][0]: job for job in planned if job["rule"] == "prune"}
    pretrained = pretrained_dir(f"{tmp_path}/resources", config["model"])
    dense = f"{tmp_path}/results/xnli/seed~1/dense/model"

    def job(method, target):
        return jobs[f"{tmp_path}/results/xnli/seed~1/method~{method}/sparsity~{target}/model"]

    assert len(jobs) == 4
    for target in ("0.10", "0.20"):
        start, reference, tokenizer = job("l2_to_pretrained", target)["input"][:3]
        assert reference == tokenizer == pretrained
        start, reference, tokenizer = job("magnitude_global_l2", target)["input"][:3]
        assert reference == dense and tokenizer == pretrained
    # above the first target the ladder starts from the method's previous model: the dense model
    # is then no input of the pretrained-reference job at all
    assert job("l2_to_pretrained", "0.10")["input"][0] == dense
    assert dense not in job("l2_to_pretrained", "0.20")["input"]
    assert job("l2_to_pretrained", "0.20")["input"][0] == job("l2_to_pretrained", "0.10")["output"][0]


def test_every_job_reads_token_files_that_one_tokenize_job_made(tmp_path):
    """Tokenised once: training, evaluation and representation jobs read token files, never the
    data files, and each token file is the output of one tokenize job reading its data file."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    target = tmp_path / "results/xnli/seed~1/method~magnitude_global/sparsity~0.20/eval/test/de.json"
    representation = tmp_path / "results/xnli/seed~1/method~magnitude_global/sparsity~0.20/analysis/test/de.json"
    result = snakemake(str(target), str(representation), "-n", "--configfile", "config.yaml", str(overlay))
    jobs = planned_jobs(result.stdout + result.stderr)
    made = {job["output"][0]: job["input"] for job in jobs if job["rule"] == "tokenize"}
    assert len(made) == 31
    for token_file, inputs in made.items():
        assert token_file.replace("/tokens/", "/data/") == inputs[0] and inputs[1].endswith("/models/FacebookAI--xlm-roberta-base")
    readers = [job for job in jobs if job["rule"] in ("finetune", "prune", "evaluate_xnli", "representation_alignment_xnli")]
    assert {job["rule"] for job in readers} == {"finetune", "prune", "evaluate_xnli", "representation_alignment_xnli"}
    for job in readers:
        assert not [f for f in job["input"] if "/data/" in f], job["rule"]
        assert [f for f in job["input"] if "/tokens/" in f] and all(
            f in made for f in job["input"] if "/tokens/" in f
        ), job["rule"]


def test_weight_sweep_plans_the_sweep_before_the_methods_prune_jobs(tmp_path):
    """config.yaml's regularized methods say `weight: sweep`: naming one of their eval files plans
    the task's sweep (every regularized method's grid on the sweep's ladder, seed 1) and its
    choice, which the prune job reads; an unregularized method's job plans no sweep."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert {m: s["weight"] for m, s in config["methods"].items() if s.get("regularizer", "none") != "none"} == {
        "magnitude_global_l2": "sweep", "magnitude_global_cosine": "sweep", "magnitude_global_frobenius": "sweep"}
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {k: str(tmp_path / k) for k in config["paths"]}}))
    target = tmp_path / "results/xnli/seed~2/method~magnitude_global_cosine/sparsity~0.10/eval/test/de.json"
    result = snakemake(str(target), "-n", "--configfile", "config.yaml", str(overlay))
    output = result.stdout + result.stderr
    counts = job_counts(output)
    grid = sum(len(config["sweep"]["weights"][r]) for r in ("l2", "cosine", "frobenius"))
    assert (counts["prune_sweep"], counts["sweep_choice"], counts["prune"]) == (
        grid * len(config["sweep"]["sparsities"]), 1, 1)
    prune = next(job for job in planned_jobs(output) if job["rule"] == "prune")
    # an input that waits for the checkpoint (Snakemake prints it as <TBD> until the sweep has run)
    assert prune["input"][-1] == "<TBD>" and "DAG of jobs will be updated after completion" in output
    plain = tmp_path / "results/xnli/seed~2/method~magnitude_global/sparsity~0.10/eval/test/de.json"
    counts = job_counts(snakemake(str(plain), "-n", "--quiet", "rules", "--configfile", "config.yaml", str(overlay)).stdout)
    assert "prune_sweep" not in counts and "sweep_choice" not in counts and counts["prune"] == 1
