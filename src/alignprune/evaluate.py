"""Accuracy of a classifier on one encoded split."""

from __future__ import annotations

import torch

from .batching import inference_batches
from .data import EncodedSplit


def allow_tf32(device: torch.device) -> None:
    """On a GPU, the float32 matmuls left outside bf16 autocast use TF32 tensor cores."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def uses_bf16(device: torch.device) -> bool:
    """bf16 where the GPU computes it natively (Ampere and newer): on older ones (T4, V100) torch
    emulates it, slower than float32 and less precise."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)


def autocast(device: torch.device):
    """bf16 autocast on a GPU that has it; full precision otherwise."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=uses_bf16(device))


def numerics(device: torch.device) -> dict:
    """The arithmetic a job computes in on ``device``: part of a checkpoint's identity, so that a
    run begun in bf16 on a GPU is not finished in float32 on CPU (or the reverse)."""
    return {
        "device": device.type,
        "bf16_autocast": uses_bf16(device),
        "tf32": device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
    }


@torch.inference_mode()
def predict(model, data: EncodedSplit, *, batch_size: int, pad_id: int, device: torch.device) -> list[int]:
    was_training = model.training
    model.eval()
    predictions = [0] * len(data)
    for rows, ids, attention in inference_batches(data, batch_size, pad_id):
        with autocast(device):
            logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
        for row, label in zip(rows, logits.argmax(-1).tolist()):
            predictions[row] = label
    model.train(was_training)
    return predictions


def accuracy(model, data: EncodedSplit, *, batch_size: int, pad_id: int, device: torch.device) -> dict:
    predictions = predict(model, data, batch_size=batch_size, pad_id=pad_id, device=device)
    correct = sum(int(p == y) for p, y in zip(predictions, data.labels))
    return {"accuracy": correct / len(data), "correct": correct, "n_examples": len(data)}
