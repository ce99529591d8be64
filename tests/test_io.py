"""Atomic outputs: complete or absent, and readable as the umask says (a shared project folder)."""

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from alignprune.io import atomic_path


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    def set_umask(value):
        previous.append(os.umask(value))
    previous = []
    yield set_umask
    os.umask(previous[0])


@pytest.mark.parametrize("mask, folder, file", [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664), (0o077, 0o700, 0o600)])
def test_a_model_folder_and_its_safetensors_file_get_the_modes_of_the_umask(tmp_path, umask, mask, folder, file):
    umask(mask)
    final = tmp_path / "results" / "model"
    with atomic_path(final, directory=True) as tmp:
        (tmp / "sub").mkdir()
        save_file({"w": torch.zeros(2)}, tmp / "model.safetensors")  # safetensors alone writes 0600
        (tmp / "sub" / "config.json").write_text("{}")
    assert mode(final) == folder and mode(final / "sub") == folder
    assert mode(final / "model.safetensors") == file and mode(final / "sub" / "config.json") == file
    assert [p.name for p in tmp_path.joinpath("results").iterdir()] == ["model"]  # no temporary left


def test_a_single_file_output_gets_the_mode_of_the_umask(tmp_path, umask):
    umask(0o022)
    with atomic_path(tmp_path / "weights.safetensors") as tmp:
        save_file({"w": torch.zeros(2)}, tmp)
    assert mode(tmp_path / "weights.safetensors") == 0o644


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "model", directory=True) as tmp:
        (tmp / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_model_folder_keeps_the_setgid_bit_a_shared_groups_folder_passes_on(tmp_path, umask):
    umask(0o002)
    shared = tmp_path / "project"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    with atomic_path(shared / "model", directory=True) as tmp:
        (tmp / "config.json").write_text("{}")
    assert mode(shared / "model") == 0o2775 == mode(shared)  # as a plain mkdir there gives
