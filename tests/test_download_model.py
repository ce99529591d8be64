"""The download code on folders in the Hub's own layout (what a Hub snapshot holds) and on a
pre-filled Hugging Face cache read offline: a pinned revision gives its own bytes, and the commit
it resolved to is recorded beside the files and in every evaluation's fields."""

import json

import pandas as pd
import pytest
import sentencepiece as spm
import torch
from safetensors.torch import load_file

from alignprune import data, hub
from alignprune.model_key import ModelKey
from alignprune.modeling import load_classifier, load_tokenizer
from alignprune.stages.download import download_model, download_split
from alignprune.stages.evaluate import evaluate_model
from alignprune.tokens import tokenize_file


def hub_snapshot(folder, seed=0):
    """config.json + model.safetensors + sentencepiece.bpe.model, as in FacebookAI/xlm-roberta-base."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    folder.mkdir(parents=True)
    corpus = folder.parent / "corpus.txt"
    corpus.write_text("\n".join(f"der hund {i} sieht die katze" for i in range(200)) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "sentencepiece.bpe"), vocab_size=40,
        model_type="unigram", hard_vocab_limit=False, minloglevel=2,
    )
    (folder / "sentencepiece.bpe.vocab").unlink()
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40,
    )
    XLMRobertaForMaskedLM(config).save_pretrained(folder)
    return folder


def test_download_model_writes_safetensors_and_a_working_tokenizer(tmp_path):
    snapshot = hub_snapshot(tmp_path / "snapshot")
    out = tmp_path / "resources/models/org--model"
    download_model(str(snapshot), out)

    files = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in files and "tokenizer.json" in files
    # the code that wrote it, so a model fine-tuned from it has no 'unrecorded' start (code_version)
    from alignprune import code_version

    assert json.loads((out / code_version.CODE_FILE).read_text()) == {"code": [code_version.package_digest()]}
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    saved = load_file(out / "model.safetensors")
    original = load_file(snapshot / "model.safetensors")
    shared = set(saved) & set(original)
    assert shared and all(torch.equal(saved[k], original[k]) for k in shared)

    tokenizer = load_tokenizer(out)
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer"
    ids = tokenizer("der hund", "die katze")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids.count(tokenizer.sep_token_id) == 3
    assert tokenizer.unk_token_id not in ids
    classifier = load_classifier(out, num_labels=3)
    assert classifier.config.num_labels == 3


    # a local folder is recorded by its path and the digest of the files read
    record = json.loads((out / hub.PROVENANCE_FILE).read_text())
    assert record["source"] == "local" and record["path"] == str(snapshot.resolve())
    assert len(record["sha256"]) == 64
    again = tmp_path / "again"
    download_model(str(snapshot), again)
    assert json.loads((again / hub.PROVENANCE_FILE).read_text()) == record  # same bytes, same digest


# --- A pre-filled Hugging Face cache, offline ---------------------------------------------------

COMMIT_A = "a" * 40  # refs/main
COMMIT_B = "b" * 40  # refs/v1, a tag (other weights, other rows)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """The hub cache layout (refs/<name> holds a commit; snapshots/<commit>/ the files) with two
    commits of a model and of a dataset, and the Hub libraries set to offline on it."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-home" / "hub"
    model_repo = cache / "models--org--tiny-xlmr"
    hub_snapshot(model_repo / "snapshots" / COMMIT_A, seed=0)
    hub_snapshot(model_repo / "snapshots" / COMMIT_B, seed=1)
    data_repo = cache / "datasets--org--xnli"
    for commit, label in ((COMMIT_A, 0), (COMMIT_B, 2)):
        folder = data_repo / "snapshots" / commit / "de"
        folder.mkdir(parents=True)
        pd.DataFrame({"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [label, 1]}).to_parquet(
            folder / "test-00000-of-00001.parquet", index=False
        )
    for repo in (model_repo, data_repo):
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT_A)
        (repo / "refs" / "v1").write_text(COMMIT_B)  # the cache names a ref as it was asked for
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize(
    "revision, commit", [("main", COMMIT_A), ("v1", COMMIT_B), (COMMIT_B, COMMIT_B)], ids=["branch", "tag", "commit"]
)
def test_a_model_revision_resolves_offline_to_its_commit_whose_bytes_are_saved_and_recorded(
    offline_cache, tmp_path, revision, commit
):
    out = tmp_path / "resources/models/org--tiny-xlmr"
    record = download_model("org/tiny-xlmr", out, revision=revision)
    expected = {"source": "hub", "repo": "org/tiny-xlmr", "revision": revision, "commit": commit}
    assert record == expected
    assert json.loads((out / hub.PROVENANCE_FILE).read_text()) == expected
    snapshot = offline_cache / "models--org--tiny-xlmr" / "snapshots"
    saved = load_file(out / "model.safetensors")
    chosen = load_file(snapshot / commit / "model.safetensors")
    other = load_file(snapshot / (COMMIT_B if commit == COMMIT_A else COMMIT_A) / "model.safetensors")
    name = "roberta.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(saved[name], chosen[name]) and not torch.equal(saved[name], other[name])
    assert hub.provenance(out) == {"model_source": "org/tiny-xlmr", "model_revision": revision, "model_commit": commit}


@pytest.mark.parametrize("revision, commit, label", [("main", COMMIT_A, 0), ("v1", COMMIT_B, 2)])
def test_a_dataset_revision_resolves_offline_and_its_commit_travels_in_the_data_file(
    offline_cache, tmp_path, revision, commit, label
):
    out = tmp_path / "resources/data/xnli/de/test.parquet"
    download_split("xnli", "de", "test", {"hub": "org/xnli", "revision": revision}, out)
    assert pd.read_parquet(out)["label"].tolist() == [label, 1]  # that commit's rows
    assert hub.read_record(out) == {
        "source": "hub", "repo": "org/xnli", "revision": revision, "commit": commit,
        "files": ["de/test-00000-of-00001.parquet"],
    }
    model = tmp_path / "model"
    model.mkdir()
    hub.write_model_record(model, hub.testbed_record(7))
    # what an evaluation carries: both sources, the revisions asked for and the commits used
    assert hub.provenance(model, out) == {
        "model_source": "testbed (seed 7)", "model_revision": None, "model_commit": None,
        "data_source": "org/xnli", "data_revision": revision, "data_commit": commit,
    }


@pytest.mark.parametrize("what", ["model", "data"])
def test_a_pinned_revision_missing_from_the_cache_fails_naming_the_hf_command_that_fills_it(
    offline_cache, tmp_path, what
):
    out = tmp_path / "out"
    with pytest.raises(hub.HubUnreachable) as caught:
        if what == "model":
            download_model("org/tiny-xlmr", out, revision="v2")
        else:
            download_split("xnli", "de", "test", {"hub": "org/xnli", "revision": "v2"}, out)
    message = str(caught.value)
    repo = "org/tiny-xlmr" if what == "model" else "org/xnli --repo-type dataset"
    assert f"hf download {repo} --revision v2" in message, message
    assert "'v2' is not in the Hugging Face cache" in message and str(offline_cache) in message
    assert "huggingface-cli" not in message
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_cached_dataset_commit_without_the_language_names_its_files_and_the_fill_command(offline_cache):
    with pytest.raises(FileNotFoundError, match=r"org/xnli at main \(commit a{40}\) has no files fr/test-\*\.parquet"
                       r".*hf download org/xnli --repo-type dataset --revision main --include 'fr/\*'"):
        data.load_raw_split(_xnli(), "fr", "test", {"hub": "org/xnli"})


def _xnli():
    from alignprune.tasks import TASKS

    return TASKS["xnli"]


def test_the_hub_cli_named_in_messages_is_the_installed_one():
    """huggingface_hub's console script is `hf` (it has no `huggingface-cli`)."""
    from importlib.metadata import entry_points

    scripts = {e.name for e in entry_points(group="console_scripts") if e.value.startswith("huggingface_hub")}
    assert "hf" in scripts and "huggingface-cli" not in scripts
    assert "hf download" in hub.OFFLINE_HELP and "huggingface-cli" not in hub.OFFLINE_HELP


def test_the_tables_list_the_inputs_of_the_evaluations_with_their_commits(tmp_path):
    from alignprune.results import PROVENANCE as PROVENANCE_COLUMNS
    from alignprune.results import collect_evals, inputs_table, load_evals, write_table

    record = {"task": "xnli", "seed": 1, "method": "dense", "sparsity_target": 0.0, "split": "test",
              "accuracy": 0.8, "model_source": "org/tiny-xlmr", "model_revision": "v1", "model_commit": COMMIT_B,
              "data_source": "org/xnli", "data_revision": "main"}
    files = []
    for n, (lang, commit) in enumerate([("en", COMMIT_A), ("de", COMMIT_A), ("fr", COMMIT_B)]):
        files.append(tmp_path / f"{n}.json")
        files[-1].write_text(json.dumps({**record, "language": lang, "data_commit": commit}))
    files.append(tmp_path / "old.json")  # written before inputs were recorded
    files[-1].write_text(json.dumps({k: v for k, v in record.items() if not k.startswith(("model_", "data_"))}
                                    | {"language": "sw"}))
    collect_evals(files, tmp_path / "evals.csv")
    table = inputs_table(load_evals(tmp_path / "evals.csv", "test"))
    rows = {(r.data_commit, r.model_commit): r.evaluations for r in table.itertuples()}
    # main moved between two downloads: two rows; the old file: not recorded
    assert rows == {(COMMIT_A, COMMIT_B): 2, (COMMIT_B, COMMIT_B): 1, ("-", "-"): 1}
    write_table(table, {"md": tmp_path / "inputs.md"})
    lines = (tmp_path / "inputs.md").read_text().splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0] == [*PROVENANCE_COLUMNS, "code", "evaluations"]
    assert cells[2] == ["org/tiny-xlmr", "v1", COMMIT_B, "org/xnli", "main", COMMIT_A, "unrecorded", "2"]
    assert cells[4] == ["-"] * 6 + ["unrecorded", "1"]


def test_every_evaluation_carries_the_commits_of_its_model_and_data(offline_cache, tmp_path):
    pretrained = tmp_path / "resources/models/org--tiny-xlmr"
    download_model("org/tiny-xlmr", pretrained, revision="v1")
    data_file = tmp_path / "resources/data/xnli/de/test.parquet"
    download_split("xnli", "de", "test", {"hub": "org/xnli", "revision": "main"}, data_file)
    # the tokenize rule's step: the data's provenance travels into the token file
    token_file = tmp_path / "resources/tokens/xnli/de/test.parquet"
    tokenize_file(data_file, pretrained, token_file, num_labels=3, max_length=16)
    classifier = tmp_path / "classifier"
    load_classifier(pretrained, num_labels=3).save_pretrained(classifier)
    result = evaluate_model(
        key=ModelKey.of("xnli", 1), lang="de", split="test", model_dir=classifier,
        tokenizer_dir=pretrained, token_file=token_file, out_file=tmp_path / "eval.json", batch_size=2,
        max_length=16, prunable={"include": [r"attention\.self\.query\.weight$"], "exclude": []},
        device=torch.device("cpu"),
    )
    expected = {"model_source": "org/tiny-xlmr", "model_revision": "v1", "model_commit": COMMIT_B,
                "data_source": "org/xnli", "data_revision": "main", "data_commit": COMMIT_A}
    assert {k: result[k] for k in expected} == expected
    assert json.loads((tmp_path / "eval.json").read_text()).items() >= expected.items()


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_is_what_huggingface_hub_calls_offline(monkeypatch, variable):
    """huggingface_hub goes offline on HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (its constants);
    a cached file must then load without the reachability check, whichever the user set."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # the datasets library's: not read here
    assert not hub.offline()
    monkeypatch.setenv(variable, "1")
    assert hub.offline()
    # the library reads HF_HUB_OFFLINE when it is set at all, else TRANSFORMERS_OFFLINE
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert not hub.offline()


def test_only_network_failures_are_reported_as_the_hub_out_of_reach(monkeypatch):
    """A timeout or a refused connection says how to run offline; a full disk or a read-only cache
    is the machine's, raised as itself (while the weights are written into the cache)."""
    import httpx2

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for network in (httpx2.ReadTimeout("timed out"), ConnectionRefusedError("refused"), TimeoutError("slow")):
        with pytest.raises(hub.HubUnreachable, match="the model m: not reachable .*Without network"):
            with hub.hub_errors("the model m"):
                raise network
    for machine in (OSError(28, "No space left on device"), PermissionError("/shared/hf/hub/blobs")):
        with pytest.raises(type(machine)) as caught:
            with hub.hub_errors("the model m"):
                raise machine
        assert caught.value is machine


def test_a_cached_commit_missing_some_of_its_files_says_so_and_how_to_fill_them(offline_cache):
    """What `hf download --include 'de/*'` leaves: the cache lists the commit's files (trees/), holds
    only some; the library then knows the snapshot is incomplete."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    repo = offline_cache / "datasets--org--xnli"
    entries = {f"{lang}/test-00000-of-00001.parquet": TreeCacheEntry(size=4, blob_id=f"{i:040x}")
               for i, lang in enumerate(("de", "fr"), start=1)}
    write_tree_cache(str(repo), COMMIT_A, entries)
    with pytest.raises(hub.HubUnreachable) as caught:
        data.load_raw_split(_xnli(), "fr", "test", {"hub": "org/xnli"})
    message = str(caught.value)
    assert f"holds its commit {COMMIT_A} but not every file of fr/test-*.parquet" in message, message
    assert "hf download org/xnli --repo-type dataset --revision main --include 'fr/test-*.parquet'" in message


def test_the_model_fill_command_names_only_the_files_a_job_reads():
    """The model repository also holds PyTorch, TensorFlow, Flax and ONNX weights (about 6.4 GB
    against 1.1): the command names every pattern of MODEL_FILES."""
    command = hub.download_command("FacebookAI/xlm-roberta-base", "main", include=hub.MODEL_FILES)
    assert command == ("hf download FacebookAI/xlm-roberta-base --revision main --include '*.json' "
                       "--include '*.safetensors' --include '*.model' --include '*.txt'")


def test_an_error_after_the_download_is_not_called_the_hub_out_of_reach(offline_cache, monkeypatch, tmp_path):
    """The snapshot came; what fails next (here the weights cannot be read) is reported as itself."""
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    from transformers import AutoModelForMaskedLM

    monkeypatch.setattr(AutoModelForMaskedLM, "from_pretrained", broken)
    with pytest.raises(OSError, match="No space left on device") as caught:
        download_model("org/tiny-xlmr", tmp_path / "out", revision="main")
    assert not isinstance(caught.value, hub.HubUnreachable)
    assert not (tmp_path / "out").exists()
