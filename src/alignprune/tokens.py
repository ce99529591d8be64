"""Token ids of one language and split, made once and read by every training and evaluation job.

A token file is parquet: ``input_ids`` (list of int32, unpadded, truncated to ``max_length``)
and ``label`` (int64), row for row the normalised data file it came from. Its metadata holds
the data file's provenance (so an evaluation's JSON names the data's source as before) and
what made the ids: the tokenizer's fingerprint, ``max_length`` and the padding id. A job
compares that fingerprint with the tokenizer files of the model folder it was given and
refuses ids made by another tokenizer, so a swapped model can never read stale ids.

Why not the ``datasets`` cache: its fingerprints are of the Python function that mapped the
rows, not of the tokenizer's files, and its cache lives outside the workflow's outputs;
here the ids are a rule's output, with Snakemake deciding when they are stale.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import code_version, hub
from .data import EncodedSplit, encode, read_split
from .io import atomic_path

TOKENS_KEY = b"alignprune.tokens"

# Every file a Hugging Face tokenizer may be saved as (fast, sentencepiece and BPE tokenizers).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
)


def tokenizer_fingerprint(model_dir: str | Path) -> str:
    """sha256 over the names and bytes of the tokenizer files in ``model_dir``."""
    folder = Path(model_dir)
    digest = hashlib.sha256()
    found = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if not found:
        raise FileNotFoundError(
            f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...); "
            "is this the pretrained model's folder (download or testbed stage)?"
        )
    # An evaluation job checks some 30 token files against one tokenizer (XLM-R's files: ~22 MB):
    # hashed once per process while the files' sizes and times stay the same.
    return _digest(tuple((str(folder / name), (folder / name).stat().st_size, (folder / name).stat().st_mtime_ns)
                         for name in found))


@functools.lru_cache(maxsize=8)
def _digest(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, _, _ in files:
        digest.update(Path(path).name.encode() + b"\0")
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def tokenize_file(data_file: str | Path, tokenizer_dir: str | Path, out_file: str | Path, *, num_labels: int,
                  max_length: int) -> dict:
    """Encode a normalised data file with the tokenizer of ``tokenizer_dir``; returns the record
    written into the token file's metadata."""
    from .modeling import load_tokenizer

    frame = read_split(data_file, num_labels)
    tokenizer = load_tokenizer(tokenizer_dir)
    encoded = encode(tokenizer, frame, max_length)
    record = {
        "tokenizer": tokenizer_fingerprint(tokenizer_dir),
        "tokenizer_class": type(tokenizer).__name__,
        "pad_token_id": tokenizer.pad_token_id,
        "max_length": max_length,
        "rows": len(encoded),
        "data_file": Path(data_file).name,
        "code": code_version.CURRENT,  # the code that made the ids (code_of)
    }
    table = pa.table({
        "input_ids": pa.array(encoded.input_ids, type=pa.list_(pa.int32())),
        "label": pa.array(encoded.labels, type=pa.int64()),
    })
    metadata = {TOKENS_KEY: json.dumps(record).encode()}
    provenance = hub.read_record(data_file)
    if provenance is not None:  # the data's source, read by hub.provenance as from the data file
        metadata[hub.PARQUET_KEY] = json.dumps(provenance).encode()
    with atomic_path(out_file) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    return record


def tokenize_files(data_files: dict, tokenizer_dir: str | Path, token_file, *, max_length: int,
                   reuse: bool = False) -> dict:
    """Token files of data files keyed (task, language, split), as the tokenize rule makes them
    one at a time: ``token_file(key)`` names each; ``reuse`` keeps one that exists. For the
    callers that build a testbed outside Snakemake (calibration, the start-up bench, tests)."""
    from .tasks import task_spec

    tokens = {}
    for key, data_file in data_files.items():
        tokens[key] = Path(token_file(key))
        if not (reuse and tokens[key].exists()):
            tokenize_file(data_file, tokenizer_dir, tokens[key], num_labels=task_spec(key[0]).num_labels,
                          max_length=max_length)
    return tokens


def code_of(*paths: str | Path) -> set[str]:
    """The code digests that made these token files (alignprune.code_version), for the records of
    the models trained on them and the measurements made on them. A token file made before the
    digest was recorded adds none, rather than 'unrecorded': the code fields of the results
    already made from it stay as they were, and no job reruns for it."""
    records = [_record(path) for path in paths]
    return {record["code"] for record in records if record and record.get("code")}


def _record(path: str | Path) -> dict | None:
    """What made a token file (the TOKENS_KEY record of its metadata); None for a parquet file
    without one."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: cannot read as parquet ({err}); delete it and rerun to tokenise again") from None
    return json.loads(metadata[TOKENS_KEY]) if TOKENS_KEY in metadata else None


def read_tokens(path: str | Path, tokenizer_dir: str | Path, *, max_length: int, num_labels: int
                ) -> tuple[EncodedSplit, int]:
    """The encoded split of a token file and its padding id, after checking that the ids were
    made by ``tokenizer_dir``'s tokenizer at this ``max_length``."""
    record = _record(path)
    if record is None:
        raise ValueError(f"{path}: not a token file (no {TOKENS_KEY.decode()} record); it is made by the tokenize rule")
    expected = tokenizer_fingerprint(tokenizer_dir)
    if record["tokenizer"] != expected:
        raise ValueError(
            f"{path}: its ids were made by another tokenizer (sha256 {record['tokenizer'][:12]}) than the one in "
            f"{tokenizer_dir} ({expected[:12]}); delete the token files (or run snakemake with "
            "--forcerun tokenize) so that they are made again with this model's tokenizer"
        )
    if record["max_length"] != max_length:
        raise ValueError(
            f"{path}: ids truncated at max_length {record['max_length']}, the job asks for {max_length}; "
            "tokenise again (snakemake reruns the tokenize rule when max_length changes)"
        )
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    bad = [label for label in labels if not 0 <= label < num_labels]
    if bad:
        raise ValueError(f"{path}: {len(bad)} labels outside 0..{num_labels - 1}, e.g. {bad[0]!r}")
    if not labels:
        raise ValueError(f"{path}: no rows")
    return EncodedSplit(table.column("input_ids").to_pylist(), labels), record["pad_token_id"]
