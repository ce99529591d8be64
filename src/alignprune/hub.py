"""Reaching the Hugging Face Hub: fail at once, with the ways to run without it; and where the
model and data came from (the Hub commit a revision resolved to, a local folder's file digests, or
the testbed's seed), recorded beside the downloaded files and read back into every evaluation."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .io import atomic_path

OFFLINE_HELP = (
    "Without network: (1) data: set tasks.<task>.source to {hub: null, local: <folder>} with the "
    "dataset repository's files ({lang}/{split}-*.parquet, e.g. a clone made elsewhere); model: set "
    "model: to a folder written by save_pretrained; (2) fill the Hugging Face cache on a machine with "
    "network (hf download <id> --revision <revision>, with --repo-type dataset for data), copy HF_HOME "
    "here and run with HF_HUB_OFFLINE=1; (3) try the offline demo: snakemake --profile profiles/demo."
)


class HubUnreachable(ConnectionError):
    """The Hub cannot be reached (or, offline, the cache lacks the files)."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    """Offline as huggingface_hub reads it (its constants.HF_HUB_OFFLINE: the value of
    HF_HUB_OFFLINE if set, else of TRANSFORMERS_OFFLINE, true), read when asked rather than at
    import as the library does (HF_HUB_OFFLINE=0 wins over TRANSFORMERS_OFFLINE=1 there too)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")


def check_reachable(what: str, timeout: float = 10.0) -> None:
    """One request to the Hub (through any configured proxy) before a download starts: the
    libraries' own retries would otherwise take minutes per job to give up."""
    if offline():
        return  # the cache is used; a miss is reported by `hub_errors`
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint(), method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # an HTTP answer: the Hub is reachable
    except (OSError, ValueError) as err:
        raise HubUnreachable(f"cannot reach the Hugging Face Hub at {endpoint()} to download {what} ({err}). {OFFLINE_HELP}") from None


@contextmanager
def downloading(what: str, *, from_hub: bool) -> Iterator[None]:
    """Around a download: from the Hub, check it answers first and report its errors with the
    ways out; from a local folder, nothing (its own errors name the files)."""
    if not from_hub:
        yield
        return
    check_reachable(what)
    with hub_errors(what):
        yield


def _network_errors() -> tuple[type[BaseException], ...]:
    """What the Hub libraries raise when the network, not the machine, failed: connection errors,
    timeouts, an HTTP error answer, and the transport errors of huggingface_hub's HTTP client
    (httpx2's, which are not OSErrors)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: tuple[type[BaseException], ...] = (
        ConnectionError, TimeoutError, urllib.error.URLError, HfHubHTTPError,
    )
    try:
        import httpx2
    except ImportError:  # another huggingface_hub release, another client
        return errors
    return (*errors, httpx2.TransportError)


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn the libraries' connection and, offline, cache-miss errors into one message with the
    ways out. Any other error (a full disk, a read-only cache) is the machine's: raised as itself."""
    try:
        yield
    except HubUnreachable:
        raise  # already says what is missing and how to get it
    except Exception as err:
        cache_miss = isinstance(err, FileNotFoundError) and offline()
        if not cache_miss and not isinstance(err, _network_errors()):
            raise
        state = "offline (HF_HUB_OFFLINE) and not in the cache" if offline() else "not reachable"
        raise HubUnreachable(f"{what}: {state} ({type(err).__name__}: {str(err)[:300]}). {OFFLINE_HELP}") from err


# --- Provenance: what the downloaded files are ------------------------------------------------

#: Beside the model's files (save_pretrained layout) in its resources folder.
PROVENANCE_FILE = "provenance.json"
#: Key of the same record in a data file's parquet metadata: it travels with the rows it describes.
PARQUET_KEY = b"alignprune.provenance"
#: Files of a model repository that a save_pretrained folder is made from (safetensors weights
#: only: pickled checkpoints are neither fetched nor loaded).
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt"]


def download_command(repo_id: str, revision: str, repo_type: str = "model",
                     include: list[str] | str | None = None) -> str:
    """The Hub CLI command (huggingface_hub's `hf`) that fills the cache with what a job needs
    (only those files: a model repository also holds other frameworks' weights)."""
    kind = " --repo-type dataset" if repo_type == "dataset" else ""
    patterns = [include] if isinstance(include, str) else include or []
    files = "".join(f" --include '{pattern}'" for pattern in patterns)
    return f"hf download {repo_id}{kind} --revision {revision}{files}"


def snapshot(
    repo_id: str, revision: str, *, repo_type: str = "model", allow_patterns: list[str] | str | None = None
) -> tuple[Path, dict]:
    """The files of ``repo_id`` at ``revision`` (a branch, tag or commit), through the Hugging Face
    cache: (the snapshot folder, its provenance record with the commit the revision resolved to).
    Offline (HF_HUB_OFFLINE=1), the cache alone resolves the revision."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    fill = download_command(repo_id, revision, repo_type, allow_patterns)
    try:
        folder = Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, allow_patterns=allow_patterns))
    except RevisionNotFoundError:
        raise ValueError(
            f"the {repo_type} repository {repo_id} has no revision {revision!r}: set its revision in the "
            "config to one of its branches, tags or commits (main: the newest)"
        ) from None
    except RepositoryNotFoundError:
        raise ValueError(f"no {repo_type} repository {repo_id} on {endpoint()} (or it is private): check the id") from None
    except IncompleteSnapshotError as err:  # the commit is cached, some files asked for are not
        why = "HF_HUB_OFFLINE is set" if offline() else "the Hub did not answer"
        raise HubUnreachable(
            f"{repo_id} (a {repo_type}) at revision {revision!r}: the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) holds its commit {Path(err.snapshot_path).name} but not every file "
            f"of {allow_patterns} in it, and {why}. "
            f"Fill them on a machine with network: {fill}, then copy its HF_HOME here. {OFFLINE_HELP}"
        ) from None
    except LocalEntryNotFoundError as err:
        if not offline():  # the Hub stopped answering, and the cache cannot stand in
            raise HubUnreachable(
                f"{repo_id} (a {repo_type}) at revision {revision!r}: the Hub did not answer and the cache "
                f"lacks it ({str(err)[:200]}). Retry, or fill the cache elsewhere: {fill}. {OFFLINE_HELP}"
            ) from None
        raise HubUnreachable(
            f"{repo_id} (a {repo_type}) at revision {revision!r} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) "
            f"and HF_HUB_OFFLINE is set. Fill the cache on a machine with network: {fill}, then copy its "
            f"HF_HOME here; or unset HF_HUB_OFFLINE to download. {OFFLINE_HELP}"
        ) from None
    return folder, {"source": "hub", "repo": repo_id, "revision": revision, "commit": folder.name}


def local_record(folder: str | Path, files) -> dict:
    """A local folder: its path and one SHA-256 over the files read (names and bytes), so the
    same bytes can be recognised later. Paths are made absolute without following links: a
    file may be a link out of the folder (a Hugging Face cache snapshot's point into blobs/)."""
    folder = Path(os.path.abspath(folder))
    digest = hashlib.sha256()
    for path in sorted(Path(os.path.abspath(f)) for f in files):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return {"source": "local", "path": str(folder), "sha256": digest.hexdigest()}


def testbed_record(seed: int) -> dict:
    return {"source": "testbed", "seed": int(seed)}


def write_model_record(model_dir: str | Path, record: dict) -> None:
    with atomic_path(Path(model_dir) / PROVENANCE_FILE) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2) + "\n")


def read_record(path: str | Path) -> dict | None:
    """The record of a model folder or a data file; None if it has none (written before records were)."""
    path = Path(path)
    if path.is_dir():
        file = path / PROVENANCE_FILE
        return json.loads(file.read_text()) if file.exists() else None
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[PARQUET_KEY]) if PARQUET_KEY in metadata else None


def _flat(prefix: str, record: dict | None) -> dict:
    """One record as three columns: where from, which revision was asked for, which bytes came."""
    record = record or {}
    source = record.get("source")
    where = {"hub": record.get("repo"), "local": record.get("path"), "testbed": f"testbed (seed {record.get('seed')})"}
    commit = record.get("commit") if source == "hub" else (f"sha256:{record['sha256']}" if source == "local" else None)
    return {
        f"{prefix}_source": where.get(source),
        f"{prefix}_revision": record.get("revision"),
        f"{prefix}_commit": commit,
    }


def provenance(model_dir: str | Path, data_file: str | Path | None = None) -> dict:
    """Flat fields for an evaluation's JSON (and so every row of the tables): the pretrained
    model's and the data file's source, requested revision and resolved commit (or digest)."""
    fields = _flat("model", read_record(model_dir))
    if data_file is not None:
        fields.update(data_provenance(data_file))
    return fields


def data_provenance(data_file: str | Path) -> dict:
    """The data file's three fields of ``provenance`` alone (a token file carries its data file's)."""
    return _flat("data", read_record(data_file))
