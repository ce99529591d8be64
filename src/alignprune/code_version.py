"""Which version of this package's code made a result, recorded beside every model and in every
evaluation, so that results made by different code can be told apart.

Snakemake reruns a job when its rule's script changes, not when a module of this package does
(README, rerunning), so after a code change the old results stay and look current. Each model
folder therefore carries ``code.json``: the digests of the code of every job that made it
(fine-tuning, each pruning rung, and the testbed's pretraining in the demo); each evaluation adds
its own and writes them, joined by "+", as its ``code`` field, which the inputs table groups by.
One digest in one row: every number came from one version of the code.

The digest is a SHA-256 of the bytes of every ``.py`` file of the package (names and contents),
so any edit, a comment included, gives a new one: it says which source made a number, not
whether the number would change. ``python -m alignprune.code_version`` prints the current one,
to find the commit that made a result. (Written here: neither Snakemake nor the Hugging Face
libraries record the version of the code that imported them.)
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from .io import atomic_path

CODE_FILE = "code.json"
PACKAGE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def package_digest(root: Path = PACKAGE) -> str:
    """The first 12 hex digits of a SHA-256 over every ``.py`` file under ``root`` (relative
    path and bytes, in sorted order)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def lineage(*model_dirs) -> list[str]:
    """The code digests recorded in ``model_dirs`` (those that have a record) and the current
    one, sorted and without repeats."""
    digests = {package_digest()}
    for folder in model_dirs:
        if folder is not None and (Path(folder) / CODE_FILE).exists():
            digests.update(json.loads((Path(folder) / CODE_FILE).read_text())["code"])
    return sorted(digests)


def write_record(model_dir, *parents) -> None:
    """``code.json`` in ``model_dir``: this job's code with that of the models it started from."""
    with atomic_path(Path(model_dir) / CODE_FILE) as tmp:
        tmp.write_text(json.dumps({"code": lineage(*parents)}, indent=2) + "\n")


def evaluation_field(model_dir) -> dict:
    """An evaluation's ``code`` field: the model's lineage and the evaluating code, "+"-joined."""
    return {"code": "+".join(lineage(model_dir))}


if __name__ == "__main__":
    print(package_digest())
