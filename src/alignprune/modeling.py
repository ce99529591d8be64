"""Loading and saving models, choosing prunable weights, measuring sparsity."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import code_version
from .io import atomic_path, read_json, write_json

MASKS_FILE = "masks.safetensors"
MOVEMENT_FILE = "movement.safetensors"
SPARSITY_FILE = "sparsity.json"
TRAINING_FILE = "training.json"


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_classifier(model_dir: str | Path, num_labels: int | None = None):
    """A sequence classifier from a save_pretrained folder (safetensors only).

    From the pretrained (masked-LM) folder pass ``num_labels``: the
    classification head is then newly initialised from torch's RNG, so seed first.
    """
    from transformers import AutoModelForSequenceClassification

    kwargs = {"use_safetensors": True}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    return AutoModelForSequenceClassification.from_pretrained(str(model_dir), **kwargs)


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def prunable_names(model: torch.nn.Module, include: list[str], exclude: list[str] = ()) -> list[str]:
    """Parameter names matched by any ``include`` regex and by no ``exclude`` regex
    (the config's ``prunable`` section: ``prunable_names(model, **config["prunable"])``)."""
    return match_prunable([name for name, _ in model.named_parameters()], include, exclude)


def match_prunable(names: list[str], include: list[str], exclude: list[str] = ()) -> list[str]:
    """``names`` (a model's parameters, in its order) matched by any ``include`` regex and by no
    ``exclude`` regex; a clear error when none is."""
    inc = [re.compile(p) for p in include]
    exc = [re.compile(p) for p in exclude]
    matched = [name for name in names if any(p.search(name) for p in inc) and not any(p.search(name) for p in exc)]
    if not matched:
        # one line per kind of weight: layer numbers folded into N
        shapes = dict.fromkeys(re.sub(r"\.\d+\.", ".N.", n) for n in names)
        raise ValueError(
            f"config prunable: include {include} (exclude {list(exclude)}) matches no parameter of the model; "
            "fix the regular expressions in config.yaml. The model's parameters are:\n  "
            + "\n  ".join(shapes)
        )
    return matched


def _natural(name: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split(".")]


def tensor_files(model_dir: str | Path) -> dict[str, str]:
    """Tensor name -> the safetensors file of a save_pretrained folder that holds it (read from
    the shard index, or the single file's header: no tensor is loaded)."""
    from safetensors import safe_open

    folder = Path(model_dir)
    index = folder / "model.safetensors.index.json"
    if index.exists():  # a sharded checkpoint: name -> shard file
        return read_json(index)["weight_map"]
    with safe_open(folder / "model.safetensors", framework="pt") as f:
        return dict.fromkeys(f.keys(), "model.safetensors")


def load_prunable_weights(model_dir: str | Path, include: list[str], exclude: list[str] = ()) -> dict[str, torch.Tensor]:
    """The prunable weights of a save_pretrained folder, read from its safetensors file (or the
    shards its index names) alone. Building the model to read them (load_classifier) costs the
    import of transformers and a random initialisation of every weight: most of a job that only
    compares weights (the weight alignment: 4.4 s a job on the demo's model, XLM-R base's 278M
    weights initialised twice)."""
    files = tensor_files(model_dir)
    # the file lists its tensors by name; numbers compared as numbers keep the layers in order
    # (layer 10 after layer 9), within a layer the names are alphabetical
    return load_weights(model_dir, match_prunable(sorted(files, key=_natural), include, exclude), files)


def load_weights(model_dir: str | Path, names: list[str], files: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """The tensors ``names`` of a save_pretrained folder, in that order, read from the safetensors
    files that hold them (``files``: tensor_files of the folder, if already read)."""
    from safetensors import safe_open

    folder = Path(model_dir)
    files = files or tensor_files(folder)
    weights = {}
    for shard in dict.fromkeys(files[name] for name in names):
        with safe_open(folder / shard, framework="pt") as f:
            weights.update({name: f.get_tensor(name) for name in names if files[name] == shard})
    return {name: weights[name] for name in names}


def check_max_length(model: torch.nn.Module, max_length: int) -> None:
    """Refuse a max_length beyond the model's position embeddings (the config check may not know the model)."""
    from .config_check import max_length_of

    limit = max_length_of(model.config.to_dict())
    if limit is not None and max_length > limit:
        raise ValueError(f"config max_length = {max_length}: longer than this model reads; at most {limit}")


def measure_sparsity(model: torch.nn.Module, names: list[str]) -> dict:
    """Fraction of exactly-zero entries among the prunable weights and among all weights."""
    params = dict(model.named_parameters())
    zeros = sum(int((params[n] == 0).sum()) for n in names)
    prunable = sum(params[n].numel() for n in names)
    total = sum(p.numel() for p in model.parameters())
    return {
        "zeros_prunable": zeros,
        "n_prunable": prunable,
        "n_total": total,
        "sparsity_prunable": zeros / prunable,
        "sparsity_all": zeros / total,
    }


def save_model(
    model: torch.nn.Module,
    out_dir: str | Path,
    *,
    masks: dict[str, torch.Tensor] | None = None,
    tensors: dict[str, dict[str, torch.Tensor]] | None = None,
    reports: dict[str, dict] | None = None,
    parents: tuple = (),
    code=(),
) -> None:
    """save_pretrained (safetensors) plus masks, other tensors (file name -> tensors), JSON
    reports and the code that made it (with that of the ``parents`` folders it started from and
    ``code``, the digests of resumed runs: alignprune.code_version), renamed into place at the end."""
    with atomic_path(out_dir, directory=True) as tmp:
        model.save_pretrained(tmp)
        code_version.write_record(tmp, *parents, extra=code)
        for filename, group in {**({MASKS_FILE: masks} if masks is not None else {}), **(tensors or {})}.items():
            save_file({n: t.contiguous().cpu() for n, t in group.items()}, tmp / filename)
        for filename, data in (reports or {}).items():
            write_json(tmp / filename, data)


def load_masks(model_dir: str | Path) -> dict[str, torch.Tensor] | None:
    path = Path(model_dir) / MASKS_FILE
    return load_file(path) if path.exists() else None
