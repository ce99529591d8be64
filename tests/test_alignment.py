"""Alignment measures: CKA, unit cosines, paired cosines, the parallel check, pooled states."""

import json

import pandas as pd
import pytest
import torch

from alignprune import alignment, code_version
from alignprune.data import EncodedSplit
from alignprune.model_key import ModelKey
from conftest import tiny_testbed, tokenized


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


def _gram_cka(x, y, debiased):
    """CKA from the n x n Gram matrices, straight from the definitions (an independent route)."""
    n = x.shape[0]
    k, l = x @ x.T, y @ y.T
    if not debiased:  # tr(KcLc) / sqrt(tr(KcKc) tr(LcLc)), Kc = HKH
        h = torch.eye(n, dtype=torch.float64) - 1.0 / n
        k, l = h @ k @ h, h @ l @ h
        hsic = lambda a, b: torch.trace(a @ b)  # noqa: E731
    else:  # unbiased HSIC of Song et al. (2012), eq. 5, on the uncentred kernels
        k, l = k - torch.diag(torch.diag(k)), l - torch.diag(torch.diag(l))
        one = torch.ones(n, dtype=torch.float64)

        def hsic(a, b):
            return (torch.trace(a @ b) + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
                    - 2.0 / (n - 2) * (one @ a @ b @ one)) / (n * (n - 3))
    return float(hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l)))


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_equals_the_definition_on_gram_matrices(debiased):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 7, generator=g, dtype=torch.float64) + 3.0  # uncentred on purpose
    y = x[:, :5] @ torch.randn(5, 5, generator=g, dtype=torch.float64) + torch.randn(50, 5, generator=g, dtype=torch.float64)
    expected = _gram_cka(x, y, debiased)
    assert alignment.linear_cka(x, y, debiased=debiased) == pytest.approx(expected, rel=1e-10)
    assert 0.3 < expected < 0.9  # related sets: neither end of the scale


def test_debiased_cka_of_independent_sets_is_near_zero_where_the_biased_one_is_not():
    """n = 1,000 rows, d = 768 (XLM-R base width): plain CKA of unrelated sets is d / (n + d)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1000, 768, generator=g, dtype=torch.float64)
    y = torch.randn(1000, 768, generator=g, dtype=torch.float64)
    assert alignment.linear_cka(x, y, debiased=False) == pytest.approx(768 / 1768, abs=0.01)
    assert abs(alignment.linear_cka(x, y)) < 0.05
    assert alignment.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_debiased_cka_needs_enough_rows():
    with pytest.raises(ValueError, match="at least 4 rows"):
        alignment.linear_cka(torch.randn(3, 2), torch.randn(3, 2))


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
    table = alignment.weight_alignment(dict(pruned.named_parameters()), dict(dense.named_parameters()),
                                       ["0.weight", "1.weight"])
    expected = alignment.unit_cosines(pruned[0].weight.detach(), dense[0].weight.detach()).mean()
    assert table["mean_cosine"].tolist() == pytest.approx([float(expected), 1.0])
    assert table["sparsity"].tolist() == [0.5, 0.0]
    assert table["units"].tolist() == [6, 4]


def test_kept_weights_by_hand():
    reference = torch.tensor([[3.0, 4.0, 12.0], [1.0, 2.0, 2.0], [5.0, 0.0, 1.0]])
    weight = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -2.0]])  # row 2: nothing kept
    cosine, change = alignment.kept_weight_change(weight, reference)
    # kept parts of the dense rows: (3, 4, 0) unchanged, cosine 1; (0, 0, 1) became (0, 0, -2), cosine -1;
    # the all-pruned row is left out
    assert cosine == pytest.approx(0.0)
    assert change == pytest.approx(3.0 / 26**0.5)  # |(0,0,-3)| / |(3,4,0),(0,0,1)|
    assert alignment.kept_weight_change(torch.zeros(2, 3), reference[:2]) == (pytest.approx(float("nan"), nan_ok=True),) * 2


def test_kept_weights_of_a_pruned_copy_never_retrained_are_unchanged():
    """Pruning alone lowers the whole units' cosine, never the kept weights' measures: those
    move only when retraining moves the kept weights."""
    torch.manual_seed(1)
    reference = torch.randn(6, 10)
    pruned = reference * (torch.rand(6, 10) > 0.7)
    cosine, change = alignment.kept_weight_change(pruned, reference)
    assert (cosine, change) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))
    assert float(alignment.unit_cosines(pruned, reference).mean()) < 0.8
    moved = pruned + 0.1 * torch.randn(6, 10) * (pruned != 0)
    cosine, change = alignment.kept_weight_change(moved, reference)
    assert cosine < 1 and change == pytest.approx(float((moved - pruned).norm() / pruned.norm()))


def test_kept_weights_measure_what_the_regularizers_penalize_above_their_floor():
    """The penalty above its floor (regularizers.penalty_floor; rows as units, the defaults) is the
    kept weights' change: Frobenius numel |W - M*W0|^2 / |W0|^2, cosine width x the sum over units
    of |M*W0_u| / |W0_u| x (1 - kept cosine_u), a weighted sum of what the table averages."""
    from alignprune.regularizers import alignment_penalty, penalty_floor

    torch.manual_seed(2)
    # float64: the penalty minus its floor is a small difference of two large sums
    reference = torch.randn(5, 12, dtype=torch.float64)
    mask = (torch.rand(5, 12) > 0.5).double()
    weight = (reference + 0.3 * torch.randn(5, 12, dtype=torch.float64)) * mask
    cosine, change = alignment.kept_weight_change(weight, reference)
    above = {kind: float(alignment_penalty(kind, [weight], [reference], [mask]) - penalty_floor(kind, [reference], [mask]))
             for kind in ("frobenius", "cosine")}
    kept = reference * mask
    assert above["frobenius"] == pytest.approx(60 * change**2 * float(kept.norm() ** 2 / reference.norm() ** 2), rel=1e-9)
    kept_cosines = alignment.unit_cosines(weight, kept)
    assert float(kept_cosines.mean()) == pytest.approx(cosine)
    shares = kept.norm(dim=1) / reference.norm(dim=1)
    assert above["cosine"] == pytest.approx(12 * float((shares * (1 - kept_cosines)).sum()), rel=1e-9)


def test_paired_cosine_follows_the_rows():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert alignment.paired_cosine(x, x) == pytest.approx(1.0)
    assert alignment.paired_cosine(x, -x) == pytest.approx(-1.0)
    assert alignment.paired_cosine(x, x.roll(1, 0)) == pytest.approx(0.0)


def test_paired_cosine_ignores_a_mean_vector_both_sets_share():
    """Independent rows around a common mean: uncentred cosine ~0.9, centred ~0."""
    g = torch.Generator().manual_seed(4)
    mean = 3.0 * torch.randn(1, 64, generator=g)
    x, y = torch.randn(2000, 64, generator=g) + mean, torch.randn(2000, 64, generator=g) + mean
    assert torch.nn.functional.cosine_similarity(x, y).mean() > 0.8
    assert abs(alignment.paired_cosine(x, y)) < 0.02
    # the same rows with noise: the pairing still shows
    assert alignment.paired_cosine(x, x + 0.5 * torch.randn(2000, 64, generator=g)) > 0.85


def test_representation_alignment_reports_a_shuffled_row_baseline_per_layer():
    g = torch.Generator().manual_seed(5)
    english = torch.randn(2, 400, 16, generator=g)
    other = english + 0.3 * torch.randn(2, 400, 16, generator=g)
    other[1] = torch.randn(400, 16, generator=g)  # layer 1: unrelated to English
    layers = alignment.representation_alignment(english, other, seed=0)
    permutation = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    for layer in (0, 1):
        row = layers[layer]
        assert row["cka"] == pytest.approx(alignment.linear_cka(other[layer], english[layer]))
        assert row["cka_shuffled"] == pytest.approx(alignment.linear_cka(other[layer][permutation], english[layer]))
        assert row["cosine_shuffled"] == pytest.approx(alignment.paired_cosine(other[layer][permutation], english[layer]))
        assert abs(row["cka_shuffled"]) < 0.05 and abs(row["cosine_shuffled"]) < 0.1
    assert layers[0]["cka"] > 0.85 and layers[0]["cosine"] > 0.9
    assert abs(layers[1]["cka"]) < 0.05 and abs(layers[1]["cosine"]) < 0.1


def test_parallel_check_names_the_problem():
    english = [0, 1, 2, 1]  # the labels of the rows
    assert alignment.not_parallel_reason(english, [0, 1, 2, 1], "fr") is None
    assert "3 rows, English 4" in alignment.not_parallel_reason(english, [0, 1, 2], "fr")
    assert "2 of 4 rows of fr" in alignment.not_parallel_reason(english, [1, 0, 2, 1], "fr")


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


def measure(root, lang, token_file, out, max_examples=30):
    from alignprune.stages.alignment import measure_representation_alignment

    measure_representation_alignment(
        key=ModelKey.of("xnli", 1, "magnitude_global", 0.50), split="test", lang=lang,
        reference_lang="en", model_dir=root / "model", tokenizer_dir=root / "model",
        reference_file=root / "en.tokens.parquet", token_file=token_file, out_file=out,
        max_examples=max_examples, batch_size=8, max_length=32, device=torch.device("cpu"),
    )
    return json.loads(out.read_text())


def test_english_against_itself_is_perfectly_aligned_at_every_layer(testbed):
    result = measure(testbed, "en", testbed / "en.tokens.parquet", testbed / "en.json")
    assert result["parallel"] and result["n_examples"] == 30
    assert result["code"] == code_version.CURRENT  # the testbed's and this job's: one version
    assert [layer["layer"] for layer in result["layers"]] == [0, 1, 2]  # embeddings + 2 layers
    for layer in result["layers"]:
        assert layer["cka"] == pytest.approx(1.0, abs=1e-9)
        assert layer["cosine"] == pytest.approx(1.0, abs=1e-6)
        assert layer["cka_shuffled"] < 0.5 and layer["cosine_shuffled"] < 0.5


def _states_one_by_one(root, frame):
    """Mean-pooled hidden states of each row run alone (no padding, no batching): layers x n x d."""
    from alignprune import modeling

    tokenizer = modeling.load_tokenizer(root / "model")
    model = modeling.load_classifier(root / "model").eval()
    rows = []
    with torch.no_grad():
        for a, b in zip(frame["text_a"], frame["text_b"]):
            ids = tokenizer(a, b, truncation=True, max_length=32, return_tensors="pt")["input_ids"]
            states = model(input_ids=ids, output_hidden_states=True).hidden_states
            rows.append(torch.stack([layer[0].double().mean(0) for layer in states]))
    return torch.stack(rows, dim=1)


def _centred_cosine(x, y):
    x, y = x - x.mean(0), y - y.mean(0)
    return float(((x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1))).mean())


def test_a_translation_is_measured_layer_by_layer(testbed):
    result = measure(testbed, "de", testbed / "de.tokens.parquet", testbed / "de.json", max_examples=1000)
    assert result["parallel"] and result["n_examples"] == 40  # all rows when fewer than max_examples
    assert (result["method"], result["sparsity_target"], result["language"]) == ("magnitude_global", 0.5, "de")
    # every number again from states computed row by row and the Gram-matrix definitions
    english = _states_one_by_one(testbed, pd.read_parquet(testbed / "en.parquet"))
    german = _states_one_by_one(testbed, pd.read_parquet(testbed / "de.parquet"))
    shuffled = german[:, torch.randperm(40, generator=torch.Generator().manual_seed(0))]
    assert [layer["layer"] for layer in result["layers"]] == [0, 1, 2]
    for layer in result["layers"]:
        i = layer["layer"]
        assert layer["cka"] == pytest.approx(_gram_cka(german[i], english[i], debiased=True), abs=1e-4)
        assert layer["cka_shuffled"] == pytest.approx(_gram_cka(shuffled[i], english[i], debiased=True), abs=1e-4)
        assert layer["cosine"] == pytest.approx(_centred_cosine(german[i], english[i]), abs=1e-4)
        assert layer["cosine_shuffled"] == pytest.approx(_centred_cosine(shuffled[i], english[i]), abs=1e-4)
    # the pretrained testbed links the languages: translations are closer than shuffled rows
    for layer in result["layers"][1:]:
        assert layer["cka"] > layer["cka_shuffled"] + 0.1


def test_a_test_set_that_is_not_parallel_is_reported_without_numbers(testbed):
    from alignprune.data import write_split

    shifted = pd.read_parquet(testbed / "de.parquet").iloc[1:]  # one row dropped: rows no longer pair up
    write_split(shifted, testbed / "de_shifted.parquet")
    tokens = tokenized(testbed / "model", {("xnli", "de", "test"): testbed / "de_shifted.parquet"})
    result = measure(testbed, "de", tokens[("xnli", "de", "test")], testbed / "shifted.json")
    assert result["parallel"] is False
    assert result["reason"] == "de has 39 rows, English 40: rows cannot be paired"
    assert result["layers"] == [] and result["n_examples"] == 0


def test_weight_alignment_job_against_itself_and_a_pruned_copy(testbed, tmp_path, prunable):
    from alignprune import modeling
    from alignprune.stages.alignment import measure_weight_alignment

    model = modeling.load_classifier(testbed / "model", num_labels=3)
    model.save_pretrained(tmp_path / "dense")
    names = modeling.prunable_names(model, prunable["include"], [])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in names:
                param[: param.shape[0] // 2] = 0.0  # half of the units pruned entirely: cosine 0
    model.save_pretrained(tmp_path / "pruned")
    # the dense model made by an older version, the pruned one's record missing
    (tmp_path / "dense" / code_version.CODE_FILE).write_text(json.dumps({"code": ["aaaaaaaaaaaa"]}))
    same = measure_weight_alignment(key=ModelKey.of("xnli", 1, "random", 0.50),
                                    model_dir=tmp_path / "dense", dense_dir=tmp_path / "dense",
                                    out_file=tmp_path / "same.csv", prunable=prunable)
    assert same["mean_cosine"].tolist() == pytest.approx([1.0] * len(names))
    pruned = measure_weight_alignment(key=ModelKey.of("xnli", 1, "random", 0.50),
                                      model_dir=tmp_path / "pruned", dense_dir=tmp_path / "dense",
                                      out_file=tmp_path / "pruned.csv", prunable=prunable)
    written = pd.read_csv(tmp_path / "pruned.csv")
    # every prunable matrix, layer by layer (the file's names, layers compared as numbers)
    assert sorted(written["parameter"]) == sorted(names)
    layer = written["parameter"].str.extract(r"layer\.(\d+)\.", expand=False).astype(int)
    assert layer.is_monotonic_increasing and layer.nunique() > 1
    assert written["mean_cosine"].tolist() == pytest.approx([0.5] * len(names))
    # the units left are the dense ones: the kept weights did not move
    assert written["kept_cosine"].tolist() == pytest.approx([1.0] * len(names))
    assert written["kept_change"].tolist() == pytest.approx([0.0] * len(names), abs=1e-12)
    assert written["sparsity"].tolist() == pytest.approx([0.5] * len(names))
    assert written["layer"].tolist() == layer.astype(float).tolist()
    assert set(written["method"]) == {"random"} and set(written["sparsity_target"]) == {0.5}
    assert len(pruned) == len(names)
    lineage = "+".join(sorted({"aaaaaaaaaaaa", code_version.CURRENT, code_version.UNRECORDED}))
    assert set(written["code"]) == {lineage}
    assert set(same["code"]) == {"+".join(sorted({"aaaaaaaaaaaa", code_version.CURRENT}))}
    assert written["kept_step"].isna().all()  # a folder without training.json: no kept step
    assert written[["last_step", "last_kept_cosine", "last_kept_change"]].isna().all().all()  # nor last step


def test_weight_alignment_job_reads_each_matrix_by_its_name(testbed, tmp_path, prunable):
    """The job reads the weights from the safetensors files, not through a built model: the same
    table as the models' parameters give, every matrix pruned and moved its own way (so a mix-up
    of names and tensors shows), also from a checkpoint saved in shards."""
    from alignprune import modeling
    from alignprune.stages.alignment import measure_weight_alignment

    dense = modeling.load_classifier(testbed / "model", num_labels=3)
    dense.save_pretrained(tmp_path / "dense")
    model = modeling.load_classifier(tmp_path / "dense")
    names = modeling.prunable_names(model, prunable["include"], [])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, name in enumerate(names):
            param = dict(model.named_parameters())[name]
            keep = torch.rand(param.shape, generator=generator) < 0.2 + 0.6 * i / len(names)
            param.mul_(keep).add_(keep * torch.randn(param.shape, generator=generator) * 0.01 * (i + 1))
    for folder, shard in (("pruned", "50GB"), ("sharded", "100KB")):
        modeling.save_model(model, tmp_path / folder, reports={modeling.TRAINING_FILE: {"best_step": 75}})
        if shard != "50GB":
            model.save_pretrained(tmp_path / "resaved", max_shard_size=shard)
            for file in (tmp_path / folder).glob("model*.safetensors*"):
                file.unlink()
            for file in (tmp_path / "resaved").glob("model*.safetensors*"):
                file.rename(tmp_path / folder / file.name)
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    by_model = alignment.weight_alignment(dict(model.named_parameters()), dict(dense.named_parameters()), names)
    columns = ["parameter", "units", "mean_cosine", "kept_cosine", "kept_change", "sparsity"]
    assert by_model["kept_change"].nunique() == by_model["sparsity"].nunique() == len(names)  # no two alike
    for folder in ("pruned", "sharded"):
        table = measure_weight_alignment(key=ModelKey.of("xnli", 1, "random", 0.50), model_dir=tmp_path / folder,
                                         dense_dir=tmp_path / "dense", out_file=tmp_path / f"{folder}.csv",
                                         prunable=prunable)
        expected = by_model.set_index("parameter").loc[table["parameter"]].reset_index()
        pd.testing.assert_frame_equal(table[columns].reset_index(drop=True), expected[columns])
        assert (table["kept_step"] == 75).all()  # from the model's training.json
        assert table["last_kept_change"].isna().all()  # a training.json without the last step's measures


def test_weight_alignment_job_imports_no_transformers(testbed, tmp_path, prunable):
    """A job that compares weights builds no model: transformers' import (about 2.7 s of the
    4.4 s the job took) and initialising every weight are not its cost."""
    import subprocess
    import sys

    from alignprune import modeling

    modeling.load_classifier(testbed / "model", num_labels=3).save_pretrained(tmp_path / "dense")
    script = (
        "import sys, json\n"
        "from alignprune.model_key import ModelKey\n"
        "from alignprune.stages.alignment import measure_weight_alignment\n"
        f"measure_weight_alignment(key=ModelKey.of('xnli', 1, 'random', 0.5), model_dir={str(tmp_path / 'dense')!r}, "
        f"dense_dir={str(tmp_path / 'dense')!r}, out_file={str(tmp_path / 'out.csv')!r}, prunable={prunable!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'datasets'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
    assert len(pd.read_csv(tmp_path / "out.csv")) > 0


def test_prunable_weights_read_from_the_file_in_layer_order(tmp_path):
    from safetensors.torch import save_file

    from alignprune.modeling import load_prunable_weights

    tensors = {f"enc.layer.{i}.{kind}": torch.full((2, 2), float(i)) for i in (0, 2, 10, 11) for kind in ("w", "b")}
    save_file(tensors, tmp_path / "model.safetensors")
    weights = load_prunable_weights(tmp_path, [r"\.w$"], [r"layer\.11\."])
    assert list(weights) == ["enc.layer.0.w", "enc.layer.2.w", "enc.layer.10.w"]  # not 0, 10, 2
    assert [float(t[0, 0]) for t in weights.values()] == [0.0, 2.0, 10.0]
    with pytest.raises(ValueError, match=r"(?s)matches no parameter of the model.*enc\.layer\.N\.w"):
        load_prunable_weights(tmp_path, [r"query"], [])
