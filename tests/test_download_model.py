"""The model download code on a folder in the Hub's own layout (what a Hub snapshot holds)."""

import sentencepiece as spm
import torch
from safetensors.torch import load_file

from alignprune import jobs
from alignprune.modeling import load_classifier, load_tokenizer


def hub_snapshot(folder):
    """config.json + model.safetensors + sentencepiece.bpe.model, as in FacebookAI/xlm-roberta-base."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    folder.mkdir()
    corpus = folder.parent / "corpus.txt"
    corpus.write_text("\n".join(f"der hund {i} sieht die katze" for i in range(200)) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "sentencepiece.bpe"), vocab_size=40,
        model_type="unigram", hard_vocab_limit=False, minloglevel=2,
    )
    (folder / "sentencepiece.bpe.vocab").unlink()
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40,
    )
    XLMRobertaForMaskedLM(config).save_pretrained(folder)
    return folder


def test_download_model_writes_safetensors_and_a_working_tokenizer(tmp_path):
    snapshot = hub_snapshot(tmp_path / "snapshot")
    out = tmp_path / "resources/models/org--model"
    jobs.download_model(str(snapshot), out)

    files = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    saved = load_file(out / "model.safetensors")
    original = load_file(snapshot / "model.safetensors")
    shared = set(saved) & set(original)
    assert shared and all(torch.equal(saved[k], original[k]) for k in shared)

    tokenizer = load_tokenizer(out)
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer"
    ids = tokenizer("der hund", "die katze")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids.count(tokenizer.sep_token_id) == 3
    assert tokenizer.unk_token_id not in ids
    classifier = load_classifier(out, num_labels=3)
    assert classifier.config.num_labels == 3
