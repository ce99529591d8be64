"""alignprune.calibrate's bookkeeping, with the testbed build faked: which built testbed it
reuses, and on how many threads it builds one (the pretrained model depends on both)."""

import json

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
