"""What a training run tells a person: plain progress lines in job logs (no bars, no colour
codes), the settings a rule script passes, and TensorBoard event files."""

import re

import pytest
import torch

from alignprune.train import TrainSettings, train
from conftest import tiny_classifier
from test_train import toy_split


def _rule_snakemake(log_file, **config):
    """The parts of Snakemake's ``snakemake`` object that rule_job and training_settings read."""
    from types import SimpleNamespace

    return SimpleNamespace(threads=1, log=[str(log_file)], rule="finetune", resources=SimpleNamespace(gpu=0),
                           config=config, params=SimpleNamespace(settings={"learning_rate": 1e-3},
                                                                 tensorboard="tb/xnli/seed~1/dense/model"))


LINE = re.compile(
    r"INFO alignprune\.train: step (\d+)/45  loss (\d\.\d{4})  lr (\S+)  ([\d.]+) examples/s  "
    r"elapsed \d+:\d\d:\d\d  ETA \d+:\d\d:\d\d(?:  dev accuracy (\d\.\d{4}))?$"
)


def test_a_job_log_gets_one_plain_line_every_log_every_steps_and_no_bars_or_colour_codes(tmp_path, monkeypatch):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from alignprune.modeling import load_classifier
    from alignprune.rule_runtime import rule_job

    for variable in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.setenv(variable, "")  # rule_job sets them: restored after the test

    # a masked-LM checkpoint: loading it as a classifier makes transformers report unexpected
    # and missing weights (in ANSI colours) and draw a loading bar
    pretrained = tmp_path / "pretrained"
    XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=32, max_position_embeddings=40)).save_pretrained(pretrained)
    log_file = tmp_path / "finetune.log"
    settings = TrainSettings(learning_rate=2e-3, batch_size=8, max_steps=45, eval_every=20, seed=0)
    with rule_job(_rule_snakemake(log_file)) as device:
        model = load_classifier(pretrained, num_labels=2)
        result = train(model, toy_split(200, 0), toy_split(40, 1), settings, pad_id=1, device=device,
                       progress=True, log_every=10)
    import transformers.utils.logging

    transformers.utils.logging.set_verbosity_warning()  # the library's defaults again for other tests
    transformers.utils.logging.enable_progress_bar()
    text = log_file.read_text()
    assert "\r" not in text and "\x1b" not in text and "LOAD REPORT" not in text
    lines = [m for m in map(LINE.search, text.splitlines()) if m]
    # every 10 steps, the evaluations at 20 and 40, and the last step
    assert [int(m[1]) for m in lines] == [10, 20, 30, 40, 45]
    history = {h["step"]: h for h in result["history"]}
    assert {int(m[1]): float(m[5]) for m in lines if m[5]} == {
        step: round(h["dev_accuracy"], 4) for step, h in history.items()
    }
    # the rate step s ran at, on the linear decay without warm-up: lr0 (45 - (s - 1)) / 45
    # (not the next step's: the last line's is lr0 / 45, not 0)
    for m in lines:
        assert float(m[3]) == pytest.approx(2e-3 * (46 - int(m[1])) / 45, rel=5e-3, abs=1e-12)
        assert float(m[4]) > 0
    # each line's loss is the mean over its own steps: two lines make up an evaluation's mean
    loss = {int(m[1]): float(m[2]) for m in lines}
    assert (loss[10] + loss[20]) / 2 == pytest.approx(history[20]["train_loss"], abs=1e-4)
    assert loss[45] == pytest.approx(history[45]["train_loss"], abs=1e-4)


def test_training_settings_take_operational_keys_from_the_config_and_tensorboard_only_when_on(tmp_path):
    from alignprune.rule_runtime import training_settings

    section = {"learning_rate": 5.0, "checkpoint_every": 7, "log_every": 3}
    off = training_settings(_rule_snakemake(tmp_path / "x.log", finetune=section, tensorboard=False), "finetune")
    # the result-changing settings come from params (here 1e-3), the operational ones from the config
    assert off == {"learning_rate": 1e-3, "checkpoint_every": 7, "log_every": 3}
    on = training_settings(_rule_snakemake(tmp_path / "x.log", finetune=section, tensorboard=True), "finetune")
    assert on["tensorboard_dir"] == "tb/xnli/seed~1/dense/model"


def test_tensorboard_event_files_hold_the_logged_numbers(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = TrainSettings(learning_rate=2e-3, batch_size=8, max_steps=30, eval_every=15, seed=0)
    result = train(tiny_classifier(num_labels=2), toy_split(200, 0), toy_split(40, 1), settings, pad_id=1,
                   device=torch.device("cpu"), progress=False, log_every=10, tensorboard_dir=tmp_path / "tb")
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"train/loss", "train/learning_rate", "train/examples_per_second", "dev/accuracy"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [10, 15, 20, 30]
    dev = {e.step: e.value for e in events.Scalars("dev/accuracy")}
    assert dev == pytest.approx({h["step"]: h["dev_accuracy"] for h in result["history"]})
    lr = {e.step: e.value for e in events.Scalars("train/learning_rate")}
    assert lr == pytest.approx({10: 2e-3 * 21 / 30, 15: 2e-3 * 16 / 30, 20: 2e-3 * 11 / 30, 30: 2e-3 / 30})


def test_no_tensorboard_folder_without_tensorboard_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = TrainSettings(learning_rate=2e-3, batch_size=8, max_steps=5, eval_every=5, seed=0)
    train(tiny_classifier(num_labels=2), toy_split(50, 0), toy_split(10, 1), settings, pad_id=1,
          device=torch.device("cpu"), progress=False)
    assert list(tmp_path.iterdir()) == []  # SummaryWriter's default would have made runs/
