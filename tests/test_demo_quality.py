"""The demo's dense model at full demo size: it must learn English and transfer unevenly.

Builds the testbed exactly as profiles/demo configures it (XNLI-like task), fine-tunes on
English with the demo's settings and evaluates every language's test set. About 4 minutes
on 2 CPU cores.
"""

import json

import torch

from alignprune import jobs
from alignprune.testbed import build_testbed, settings_from_config
from workflow_helpers import load_config


def test_dense_demo_model_learns_english_and_transfers_with_graded_accuracy(tmp_path):
    demo = load_config("config.yaml", "profiles/demo/testbed.yaml")
    torch.set_num_threads(2)
    languages = demo["tasks"]["xnli"]["languages"]
    files = {("xnli", "en", "train"): tmp_path / "train.parquet", ("xnli", "en", "validation"): tmp_path / "dev.parquet"}
    files |= {("xnli", lang, "test"): tmp_path / f"test-{lang}.parquet" for lang in languages}
    build_testbed(settings_from_config(demo["testbed"]), tmp_path / "pretrained", files, progress=False)

    history = jobs.finetune(
        task="xnli", seed=1, pretrained_dir=tmp_path / "pretrained",
        train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")],
        out_dir=tmp_path / "dense", settings=demo["finetune"],
        max_length=demo["max_length"], device=torch.device("cpu"), progress=False,
    )
    accuracy = {}
    for lang in languages:
        result = jobs.evaluate_model(
            task="xnli", seed=1, variant="dense", lang=lang, split="test", model_dir=tmp_path / "dense",
            tokenizer_dir=tmp_path / "pretrained", data_file=files[("xnli", lang, "test")],
            out_file=tmp_path / f"eval-{lang}.json", batch_size=256, max_length=demo["max_length"],
            prunable=demo["prunable"], device=torch.device("cpu"),
        )
        accuracy[lang] = 100 * result["accuracy"]
    print(json.dumps({"dev": history["best_dev_accuracy"], "test": accuracy}, indent=1))

    zero_shot = {lang: acc for lang, acc in accuracy.items() if lang != "en"}
    chance = 100 / 3
    assert history["best_dev_accuracy"] >= 0.90
    assert sum(zero_shot.values()) / len(zero_shot) >= chance + 15
    assert max(zero_shot.values()) - min(zero_shot.values()) >= 10
