from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

# the study's prunable weights (include and exclude regexes), written once: in config.yaml
PRUNABLE = yaml.safe_load((ROOT / "config.yaml").read_text())["prunable"]


def tiny_classifier(num_labels: int = 3, seed: int = 0, vocab_size: int = 60):
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        type_vocab_size=1,
        num_labels=num_labels,
    )
    return XLMRobertaForSequenceClassification(config)


def tiny_testbed(model_dir, files: dict, *, sizes: dict, pretrain_steps: int = 20, pretrain_batch_size: int = 16,
                 max_length: int = 32) -> dict:
    """Build a tiny testbed world (English and an SOV German, 2 layers of width 32): its pretrained
    model in ``model_dir`` and the data files ``files`` names ((task, lang, split) -> path).
    Returns the token files the jobs read, as the tokenize rule makes them, by the same keys
    (``{stem}.tokens.parquet`` beside each data file)."""
    from alignprune import testbed as tb

    settings = tb.TestbedSettings(
        seed=1, languages=[tb.LanguageSpec("en"), tb.LanguageSpec("de", order="SOV")],
        hidden_size=32, layers=2, heads=2, pretrain_steps=pretrain_steps, pretrain_batch_size=pretrain_batch_size,
        sizes=sizes,
    )
    tb.build_testbed(settings, model_dir, files, progress=False)
    return tokenized(model_dir, files, max_length=max_length)


def tokenized(model_dir, files: dict, *, max_length: int = 32) -> dict:
    """Token files of data files ((task, lang, split) -> path), made with ``model_dir``'s tokenizer."""
    from alignprune.tokens import tokenize_files

    def beside(key):
        return Path(files[key]).with_name(f"{Path(files[key]).stem}.tokens.parquet")

    return tokenize_files(files, model_dir, beside, max_length=max_length)


@pytest.fixture
def prunable():
    return PRUNABLE
