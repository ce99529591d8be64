"""Which version of this package's code made a result, recorded beside every model and in every
evaluation, so that results made by different code can be told apart.

Snakemake reruns a job when its rule's script changes, not when a module of this package does
(README, rerunning), so after a code change the old results stay and look current. Each model
folder the workflow writes therefore carries ``code.json``: the digests of the code of every job
that made it (the download or the demo's testbed, fine-tuning, each pruning rung, and any run a
job resumed from a checkpoint); each evaluation adds its own and writes them, joined by "+", as
its ``code`` field, which the inputs table groups by. A folder or checkpoint written before
these records were kept counts as the version ``unrecorded``.

The digest is a SHA-256 of every ``.py`` file of the package (names and bytes; hidden files,
such as editors' lock files, left out), taken when this module is first imported, i.e. when a
job starts: any edit, a comment included, gives a new one, so it says which source made a
number, not whether the number would change. ``python -m alignprune.code_version`` prints the
current one, to find the commit that made a result. (Written here: neither Snakemake nor the
Hugging Face libraries record the version of the code that imported them.)
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from .io import atomic_path

CODE_FILE = "code.json"
PACKAGE = Path(__file__).resolve().parent
UNRECORDED = "unrecorded"  # a folder, checkpoint or evaluation from before code was recorded
# Subpackages that make no result: an edit of the benchmarks must not mark results as of other code.
NOT_RESULTS = ("bench",)


@functools.lru_cache(maxsize=None)
def package_digest(root: Path = PACKAGE) -> str:
    """The first 12 hex digits of a SHA-256 over every ``.py`` file under ``root`` (relative
    path and bytes, in sorted order), hidden files and folders and NOT_RESULTS left out."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if relative.parts[0] in NOT_RESULTS:
            continue
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


CURRENT = package_digest()  # the source this job imported, before any later edit of it


def recorded(model_dir) -> list[str]:
    """The digests in ``model_dir``'s ``code.json``; ``[UNRECORDED]`` without one."""
    file = Path(model_dir) / CODE_FILE
    return json.loads(file.read_text())["code"] if file.exists() else [UNRECORDED]


def lineage(*model_dirs, extra=()) -> list[str]:
    """This job's digest with those recorded in ``model_dirs`` and ``extra`` (e.g. a resumed
    checkpoint's), sorted and without repeats."""
    digests = {CURRENT, *extra}
    for folder in model_dirs:
        if folder is not None:
            digests.update(recorded(folder))
    return sorted(digests)


def write_record(model_dir, *parents, extra=()) -> None:
    """``code.json`` in ``model_dir``: this job's code with that of the models it started from."""
    with atomic_path(Path(model_dir) / CODE_FILE) as tmp:
        tmp.write_text(json.dumps({"code": lineage(*parents, extra=extra)}, indent=2) + "\n")


def evaluation_field(*model_dirs, extra=()) -> dict:
    """A measurement's ``code`` field: the lineage of the models it read, the measuring job's
    code and ``extra`` (e.g. the code that made its token files), "+"-joined."""
    return {"code": "+".join(lineage(*model_dirs, extra=extra))}


if __name__ == "__main__":
    print(CURRENT)
