"""Task data: fetch from the Hub (or a local copy in the Hub's layout), normalise, encode.

Normalised files have three columns: ``text_a``, ``text_b`` (str) and
``label`` (int64, 0..num_labels-1). Every later stage reads only these.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import hub
from .io import atomic_path
from .tasks import SPLITS, TaskSpec


# PAWS-X marks untranslated rows with this text instead of a sentence.
PLACEHOLDER_TEXTS = frozenset({"", "NS"})


@dataclass
class CleaningReport:
    rows_in: int
    dropped_bad_label: int
    dropped_placeholder: int

    @property
    def rows_out(self) -> int:
        return self.rows_in - self.dropped_bad_label - self.dropped_placeholder


def raw_split_files(task: TaskSpec, lang: str, split: str, source: dict) -> tuple[list[Path], dict]:
    """The parquet files of one language and split as the Hub serves them, and where they came
    from (the provenance record written with the normalised file).

    ``source`` is ``{"hub": repo_id, "revision": branch/tag/commit}`` (revision default ``main``;
    fetched through the Hugging Face cache, which alone serves offline) or ``{"local": folder}``;
    either holds the Hub repository's own files: ``{lang}/{split}-*.parquet``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    pattern = f"{lang}/{split}-*.parquet"
    if source.get("local") is not None:
        folder = Path(source["local"])
        files = sorted(folder.glob(pattern))
        if not files:
            raise FileNotFoundError(
                f"no files match {folder / pattern}: a local source must hold the Hub layout "
                f"{{folder}}/{{lang}}/{{split}}-*.parquet (e.g. a clone of {task.hub_id})"
            )
        check_shards(files)
        return files, {**hub.local_record(folder, files), "files": [f.relative_to(folder).as_posix() for f in files]}
    revision = source.get("revision") or "main"
    folder, record = hub.snapshot(source["hub"], revision, repo_type="dataset", allow_patterns=pattern)
    files = sorted(folder.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f"{source['hub']} at {revision} (commit {record['commit']}) has no files {pattern}"
            + (f" in the cache: fill it with {hub.download_command(source['hub'], revision, 'dataset', f'{lang}/*')}"
               if hub.offline() else ": is the language or split right?")
        )
    check_shards(files)
    return files, {**record, "files": [f.relative_to(folder).as_posix() for f in files]}


# {split}-00000-of-00002.parquet; older conversions add a content hash: ...-of-00002-<hex>.parquet
SHARD = re.compile(r"-(\d+)-of-(\d+)(?:-[0-9a-f]+)?\.parquet$")


def check_shards(files: list[Path]) -> None:
    """The files of one split are the shards 0..N-1 of one sharding ({split}-0000k-of-0000N.parquet),
    each once. A folder that `hf download --local-dir` filled at two revisions keeps the older
    one's shards beside the newer (it never deletes), and reading both would count rows twice."""
    sharded = [SHARD.search(f.name) for f in files]
    if not any(sharded):
        return  # not the Hub's naming (a hand-made file): nothing to check against
    totals = {int(m.group(2)) for m in sharded if m}
    found = sorted(int(m.group(1)) for m in sharded if m)
    if not all(sharded) or len(totals) != 1 or found != list(range(next(iter(totals)))):
        names = ", ".join(f.name for f in files)
        raise ValueError(
            f"{files[0].parent}: the files {names} are not one complete set of shards (0..N-1 of N): "
            "shards of two revisions, or a missing one; keep one revision's files (download again into "
            "an empty folder)"
        )


def read_raw_files(files: list[Path]) -> pd.DataFrame:
    """Read file by file: an error names the file, and an empty file is an empty split, not a crash."""
    frames = []
    for path in files:
        try:
            frames.append(pd.read_parquet(path))
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise ValueError(
                f"{path}: cannot read as parquet ({type(err).__name__}: {str(err)[:200]}); "
                "replace the file with an intact copy from the Hub"
            ) from None
    return pd.concat(frames, ignore_index=True)


def load_raw_split(task: TaskSpec, lang: str, split: str, source: dict) -> pd.DataFrame:
    """Rows of one language and split as the Hub serves them (see ``raw_split_files``)."""
    return read_raw_files(raw_split_files(task, lang, split, source)[0])


def normalise(task: TaskSpec, raw: pd.DataFrame) -> tuple[pd.DataFrame, CleaningReport]:
    """Rename the task's columns to text_a/text_b/label and drop unusable rows."""
    col_a, col_b = task.text_columns
    missing = {col_a, col_b, "label"} - set(raw.columns)
    if missing:
        raise ValueError(
            f"{task.name}: columns {sorted(missing)} missing; found {list(raw.columns)}"
        )
    frame = pd.DataFrame(
        {
            "text_a": raw[col_a].fillna("").astype(str).str.strip(),
            "text_b": raw[col_b].fillna("").astype(str).str.strip(),
            "label": pd.to_numeric(raw["label"], errors="coerce"),
        }
    )
    # Negative labels mark unusable rows (PAWS-X) and are dropped; any other label outside the
    # task's set means the file is not this task's data.
    bad_label = frame["label"] < 0
    foreign = ~bad_label & ~frame["label"].isin(range(task.num_labels))
    if foreign.any():
        raise ValueError(
            f"{task.name}: {int(foreign.sum())} of {len(frame)} rows have a label outside 0..{task.num_labels - 1} "
            f"({', '.join(task.label_names)}), e.g. {raw['label'][foreign].iloc[0]!r}: is this {task.name} data?"
        )
    placeholder = ~bad_label & (
        frame["text_a"].isin(PLACEHOLDER_TEXTS) | frame["text_b"].isin(PLACEHOLDER_TEXTS)
    )
    report = CleaningReport(len(frame), int(bad_label.sum()), int(placeholder.sum()))
    kept = frame[~bad_label & ~placeholder].reset_index(drop=True)
    kept["label"] = kept["label"].astype("int64")
    return kept, report


def write_split(frame: pd.DataFrame, path: str | Path, provenance: dict | None = None) -> None:
    """Parquet; ``provenance`` (where the rows came from) goes into the file's own metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if provenance is not None:
        table = table.replace_schema_metadata({**table.schema.metadata, hub.PARQUET_KEY: json.dumps(provenance).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_split(path: str | Path, num_labels: int) -> pd.DataFrame:
    """Read a normalised file and check it is usable, naming the file if not."""
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: cannot read parquet ({err})") from err
    missing = {"text_a", "text_b", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing")
    if frame.empty:
        raise ValueError(f"{path}: no rows")
    bad = ~frame["label"].isin(range(num_labels))
    if bad.any():
        raise ValueError(
            f"{path}: {int(bad.sum())} labels outside 0..{num_labels - 1}, "
            f"e.g. {frame.loc[bad, 'label'].iloc[0]!r}"
        )
    return frame


@dataclass
class EncodedSplit:
    """Token ids of every example (unpadded) and their labels."""

    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> "EncodedSplit":
        """The first ``n`` examples."""
        return EncodedSplit(self.input_ids[:n], self.labels[:n])


def encode(tokenizer, frame: pd.DataFrame, max_length: int) -> EncodedSplit:
    encoded = tokenizer(
        frame["text_a"].tolist(),
        frame["text_b"].tolist(),
        truncation=True,
        max_length=max_length,
    )
    return EncodedSplit(encoded["input_ids"], frame["label"].astype(int).tolist())
