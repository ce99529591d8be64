"""Reaching the Hugging Face Hub: fail at once, with the ways to run without it."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Iterator

OFFLINE_HELP = (
    "Without network: (1) data: set tasks.<task>.source to {hub: null, local: <folder>} with the "
    "dataset repository's files ({lang}/{split}-*.parquet, e.g. a clone made elsewhere); model: set "
    "model: to a folder written by save_pretrained; (2) fill the Hugging Face cache on a machine with "
    "network (huggingface-cli download <id>, --repo-type dataset for data), copy HF_HOME here and run "
    "with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1; (3) try the offline demo: snakemake --profile profiles/demo."
)


class HubUnreachable(ConnectionError):
    """The Hub cannot be reached (or, offline, the cache lacks the files)."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


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


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn the libraries' connection and cache-miss errors into one message with the ways out."""
    try:
        yield
    except OSError as err:  # ConnectionError included
        if isinstance(err, FileNotFoundError) and not offline():
            raise
        state = "offline (HF_HUB_OFFLINE) and not in the cache" if offline() else "not reachable"
        raise HubUnreachable(f"{what}: {state} ({type(err).__name__}: {str(err)[:300]}). {OFFLINE_HELP}") from err
