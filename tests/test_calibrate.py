"""alignprune.calibrate's bookkeeping, with the testbed build faked: which built testbed it
reuses, and on how many threads it builds one (the pretrained model depends on both)."""

import json

import pandas as pd
import pytest
import torch
import yaml

from alignprune import calibrate, code_version


class Stop(Exception):
    pass


@pytest.fixture
def builds(monkeypatch):
    """The builds calibrate asks for, as (model folder, torch's threads, data files) with nothing
    built; the token files are named and not written."""
    made = []

    def build_testbed(settings, model_dir, files, progress):
        made.append((model_dir, torch.get_num_threads(), sorted(files)))
        model_dir.mkdir(parents=True)
        for path in files.values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

    monkeypatch.setattr(calibrate, "build_testbed", build_testbed)
    monkeypatch.setattr(calibrate, "tokenize_files", lambda files, model_dir, path, **kwargs: {k: path(k) for k in files})
    threads = torch.get_num_threads()
    yield made
    torch.set_num_threads(threads)


def test_a_built_testbed_is_reused_by_the_same_code_on_the_same_threads_only(tmp_path, builds, monkeypatch):
    config = calibrate.load()
    torch.set_num_threads(2)
    calibrate.build(config, tmp_path)
    calibrate.build(config, tmp_path)
    assert len(builds) == 1  # the same settings, code and threads: reused
    torch.set_num_threads(1)
    calibrate.build(config, tmp_path)  # another thread count pretrains another model
    monkeypatch.setattr(code_version, "CURRENT", "0123456789ab")
    calibrate.build(config, tmp_path)  # and other code may
    assert [threads for _, threads, _ in builds] == [2, 1, 1]
    assert len({folder for folder, _, _ in builds}) == 3
    key = json.loads((builds[-1][0].parent / "testbed.json").read_text())
    assert (key["code"], key["threads"], key["testbed"]) == ("0123456789ab", 1, config["testbed"])


def test_the_testbed_builds_on_the_demo_profile_s_cores_unless_told(tmp_path, builds, monkeypatch):
    config = calibrate.load()
    profile = yaml.safe_load((calibrate.ROOT / "profiles/demo/config.yaml").read_text())
    assert calibrate.demo_cores() == profile["cores"] == 2

    def stop(*args, **kwargs):  # after the build: nothing to fine-tune
        raise Stop

    monkeypatch.setattr(calibrate, "cue_contrasts", stop)
    torch.set_num_threads(1)
    with pytest.raises(Stop):
        calibrate.measure(config, [1], ["xnli"], tmp_path)
    assert builds[-1][1] == 2 and torch.get_num_threads() == 1  # torch's setting back afterwards
    # read from the profile: another profile, another default
    (tmp_path / "root/profiles/demo").mkdir(parents=True)
    (tmp_path / "root/profiles/demo/config.yaml").write_text("cores: 3\n")
    monkeypatch.setattr(calibrate, "ROOT", tmp_path / "root")
    with pytest.raises(Stop):
        calibrate.measure(config, [1], ["xnli"], tmp_path)
    with pytest.raises(Stop):
        calibrate.measure(config, [1], ["xnli"], tmp_path, build_threads=4)
    assert [threads for _, threads, _ in builds] == [2, 3, 4]


@pytest.mark.parametrize("split", ["validation", "test", None])
def test_a_calibration_scores_every_language_s_validation_set_unless_told(tmp_path, builds, monkeypatch, split):
    """The demo's findings measure the test sets: a calibration that scored them would choose the
    testbed on the labels the findings report. English trains on its train split and keeps its
    best step by its validation split, as the demo's fine-tuning does."""
    config = calibrate.load()
    read = []

    def read_tokens(path, *args, **kwargs):
        read.append(path)
        raise Stop

    monkeypatch.setattr(calibrate, "read_tokens", read_tokens)
    monkeypatch.setattr(calibrate, "cue_contrasts", lambda *args: {})
    with pytest.raises(Stop):
        calibrate.measure(config, [1], ["xnli"], tmp_path, **({"split": split} if split else {}))
    scored = split or "validation"
    languages = {(task, lang) for task in config["tasks"] for lang in config["tasks"][task]["languages"]}
    assert set(builds[-1][2]) == ({(task, lang, scored) for task, lang in languages}
                                  | {(task, "en", s) for task in config["tasks"] for s in ("train", "validation")})
    assert read[0].parts[-3:] == ("xnli", "en", f"{scored}.parquet")
    with pytest.raises(ValueError, match="scores one of"):
        calibrate.build(config, tmp_path, split="train")


def test_the_selection_rule_fewest_misses_then_smallest_retention_and_the_incumbent_holds_ties():
    S = calibrate.Score
    # the fewest targets missed wins
    assert calibrate.choose({"a": S(5, 0.3), "b": S(4, 0.1), "c": S(6, 0.5)}, incumbent="a") == "b"
    # among the fewest, the larger smallest retention
    assert calibrate.choose({"a": S(5, 0.3), "b": S(4, 0.1), "c": S(4, 0.2)}, incumbent="a") == "c"
    # the incumbent stays on a tie in targets missed, even with a smaller smallest retention
    assert calibrate.choose({"a": S(4, 0.1), "b": S(4, 0.3)}, incumbent="a") == "a"
    assert calibrate.choose({"a": S(4, 0.1)}, incumbent="a") == "a"
    with pytest.raises(ValueError, match="incumbent recipe 'z' is not among the recipes: a, b"):
        calibrate.choose({"a": S(4, 0.1), "b": S(4, 0.3)}, incumbent="z")


def test_a_score_counts_the_targets_missed_and_the_smallest_retention():
    table = calibrate.with_retention(pd.DataFrame(
        [{"task": "xnli", "seed": seed, "language": lang, "accuracy": acc}
         for seed, accs in ((1, {"en": 0.95, "fr": 0.80, "es": 0.9, "de": 0.65, "zh": 0.7, "ja": 0.65, "tr": 0.6}),
                            (2, {"en": 0.85, "fr": 0.45, "es": 0.8, "de": 0.6, "zh": 0.7, "ja": 0.6, "tr": 0.55}))
         for lang, acc in accs.items()]))
    score = calibrate.Score.of(table)
    # seed 2: English 0.85 < 0.90 and fr's r (0.45 - 1/3) / (0.85 - 1/3) = 0.226 < 0.40; seed 1 holds every target
    assert score.missed == 2 == len(calibrate.problems(table))
    assert score.smallest == pytest.approx((0.45 - 1 / 3) / (0.85 - 1 / 3))


def test_the_demo_s_recipes_file_loads_and_names_the_recipe_in_use_and_the_one_before():
    recipes, incumbent = calibrate.read_recipes(calibrate.ROOT / "profiles/demo/finetune_recipes.yaml")
    assert len(recipes) == 13 and incumbent == "5e-5 x 2, no warm-up"
    demo = calibrate.load()
    configs = {name: calibrate.load(overrides=overrides) for name, overrides in recipes.items()}  # every one valid
    assert configs["6e-5 x 2, no warm-up"] == demo  # the demo's own recipe
    assert configs[incumbent]["finetune"] == {**demo["finetune"], "learning_rate": 5e-5}
    assert configs["5e-5 x 2, warm-up 0.1"]["finetune"] == {**demo["finetune"], "learning_rate": 5e-5, "warmup_ratio": 0.1}
    assert configs["1e-4 x 1.5"]["finetune"] == {**demo["finetune"], "warmup_ratio": 0.1, "learning_rate": 1e-4,
                                                  "epochs": 1.5}
    assert all(config["testbed"] == demo["testbed"] for config in configs.values())  # one build for all
    assert len({json.dumps(config["finetune"], sort_keys=True) for config in configs.values()}) == 13


def test_compare_recipes_scores_each_recipe_and_prints_the_rule_s_choice(tmp_path, monkeypatch, capsys):
    (tmp_path / "recipes.yaml").write_text(yaml.safe_dump({
        "incumbent": "old", "recipes": {"old": {"finetune.warmup_ratio": 0.1}, "fast": {"finetune.learning_rate": 2e-4},
                                        "same": {}}}, sort_keys=False))
    seen = []

    def measure(config, seeds, tasks, work_dir, **kwargs):
        seen.append((config["finetune"]["learning_rate"], config["finetune"]["warmup_ratio"], kwargs["split"]))
        # set by the recipe: the old one misses fr's target; the others hold every target, fast with
        # the larger smallest retention (tr's)
        fr = 0.45 if config["finetune"]["warmup_ratio"] == 0.1 else 0.7
        tr = 0.62 if config["finetune"]["learning_rate"] > 1e-4 else 0.6
        rows = [{"task": "xnli", "seed": 1, "language": lang, "accuracy": acc} for lang, acc in
                {"en": 0.95, "fr": fr, "es": 0.9, "de": 0.65, "zh": 0.7, "ja": 0.65, "tr": tr}.items()]
        return calibrate.with_retention(pd.DataFrame(rows)), {}

    monkeypatch.setattr(calibrate, "measure", measure)
    out = tmp_path / "table.tsv"
    assert calibrate.main(["--recipes", str(tmp_path / "recipes.yaml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert seen == [(6e-5, 0.1, "validation"), (2e-4, 0.0, "validation"), (6e-5, 0.0, "validation")]  # the demo: 6e-5
    assert "old: 1 targets missed" in printed and "fast: 0 targets missed" in printed
    assert "fast: 0 targets missed, smallest retention 0.465" in printed  # (0.62 - 1/3) / (0.95 - 1/3)
    assert "same: 0 targets missed, smallest retention 0.432" in printed
    assert "chosen: fast (" in printed
    assert sorted(pd.read_csv(out, sep="\t")["recipe"].unique()) == ["fast", "old", "same"]
