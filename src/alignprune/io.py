"""Atomic writes: a declared output is either complete or absent, never half-written."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(final: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it onto ``final`` on success.

    On an exception the temporary file or folder is removed and ``final`` is
    left untouched, so Snakemake never sees a half-written output.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp if directory else tmp / final.name
    try:
        yield target
        _permissions_from_umask(target)
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()  # Snakemake may pre-create an empty output folder
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _permissions_from_umask(path: Path) -> None:
    """Give ``path`` (and what a folder holds) the modes a plain ``open``/``mkdir`` would.

    ``mkdtemp`` makes its folder 0700 and safetensors writes its files 0600, so without this a
    model written into a project folder shared with a group would be readable by its owner alone.
    """
    umask = _umask()
    for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
        if item.is_symlink():
            continue
        if item.is_dir():  # keep setgid, which a folder inherits from a shared group's folder
            os.chmod(item, 0o777 & ~umask | os.stat(item).st_mode & stat.S_ISGID)
        else:
            os.chmod(item, 0o666 & ~umask)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (os.umask can only read
    it by setting it, for a moment, for every thread of the process)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())
