"""Token files: the ids every job reads are the ids it used to encode itself, and a job refuses
ids made by another tokenizer or at another max_length, before any output is written."""

import shutil

import pyarrow.parquet as pq
import pytest
import torch
from conftest import PRUNABLE, tiny_testbed

from alignprune import code_version, data, hub, modeling
from alignprune.model_key import ModelKey
from alignprune.stages.evaluate import EvalFile, evaluate_model_files
from alignprune.tokens import read_tokens, tokenize_file, tokenize_files, tokenizer_fingerprint

FILES = [("xnli", "en", "train"), ("xnli", "de", "test")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    files = {key: root / f"{key[1]}-{key[2]}.parquet" for key in FILES}
    tokens = tiny_testbed(root / "pretrained", files, sizes={"train": 60, "validation": 20, "test": 30},
                          pretrain_steps=2, pretrain_batch_size=8, max_length=16)
    return root, files, tokens


def test_token_files_hold_the_ids_and_labels_a_job_encoded_itself(world):
    root, files, tokens = world
    tokenizer = modeling.load_tokenizer(root / "pretrained")
    for key in FILES:
        expected = data.encode(tokenizer, data.read_split(files[key], 3), 16)
        split, pad_id = read_tokens(tokens[key], root / "pretrained", max_length=16, num_labels=3)
        assert split.input_ids == expected.input_ids and split.labels == expected.labels
        assert pad_id == tokenizer.pad_token_id
        # truncation happened: some pairs are longer than 16 tokens untruncated
        assert max(map(len, split.input_ids)) == 16
        assert max(map(len, data.encode(tokenizer, data.read_split(files[key], 3), 512).input_ids)) > 16
        # the data file's provenance is the token file's: eval JSONs name the data's source as before
        assert hub.read_record(tokens[key]) == hub.read_record(files[key]) is not None


def test_another_tokenizer_is_refused_before_anything_is_written(world, tmp_path):
    root, _, tokens = world
    other = tmp_path / "other-pretrained"
    shutil.copytree(root / "pretrained", other)
    assert tokenizer_fingerprint(other) == tokenizer_fingerprint(root / "pretrained")  # the same bytes
    tokenizer = modeling.load_tokenizer(other)
    tokenizer.add_tokens(["zzzq"])  # another vocabulary: the same ids would mean other text
    tokenizer.save_pretrained(other)
    # the same folder, rewritten: hashed anew (the digest is kept per process only while the files stay)
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(root / "pretrained")
    with pytest.raises(ValueError, match="made by another tokenizer .* than the one in .*other-pretrained"):
        read_tokens(tokens[("xnli", "en", "train")], other, max_length=16, num_labels=3)
    torch.manual_seed(0)
    modeling.load_classifier(root / "pretrained", num_labels=3).save_pretrained(tmp_path / "model")
    out = tmp_path / "evals"
    files = [EvalFile("test", "de", tokens[("xnli", "de", "test")], out / "de.json"),
             EvalFile("train", "en", tokens[("xnli", "en", "train")], out / "en.json")]
    evaluate = dict(key=ModelKey.of("xnli", 1), model_dir=tmp_path / "model", files=files, batch_size=8,
                    max_length=16, prunable=PRUNABLE, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="another tokenizer"):
        evaluate_model_files(tokenizer_dir=other, **evaluate)
    assert not out.exists()
    assert len(evaluate_model_files(tokenizer_dir=root / "pretrained", **evaluate)) == 2  # its own: accepted


def test_another_max_length_and_a_data_file_are_refused_with_the_fix(world):
    root, files, tokens = world
    with pytest.raises(ValueError, match="max_length 16, the job asks for 32; tokenise again"):
        read_tokens(tokens[("xnli", "de", "test")], root / "pretrained", max_length=32, num_labels=3)
    with pytest.raises(ValueError, match="not a token file .* made by the tokenize rule"):
        read_tokens(files[("xnli", "de", "test")], root / "pretrained", max_length=16, num_labels=3)
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        tokenizer_fingerprint(root)


def test_the_token_file_records_what_made_it(world, tmp_path):
    root, files, _ = world
    record = tokenize_file(files[("xnli", "de", "test")], root / "pretrained", tmp_path / "de.parquet",
                           num_labels=3, max_length=16)
    assert record == {"tokenizer": tokenizer_fingerprint(root / "pretrained"), "tokenizer_class": record["tokenizer_class"],
                      "pad_token_id": modeling.load_tokenizer(root / "pretrained").pad_token_id, "max_length": 16,
                      "rows": 30, "data_file": "de-test.parquet", "code": code_version.CURRENT}
    assert record["tokenizer_class"].startswith("XLMRoberta")
    table = pq.read_table(tmp_path / "de.parquet")
    assert table.column_names == ["input_ids", "label"] and table.num_rows == 30
    assert [p.name for p in tmp_path.iterdir()] == ["de.parquet"]  # written whole, no temporary left


def test_tokenize_files_names_each_file_and_remakes_only_what_it_must(world, tmp_path):
    root, files, tokens = world
    made = tokenize_files(files, root / "pretrained", lambda key: tmp_path / "-".join(key) / "t.parquet",
                          max_length=16)
    assert made == {key: tmp_path / "-".join(key) / "t.parquet" for key in FILES}
    for key in FILES:  # the same ids as the fixture's files, made by the same call
        assert read_tokens(made[key], root / "pretrained", max_length=16, num_labels=3) == \
            read_tokens(tokens[key], root / "pretrained", max_length=16, num_labels=3)
    stale = made[FILES[0]]
    stale.write_bytes(b"kept")  # reuse keeps a file that exists; without it, it is made again
    tokenize_files(files, root / "pretrained", lambda key: made[key], max_length=16, reuse=True)
    assert stale.read_bytes() == b"kept"
    tokenize_files(files, root / "pretrained", lambda key: made[key], max_length=16)
    assert read_tokens(stale, root / "pretrained", max_length=16, num_labels=3) == \
        read_tokens(tokens[FILES[0]], root / "pretrained", max_length=16, num_labels=3)


def test_the_code_that_made_the_ids_joins_the_evaluation_that_read_them(world, tmp_path):
    """An evaluation's code names the tokenize job's digest beside the model's and its own; a
    token file from before the digest was recorded adds nothing (its results keep their code)."""
    import json

    root, _, tokens = world
    torch.manual_seed(0)
    modeling.load_classifier(root / "pretrained", num_labels=3).save_pretrained(tmp_path / "model")
    table = pq.read_table(tokens[("xnli", "de", "test")])
    metadata = dict(table.schema.metadata)
    made_by = {**json.loads(metadata[b"alignprune.tokens"]), "code": "0123456789ab"}
    older = {k: v for k, v in json.loads(metadata[b"alignprune.tokens"]).items() if k != "code"}
    codes = {}
    for name, record in (("other", made_by), ("older", older)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table.replace_schema_metadata({**metadata, b"alignprune.tokens": json.dumps(record).encode()}), path)
        (result,) = evaluate_model_files(
            key=ModelKey.of("xnli", 1), model_dir=tmp_path / "model", tokenizer_dir=root / "pretrained",
            files=[EvalFile("test", "de", path, tmp_path / f"{name}.json")], batch_size=8, max_length=16,
            prunable=PRUNABLE, device=torch.device("cpu"),
        )
        codes[name] = result["code"].split("+")
    # the model folder has no code.json (saved here by hand): 'unrecorded', and this job's digest
    assert codes["older"] == sorted([code_version.UNRECORDED, code_version.CURRENT])
    assert codes["other"] == sorted([code_version.UNRECORDED, code_version.CURRENT, "0123456789ab"])
