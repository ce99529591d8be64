"""Resumable training: everything a training run needs to go on exactly where it stopped.

A checkpoint is a folder ``step-{step:08d}`` inside the job's checkpoint folder (outside the
rule's outputs, so Snakemake's --rerun-incomplete does not delete it). It holds the model
weights, the masks and movement scores (safetensors), the optimizer, scheduler and RNG
states (``state.pt``, written by this job and read back with ``weights_only=True``) and the
loop's counters and history (``state.json``). It is written under a temporary name and
renamed, so a kill mid-write leaves the previous checkpoint as the latest. The best model so
far is kept once per new best (``best-{step}.safetensors``), not in every checkpoint.

A checkpoint written for other settings or other inputs (the config changed, an upstream
job reran) is not resumed: its ``identity`` differs, and it is removed.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from . import code_version
from .io import atomic_path

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def file_identity(*paths: str | Path) -> dict:
    """Size and modification time of each input file (a changed input invalidates checkpoints)."""
    identity = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            stat = f.stat()
            identity[str(f)] = [stat.st_size, stat.st_mtime_ns]
    return identity


@dataclass
class Checkpointer:
    """Where and how often one training run checkpoints.

    ``identity``: JSON-able description of the run (settings, method, input files); a saved
    checkpoint is resumed only if it was written with an equal identity.
    ``save_at_end``: also checkpoint the finished run (for jobs that train in several phases, so
    that a kill in a later phase does not repeat this one).
    """

    folder: Path
    every: int
    identity: dict = field(default_factory=dict)
    save_at_end: bool = False
    # the code of the runs this one resumed (alignprune.code_version): the model it ends with is
    # theirs too. Not part of the identity: an edit must not throw the checkpoints away.
    code: set[str] = field(default_factory=set)
    # The best file this run wrote or restored. One of the same name on disk may be a killed
    # run's (killed after it, before its checkpoint): that run's weights at that step, which on
    # a GPU need not equal this run's, so it is written again rather than trusted.
    _best_written: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.identity = json.loads(json.dumps(self.identity, sort_keys=True, default=str))

    def due(self, step: int, max_steps: int) -> bool:
        # the last step is saved only when a later phase of the job may be killed
        if step == max_steps:
            return self.save_at_end
        return step % self.every == 0

    def latest(self) -> Path | None:
        """The newest complete checkpoint of this run, or None (a stale one is removed)."""
        folders = sorted(self.folder.glob("step-*[0-9]")) if self.folder.is_dir() else []
        # a folder without its state file is one a kill left half-deleted (remove, or the job's
        # clean-up after its outputs were saved): not a checkpoint, and in the way of the next save
        found = [p for p in folders if (p / STATE_FILE).is_file()]
        for torn in set(folders) - set(found):
            log.warning("%s has no %s (left half-deleted): removed", torn, STATE_FILE)
            shutil.rmtree(torn, ignore_errors=True)
        if not found:
            return None
        saved = json.loads((found[-1] / STATE_FILE).read_text())
        if saved["identity"] != self.identity:
            log.warning("checkpoints in %s were written for other settings or inputs: starting over", self.folder)
            self.remove()
            return None
        return found[-1]

    def save(self, step: int, *, model, optimizer, scheduler, generators: dict[str, torch.Generator],
             tensors: dict[str, dict[str, torch.Tensor]], loop: dict, best_state: dict | None) -> Path:
        """Write checkpoint ``step``, then remove older ones. ``loop``: JSON-able loop state."""
        best_file = None
        if best_state is not None:
            best_file = f"best-{loop['best']['step']:08d}.safetensors"
            if best_file != self._best_written:  # once per new best
                with atomic_path(self.folder / best_file) as tmp:
                    save_file(best_state, tmp)
                self._best_written = best_file
        final = self.folder / f"step-{step:08d}"
        with atomic_path(final, directory=True) as tmp:
            save_model(model, str(tmp / "model.safetensors"))
            for name, group in tensors.items():
                save_file({n: t.detach().contiguous().cpu() for n, t in group.items()}, tmp / f"{name}.safetensors")
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "generators": {name: g.get_state() for name, g in generators.items()},
                },
                tmp / "state.pt",
            )
            state = {"identity": self.identity, "step": step, "best_file": best_file, "loop": loop,
                     "code": code_version.lineage(extra=self.code)}
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
        for old in self.folder.glob("step-*[0-9]"):
            if old != final:
                delete(old)
        for old in self.folder.glob("best-*.safetensors"):
            if old.name != best_file:
                old.unlink()
        return final

    def restore(self, path: Path, *, model, optimizer, scheduler, generators: dict[str, torch.Generator],
                tensors: dict[str, dict[str, torch.Tensor]], device: torch.device) -> tuple[dict, dict | None]:
        """Load checkpoint ``path`` into the given objects (tensors in place); return (loop, best_state)."""
        state = json.loads((path / STATE_FILE).read_text())
        self.code.update(state.get("code", [code_version.UNRECORDED]))
        load_model(model, str(path / "model.safetensors"), device=str(device))
        for name, group in tensors.items():
            for key, value in load_file(path / f"{name}.safetensors").items():
                group[key].copy_(value)
        saved = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        for name, generator in generators.items():
            generator.set_state(saved["generators"][name])
        best_state = load_file(self.folder / state["best_file"]) if state["best_file"] else None
        self._best_written = state["best_file"]
        log.info("resumed from %s (step %d)", path, state["step"])
        return state["loop"], best_state

    def remove(self) -> None:
        delete(self.folder)


def delete(folder: Path) -> None:
    """Remove checkpoints: their state files first, so that a kill in the middle (rmtree deletes
    in the file system's order) leaves step folders that ``latest`` passes over, never one that
    names weights or a best file already gone."""
    folder = Path(folder)
    for state in folder.rglob(STATE_FILE) if folder.is_dir() else []:
        state.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
