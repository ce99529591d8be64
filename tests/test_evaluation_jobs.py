"""One evaluation job per model: one model load for every (split, language), and the same files,
byte for byte, as one evaluation per language; a failure leaves only whole files."""

import json

import pandas as pd
import pytest
import torch
from conftest import PRUNABLE, tiny_testbed, tokenized

from alignprune import alignment, modeling
from alignprune.data import write_split
from alignprune.model_key import ModelKey
from alignprune.stages import alignment as alignment_stage
from alignprune.stages import evaluate as evaluate_stage
from alignprune.stages.alignment import LanguageFile
from alignprune.stages.evaluate import EvalFile

CPU = torch.device("cpu")
SIZES = {"train": 20, "validation": 24, "test": 40}
PAIRS = [(split, lang) for split in ("validation", "test") for lang in ("en", "de")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny testbed, and a classifier made from it with half of each prunable matrix zeroed."""
    root = tmp_path_factory.mktemp("evaluation")
    files = {("xnli", lang, split): root / f"{lang}-{split}.parquet" for split, lang in PAIRS}
    tiny_testbed(root / "pretrained", files, sizes=SIZES, pretrain_steps=5, pretrain_batch_size=8)  # + token files
    torch.manual_seed(0)
    model = modeling.load_classifier(root / "pretrained", num_labels=3)
    names = modeling.prunable_names(model, **PRUNABLE)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in names:
                param[: param.shape[0] // 2] = 0.0
    model.save_pretrained(root / "model")
    return root


def eval_files(root, folder):
    return [EvalFile(split, lang, root / f"{lang}-{split}.tokens.parquet", folder / split / f"{lang}.json")
            for split, lang in PAIRS]


def evaluate_all(root, files):
    return evaluate_stage.evaluate_model_files(
        key=ModelKey.of("xnli", 1, "random", 0.50), model_dir=root / "model",
        tokenizer_dir=root / "pretrained", files=files, batch_size=16, max_length=32, prunable=PRUNABLE, device=CPU,
    )


def count_calls(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_one_job_writes_every_split_and_language_as_one_evaluation_per_language_would(world, tmp_path, monkeypatch):
    loads = count_calls(monkeypatch, modeling, "load_classifier")
    records = evaluate_all(world, eval_files(world, tmp_path / "job"))
    assert len(loads) == 1  # one model load for the four evaluations
    for file, record in zip(eval_files(world, tmp_path / "job"), records):
        single = evaluate_stage.evaluate_model(
            key=ModelKey.of("xnli", 1, "random", 0.50), lang=file.lang, split=file.split,
            model_dir=world / "model", tokenizer_dir=world / "pretrained", token_file=file.token_file,
            out_file=tmp_path / "single" / file.split / f"{file.lang}.json", batch_size=16, max_length=32,
            prunable=PRUNABLE, device=CPU,
        )
        assert file.out_file.read_bytes() == (tmp_path / "single" / file.split / f"{file.lang}.json").read_bytes()
        assert json.loads(file.out_file.read_text()) == record == single
        assert (record["split"], record["language"], record["n_examples"]) == (file.split, file.lang, SIZES[file.split])
        assert record["correct"] == round(record["accuracy"] * record["n_examples"])
        assert (record["method"], record["sparsity_target"]) == ("random", 0.5)
        assert record["sparsity_prunable"] == pytest.approx(0.5, abs=0.02)
    assert len(loads) == 1 + len(PAIRS)


def test_a_damaged_token_file_stops_the_job_before_any_file_is_written(world, tmp_path):
    files = eval_files(world, tmp_path / "out")
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"not parquet")
    files[-1] = files[-1]._replace(token_file=damaged)
    with pytest.raises(ValueError, match="damaged.parquet: cannot read as parquet"):
        evaluate_all(world, files)
    assert not (tmp_path / "out").exists()


def test_a_failure_midway_leaves_whole_files_and_no_partial_one(world, tmp_path, monkeypatch):
    original = evaluate_stage.accuracy
    done = []

    def fail_on_the_second(*args, **kwargs):
        if done:
            raise RuntimeError("device lost")
        done.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate_stage, "accuracy", fail_on_the_second)
    files = eval_files(world, tmp_path / "out")
    with pytest.raises(RuntimeError, match="device lost"):
        evaluate_all(world, files)
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["validation/en.json"]  # no temporary file left beside it
    assert json.loads(files[0].out_file.read_text())["n_examples"] == SIZES["validation"]


def measure_one(root, lang, token_file, out_file):
    return alignment_stage.measure_representation_alignment(
        key=ModelKey.of("xnli", 1), split="test", lang=lang, reference_lang="en",
        model_dir=root / "model", tokenizer_dir=root / "pretrained", reference_file=root / "en-test.tokens.parquet",
        token_file=token_file, out_file=out_file, max_examples=30, batch_size=8, max_length=32, device=CPU,
    )


def test_one_representation_job_per_model_writes_each_language_as_one_job_per_language_would(world, tmp_path, monkeypatch):
    shifted = tmp_path / "de-shifted.parquet"
    write_split(pd.read_parquet(world / "de-test.parquet").iloc[1:], shifted)  # rows no longer pair up
    shifted = tokenized(world / "pretrained", {("xnli", "fr", "test"): shifted})[("xnli", "fr", "test")]
    files = [
        LanguageFile("de", world / "de-test.tokens.parquet", tmp_path / "job/de.json"),
        LanguageFile("fr", shifted, tmp_path / "job/fr.json"),
        LanguageFile("en", world / "en-test.tokens.parquet", tmp_path / "job/en.json"),
    ]
    loads = count_calls(monkeypatch, modeling, "load_classifier")
    passes = count_calls(monkeypatch, alignment, "pooled_states")
    records = alignment_stage.measure_representation_alignment_files(
        key=ModelKey.of("xnli", 1), split="test", reference_lang="en", model_dir=world / "model",
        tokenizer_dir=world / "pretrained", reference_file=world / "en-test.tokens.parquet", files=files,
        max_examples=30, batch_size=8, max_length=32, device=CPU,
    )
    # one model load; English encoded once, then each of the two parallel languages
    assert (len(loads), len(passes)) == (1, 3)
    assert [(r["language"], r["parallel"], r["n_examples"]) for r in records] == [("de", True, 30), ("fr", False, 0), ("en", True, 30)]
    for file in files:
        single = tmp_path / "single" / f"{file.lang}.json"
        measure_one(world, file.lang, file.token_file, single)
        assert file.out_file.read_bytes() == single.read_bytes(), file.lang
