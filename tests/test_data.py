"""Loading the tasks from files in the Hub's own layout, columns and label conventions."""

import pandas as pd
import pytest

from alignprune import data
from alignprune.stages.download import download_split
from alignprune.tasks import TASKS


def write_hub_file(root, lang, split, frame):
    folder = root / lang
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / f"{split}-00000-of-00001.parquet", index=False)


@pytest.fixture
def xnli_hub(tmp_path):
    """facebook/xnli: premise, hypothesis, label (0 entailment, 1 neutral, 2 contradiction)."""
    root = tmp_path / "xnli"
    frame = pd.DataFrame(
        {
            "premise": ["Le chat dort.", "Il pleut.", "Elle lit."],
            "hypothesis": ["Un animal dort.", "Il fait beau.", "Elle lit un livre."],
            "label": pd.array([0, 2, 1], dtype="int64"),
        }
    )
    write_hub_file(root, "fr", "test", frame)
    return root


@pytest.fixture
def pawsx_hub(tmp_path):
    """google-research-datasets/paws-x: id, sentence1, sentence2, label (0/1); untranslated rows."""
    root = tmp_path / "paws-x"
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "sentence1": ["Der Hund bellt.", "NS", "Die Katze.", "A", ""],
            "sentence2": ["Es bellt der Hund.", "Die Maus.", "NS", "B", "C"],
            "label": pd.array([1, 0, 1, -1, 0], dtype="int64"),
        }
    )
    write_hub_file(root, "de", "validation", frame)
    return root


def test_xnli_local_hub_layout_is_normalised(xnli_hub, tmp_path):
    out = tmp_path / "out" / "xnli" / "fr" / "test.parquet"
    counts = download_split("xnli", "fr", "test", {"local": str(xnli_hub)}, out)
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["text_a", "text_b", "label"]
    assert frame["label"].tolist() == [0, 2, 1]
    assert frame["label"].dtype == "int64"
    assert frame["text_a"].tolist() == ["Le chat dort.", "Il pleut.", "Elle lit."]
    assert frame["text_b"].iloc[2] == "Elle lit un livre."
    assert counts == {"rows_in": 3, "dropped_bad_label": 0, "dropped_placeholder": 0, "rows_out": 3}


def test_pawsx_negative_labels_and_placeholders_are_dropped_and_counted(pawsx_hub, tmp_path):
    out = tmp_path / "de.parquet"
    counts = download_split("pawsx", "de", "validation", {"local": str(pawsx_hub)}, out)
    frame = pd.read_parquet(out)
    # Row 4 has label -1; rows 2, 3 and 5 have "NS" or empty text.
    assert counts == {"rows_in": 5, "dropped_bad_label": 1, "dropped_placeholder": 3, "rows_out": 1}
    assert frame.to_dict("records") == [
        {"text_a": "Der Hund bellt.", "text_b": "Es bellt der Hund.", "label": 1}
    ]


def test_local_source_without_files_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"\{lang\}/\{split\}-\*\.parquet"):
        data.load_raw_split(TASKS["xnli"], "de", "test", {"local": str(tmp_path)})


def test_missing_hub_columns_are_named(tmp_path):
    raw = pd.DataFrame({"sentence1": ["a"], "label": [0]})
    with pytest.raises(ValueError, match="sentence2"):
        data.normalise(TASKS["pawsx"], raw)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a parquet file", "cannot read parquet"),
        (pd.DataFrame({"text_a": ["a"], "text_b": ["b"], "label": [7]}), "labels outside 0..2"),
        (pd.DataFrame({"text_a": [], "text_b": [], "label": []}), "no rows"),
    ],
)
def test_unusable_normalised_files_are_rejected_with_their_name(tmp_path, content, message):
    path = tmp_path / "bad.parquet"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content.to_parquet(path)
    with pytest.raises(ValueError, match=message) as err:
        data.read_split(path, num_labels=3)
    assert str(path) in str(err.value)


def test_shards_of_two_revisions_are_refused_not_read_twice(xnli_hub, tmp_path):
    """`hf download --local-dir` at a second revision leaves the first one's shards: the files of a
    split must be one complete set 0..N-1 of N."""
    frame = pd.read_parquet(xnli_hub / "fr" / "test-00000-of-00001.parquet")
    for k in range(2):  # the same rows, sharded in two by a later revision
        frame.iloc[k::2].to_parquet(xnli_hub / "fr" / f"test-0000{k}-of-00002.parquet", index=False)
    with pytest.raises(ValueError, match=r"test-00000-of-00001.parquet, test-00000-of-00002.parquet, "
                                         r"test-00001-of-00002.parquet are not one complete set of shards"):
        download_split("xnli", "fr", "test", {"local": str(xnli_hub)}, tmp_path / "out.parquet")
    (xnli_hub / "fr" / "test-00000-of-00001.parquet").unlink()  # one revision's shards: read, once each
    counts = download_split("xnli", "fr", "test", {"local": str(xnli_hub)}, tmp_path / "out.parquet")
    assert counts["rows_out"] == len(frame)
    (xnli_hub / "fr" / "test-00001-of-00002.parquet").unlink()  # a shard missing
    with pytest.raises(ValueError, match="not one complete set of shards"):
        download_split("xnli", "fr", "test", {"local": str(xnli_hub)}, tmp_path / "other.parquet")
    # an older conversion's hashed name beside the newer set: the same doubling
    frame.iloc[1::2].to_parquet(xnli_hub / "fr" / "test-00001-of-00002.parquet", index=False)
    frame.to_parquet(xnli_hub / "fr" / "test-00000-of-00001-5d3e2a.parquet", index=False)
    with pytest.raises(ValueError, match="not one complete set of shards"):
        download_split("xnli", "fr", "test", {"local": str(xnli_hub)}, tmp_path / "other.parquet")


def test_a_local_folder_of_links_reads_like_one_of_files(xnli_hub, tmp_path):
    """A Hugging Face cache snapshot (or git-annex, DVC) is a folder of links into another: its
    files are read and recorded by their names in the folder, with the digest of a plain copy."""
    linked = tmp_path / "snapshot"
    (linked / "fr").mkdir(parents=True)
    blob = tmp_path / "blobs" / "0123abcd"
    blob.parent.mkdir()
    blob.write_bytes((xnli_hub / "fr" / "test-00000-of-00001.parquet").read_bytes())
    (linked / "fr" / "test-00000-of-00001.parquet").symlink_to(blob)
    plain, via_links = tmp_path / "plain.parquet", tmp_path / "linked.parquet"
    download_split("xnli", "fr", "test", {"local": str(xnli_hub)}, plain)
    download_split("xnli", "fr", "test", {"local": str(linked)}, via_links)
    assert pd.read_parquet(via_links).equals(pd.read_parquet(plain))
    from alignprune import hub

    records = [hub.read_record(path) for path in (plain, via_links)]
    assert records[1]["path"] == str(linked) and records[1]["sha256"] == records[0]["sha256"]
