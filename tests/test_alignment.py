"""Alignment measures: CKA, unit cosines, paired cosines, the parallel check, pooled states."""

import json

import pandas as pd
import pytest
import torch

from alignprune import alignment
from alignprune.data import EncodedSplit
from conftest import tiny_testbed


def test_cka_of_a_representation_with_itself_is_one():
    x = torch.randn(200, 32, generator=torch.Generator().manual_seed(0))
    assert alignment.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_rotation_and_isotropic_scale():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 24, generator=g, dtype=torch.float64)
    y = x @ torch.randn(24, 24, generator=g, dtype=torch.float64) + 0.5 * torch.randn(300, 24, generator=g, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(24, 24, generator=g, dtype=torch.float64))
    base = alignment.linear_cka(x, y)
    assert 0.0 < base < 1.0
    assert alignment.linear_cka(x @ rotation, y) == pytest.approx(base, abs=1e-10)
    assert alignment.linear_cka(x, 3.0 * y @ rotation.T) == pytest.approx(base, abs=1e-10)
    # and to a shift of the space (CKA centres the features)
    assert alignment.linear_cka(x + 5.0, y) == pytest.approx(base, abs=1e-10)


def test_cka_equals_the_definition_on_gram_matrices():
    """HSIC form: tr(KcLc) / sqrt(tr(KcKc) tr(LcLc)) with linear kernels."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(50, 7, generator=g, dtype=torch.float64), torch.randn(50, 5, generator=g, dtype=torch.float64)
    h = torch.eye(50, dtype=torch.float64) - 1.0 / 50
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    expected = torch.trace(k @ l) / torch.sqrt(torch.trace(k @ k) * torch.trace(l @ l))
    assert alignment.linear_cka(x, y) == pytest.approx(float(expected), rel=1e-10)


def test_cka_of_unrelated_representations_is_small_and_needs_the_same_rows():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    assert alignment.linear_cka(x, y) < 0.05
    with pytest.raises(ValueError, match="same examples"):
        alignment.linear_cka(x, y[:10])


def test_unit_cosines_per_row():
    weight = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 2.0], [-1.0, 0.0]])
    reference = torch.tensor([[3.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    cosines = alignment.unit_cosines(weight, reference)
    assert cosines.tolist() == pytest.approx([1.0, 0.0, 2**-0.5, -1.0])


def test_weight_alignment_of_a_pruned_copy():
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Linear(6, 4))
    pruned = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Linear(6, 4))
    pruned.load_state_dict(dense.state_dict())
    with torch.no_grad():
        pruned[0].weight[:, :4] = 0.0  # half of every row of the first matrix
    table = alignment.weight_alignment(pruned, dense, ["0.weight", "1.weight"])
    expected = alignment.unit_cosines(pruned[0].weight.detach(), dense[0].weight.detach()).mean()
    assert table["mean_cosine"].tolist() == pytest.approx([float(expected), 1.0])
    assert table["sparsity"].tolist() == [0.5, 0.0]
    assert table["units"].tolist() == [6, 4]


def test_paired_cosine_follows_the_rows():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert alignment.paired_cosine(x, x) == pytest.approx(1.0)
    assert alignment.paired_cosine(x, x.flip(0)) == pytest.approx(0.0)


def frame(labels):
    return pd.DataFrame({"text_a": ["a"] * len(labels), "text_b": ["b"] * len(labels), "label": labels})


def test_parallel_check_names_the_problem():
    english = frame([0, 1, 2, 1])
    assert alignment.not_parallel_reason(english, frame([0, 1, 2, 1]), "fr") is None
    assert "3 rows, English 4" in alignment.not_parallel_reason(english, frame([0, 1, 2]), "fr")
    assert "2 of 4 rows of fr" in alignment.not_parallel_reason(english, frame([1, 0, 2, 1]), "fr")


class TinyEncoder(torch.nn.Module):
    """Stands in for a transformers model: hidden states = embeddings, then one Linear."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.layer = torch.nn.Linear(4, 4)

    def forward(self, input_ids, attention_mask, output_hidden_states):
        first = self.embed(input_ids)
        return type("Output", (), {"hidden_states": (first, self.layer(first))})()


def test_pooled_states_average_the_real_tokens_of_each_row_in_row_order():
    torch.manual_seed(0)
    model = TinyEncoder()
    data = EncodedSplit([[1, 2, 3], [4], [5, 6]], [0, 1, 0])
    pooled = alignment.pooled_states(model, data, batch_size=2, pad_id=0, device=torch.device("cpu"))
    assert pooled.shape == (2, 3, 4)
    with torch.no_grad():
        for row, ids in enumerate(data.input_ids):
            embedded = model.embed(torch.tensor(ids))
            assert torch.allclose(pooled[0, row], embedded.mean(0), atol=1e-6)
            assert torch.allclose(pooled[1, row], model.layer(embedded).mean(0), atol=1e-6)


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    """A tiny pretrained testbed model and parallel English/German test sets."""
    root = tmp_path_factory.mktemp("alignment")
    files = {("xnli", lang, "test"): root / f"{lang}.parquet" for lang in ("en", "de")}
    tiny_testbed(root / "model", files, sizes={"train": 20, "validation": 20, "test": 40}, pretrain_steps=5, pretrain_batch_size=8)
    return root


def measure(root, lang, data_file, out, max_examples=30):
    from alignprune.jobs import measure_representation_alignment

    measure_representation_alignment(
        task="xnli", seed=1, variant="method~magnitude_global/sparsity~0.50", split="test", lang=lang,
        reference_lang="en", model_dir=root / "model", tokenizer_dir=root / "model",
        reference_file=root / "en.parquet", data_file=data_file, out_file=out,
        max_examples=max_examples, batch_size=8, max_length=32, device=torch.device("cpu"),
    )
    return json.loads(out.read_text())


def test_english_against_itself_is_perfectly_aligned_at_every_layer(testbed):
    result = measure(testbed, "en", testbed / "en.parquet", testbed / "en.json")
    assert result["parallel"] and result["n_examples"] == 30
    assert [layer["layer"] for layer in result["layers"]] == [0, 1, 2]  # embeddings + 2 layers
    for layer in result["layers"]:
        assert layer["cka"] == pytest.approx(1.0, abs=1e-9)
        assert layer["cosine"] == pytest.approx(1.0, abs=1e-6)


def test_a_translation_is_measured_layer_by_layer(testbed):
    result = measure(testbed, "de", testbed / "de.parquet", testbed / "de.json", max_examples=1000)
    assert result["parallel"] and result["n_examples"] == 40  # all rows when fewer than max_examples
    assert (result["method"], result["sparsity_target"], result["language"]) == ("magnitude_global", 0.5, "de")
    assert all(0.0 < layer["cka"] < 1.0 and -1.0 <= layer["cosine"] <= 1.0 for layer in result["layers"])


def test_a_test_set_that_is_not_parallel_is_reported_without_numbers(testbed):
    from alignprune.data import write_split

    shifted = pd.read_parquet(testbed / "de.parquet").iloc[1:]  # one row dropped: rows no longer pair up
    write_split(shifted, testbed / "de_shifted.parquet")
    result = measure(testbed, "de", testbed / "de_shifted.parquet", testbed / "shifted.json")
    assert result["parallel"] is False
    assert result["reason"] == "de has 39 rows, English 40: rows cannot be paired"
    assert result["layers"] == [] and result["n_examples"] == 0


def test_weight_alignment_job_against_itself_and_a_pruned_copy(testbed, tmp_path, prunable):
    from alignprune import modeling
    from alignprune.jobs import measure_weight_alignment

    model = modeling.load_classifier(testbed / "model", num_labels=3)
    model.save_pretrained(tmp_path / "dense")
    names = modeling.prunable_names(model, prunable["include"], [])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in names:
                param[: param.shape[0] // 2] = 0.0  # half of the units pruned entirely: cosine 0
    model.save_pretrained(tmp_path / "pruned")
    same = measure_weight_alignment(task="xnli", seed=1, variant="method~random/sparsity~0.50",
                                    model_dir=tmp_path / "dense", dense_dir=tmp_path / "dense",
                                    out_file=tmp_path / "same.csv", prunable=prunable)
    assert same["mean_cosine"].tolist() == pytest.approx([1.0] * len(names))
    pruned = measure_weight_alignment(task="xnli", seed=1, variant="method~random/sparsity~0.50",
                                      model_dir=tmp_path / "pruned", dense_dir=tmp_path / "dense",
                                      out_file=tmp_path / "pruned.csv", prunable=prunable)
    written = pd.read_csv(tmp_path / "pruned.csv")
    assert written["parameter"].tolist() == names
    assert written["mean_cosine"].tolist() == pytest.approx([0.5] * len(names))
    assert written["sparsity"].tolist() == pytest.approx([0.5] * len(names))
    assert written["layer"].tolist() == [float(name.split(".")[3]) for name in names]
    assert set(written["method"]) == {"random"} and set(written["sparsity_target"]) == {0.5}
    assert len(pruned) == len(names)
