"""The demo's dense model at full demo size: it must learn English and transfer unevenly.

Builds the testbed exactly as profiles/demo configures it (XNLI-like task), fine-tunes on
English with the demo's settings for each of the demo's seeds and evaluates every language's
test set. About 4 minutes on 2 CPU cores.
"""

import json

import pytest
import torch

from alignprune import jobs
from alignprune.testbed import build_testbed, settings_from_config
from workflow_helpers import load_config


DEMO = load_config("config.yaml", "profiles/demo/testbed.yaml")
LANGUAGES = DEMO["tasks"]["xnli"]["languages"]


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    files = {("xnli", "en", "train"): root / "train.parquet", ("xnli", "en", "validation"): root / "dev.parquet"}
    files |= {("xnli", lang, "test"): root / f"test-{lang}.parquet" for lang in LANGUAGES}
    torch.set_num_threads(2)  # as the testbed rule gets every core of the 2-core demo
    build_testbed(settings_from_config(DEMO["testbed"]), root / "pretrained", files, progress=False)
    return root, files


@pytest.mark.parametrize("seed", DEMO["seeds"])
def test_dense_demo_model_learns_english_and_transfers_with_graded_accuracy(testbed, seed):
    tmp_path, files = testbed
    demo, languages = DEMO, LANGUAGES
    # the demo's finetune and evaluate jobs run on this many threads: same numbers as the demo
    torch.set_num_threads(demo["threads"]["train"])
    history = jobs.finetune(
        task="xnli", seed=seed, pretrained_dir=tmp_path / "pretrained",
        train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")],
        out_dir=tmp_path / f"dense-{seed}", settings=demo["finetune"],
        max_length=demo["max_length"], prunable=demo["prunable"], device=torch.device("cpu"), progress=False,
    )
    accuracy = {}
    for lang in languages:
        result = jobs.evaluate_model(
            task="xnli", seed=seed, variant="dense", lang=lang, split="test", model_dir=tmp_path / f"dense-{seed}",
            tokenizer_dir=tmp_path / "pretrained", data_file=files[("xnli", lang, "test")],
            out_file=tmp_path / f"eval-{seed}-{lang}.json", batch_size=256, max_length=demo["max_length"],
            prunable=demo["prunable"], device=torch.device("cpu"),
        )
        accuracy[lang] = 100 * result["accuracy"]
    print(json.dumps({"dev": history["best_dev_accuracy"], "test": accuracy}, indent=1))

    zero_shot = {lang: acc for lang, acc in accuracy.items() if lang != "en"}
    chance = 100 / 3
    assert history["best_dev_accuracy"] >= 0.90
    assert sum(zero_shot.values()) / len(zero_shot) >= chance + 15
    assert max(zero_shot.values()) - min(zero_shot.values()) >= 10
