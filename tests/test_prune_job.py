"""The prune-and-retrain job on a tiny testbed: every criterion, and the regularizers at work."""

import json

import pytest
import torch
from conftest import PRUNABLE, tiny_testbed
from safetensors.torch import load_file

from alignprune.regularizers import alignment_penalty
from alignprune.stages import prune as prune_stage
from alignprune.stages.common import stable_seed, train_settings
from alignprune.stages.finetune import finetune
from workflow_helpers import config_section

RETRAIN = config_section("retrain", {"learning_rate": 3e-3, "batch_size": 16, "steps": 30, "eval_every": 15,
                                     "warmup_ratio": 0.0, "weight_decay": 0.01})


def method(**values):
    """A methods entry of the config, defaults filled in."""
    return config_section("methods.*", values)


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune")
    files = {("xnli", "en", "train"): root / "train.parquet", ("xnli", "en", "validation"): root / "dev.parquet"}
    tiny_testbed(root / "pretrained", files, sizes={"train": 300, "validation": 60, "test": 60})
    finetune(
        task="xnli", seed=1, pretrained_dir=root / "pretrained", train_file=files[("xnli", "en", "train")],
        dev_file=files[("xnli", "en", "validation")], out_dir=root / "dense",
        settings=config_section("finetune", {"learning_rate": 1e-3, "batch_size": 16, "epochs": 1, "eval_every": 10,
                                             "warmup_ratio": 0.0, "weight_decay": 0.0}),
        max_length=32, prunable=PRUNABLE, device=torch.device("cpu"), progress=False,
    )
    return root, files


def prune(dense, name, method, sparsity, start=None, out=None, **schedule):
    root, files = dense
    out = out or root / f"{name}-{sparsity}"
    return prune_stage.prune_and_retrain(
        task="xnli", seed=1, method_name=name, method=method, sparsity=sparsity,
        start_dir=start or root / "dense", reference_dir=root / "dense", tokenizer_dir=root / "pretrained",
        train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")],
        out_dir=out, settings=RETRAIN, max_length=32, prunable=PRUNABLE,
        device=torch.device("cpu"), progress=False, **schedule,
    ), out


@pytest.mark.parametrize("criterion", ["random", "magnitude", "gradient", "movement", "lamp", "lookahead"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_every_criterion_reaches_its_target_along_the_ladder(dense, criterion, scope):
    spec = method(criterion=criterion, scope=scope, gradient_batches=2, score_steps=5)
    report, first = prune(dense, f"{criterion}-{scope}", spec, 0.5)
    assert report["zeros_prunable"] == pytest.approx(0.5 * report["n_prunable"], abs=len(report["layers"]))
    report, second = prune(dense, f"{criterion}-{scope}", spec, 0.8, start=first)
    assert report["zeros_prunable"] == pytest.approx(0.8 * report["n_prunable"], abs=len(report["layers"]))
    low, high = load_file(first / "masks.safetensors"), load_file(second / "masks.safetensors")
    weights = load_file(second / "model.safetensors")
    for name in low:
        assert not (high[name] & ~low[name]).any()
        assert torch.all(weights[name][~high[name]] == 0.0)
    # movement hands the scores of each retraining to the next target
    assert (second / "movement.safetensors").exists() == (criterion == "movement")


def distance_to_dense(root, model_dir, kind):
    dense = load_file(root / "dense" / "model.safetensors")
    pruned = load_file(model_dir / "model.safetensors")
    names = sorted(load_file(model_dir / "masks.safetensors"))
    return alignment_penalty(kind, [pruned[n] for n in names], [dense[n] for n in names]).item()


@pytest.mark.parametrize("kind", ["cosine", "frobenius", "l2"])
def test_regularized_retraining_stays_closer_to_the_dense_model(dense, kind):
    root, _ = dense
    plain = {"criterion": "magnitude", "scope": "global"}
    _, free = prune(dense, "plain", method(**plain), 0.6, out=root / f"plain-for-{kind}")
    _, held = prune(dense, kind, method(**plain, regularizer=kind, weight=100.0 if kind != "l2" else 1.0), 0.6)
    assert distance_to_dense(root, held, kind) < 0.9 * distance_to_dense(root, free, kind)
    history = json.loads((held / "training.json").read_text())["history"]
    assert all(entry["penalty"] > 0 for entry in history)


@pytest.mark.parametrize("criterion", ["random", "magnitude", "gradient", "movement", "lamp", "lookahead"])
def test_independent_schedule_prunes_gradually_to_the_exact_target(dense, criterion):
    root, _ = dense
    report, out = prune(
        dense, f"gradual-{criterion}", method(criterion=criterion, scope="global", gradient_batches=2), 0.8,
        schedule="independent", gradual=config_section("gradual", {"pruning_steps": 4, "pruning_fraction": 0.5}),
    )
    assert report["zeros_prunable"] == round(0.8 * report["n_prunable"])
    training = json.loads((out / "training.json").read_text())
    steps = training["pruning_steps"]
    assert [s["step"] for s in steps] == [4, 8, 11, 15]  # 4 prunings over the first half of 30 steps
    sparsities = [s["sparsity"] for s in steps]
    assert sparsities == pytest.approx([0.8 * (1 - (1 - k / 4) ** 3) for k in (1, 2, 3, 4)], abs=1e-3)
    # model selection only among checkpoints at the final sparsity
    assert training["best_step"] >= 15
    weights, masks = load_file(out / "model.safetensors"), load_file(out / "masks.safetensors")
    for name in masks:
        assert torch.all(weights[name][~masks[name]] == 0.0)


def test_independent_schedule_refuses_a_pruned_start_model(dense):
    _, first = prune(dense, "ladder-start", method(criterion="magnitude", scope="global"), 0.3)
    with pytest.raises(ValueError, match="starts from the dense model"):
        prune(dense, "bad", method(criterion="magnitude", scope="global"), 0.6, start=first,
              schedule="independent", gradual=config_section("gradual", {}))


def test_same_job_twice_gives_identical_masks_and_weights(dense):
    root, _ = dense
    spec = method(criterion="random", scope="layer")
    prune(dense, "again", spec, 0.5, out=root / "again-1")
    prune(dense, "again", spec, 0.5, out=root / "again-2")
    for filename in ("masks.safetensors", "model.safetensors"):
        assert (root / "again-1" / filename).read_bytes() == (root / "again-2" / filename).read_bytes()


def test_retraining_control_prunes_nothing_and_equals_an_unpruned_retrain(dense):
    """Criterion none: no criterion sees the weights, every rung retrains like a method's rung, and
    the result is exactly the unpruned model trained with the rung's seed."""
    from alignprune.data import encode, read_split
    from alignprune.modeling import load_classifier, load_tokenizer
    from alignprune.train import train

    root, files = dense
    control = method(criterion="none")
    report, first = prune(dense, "retrain_only", control, 0.5)
    masks, before = load_file(first / "masks.safetensors"), load_file(root / "dense/model.safetensors")
    saved = load_file(first / "model.safetensors")
    dense_zeros = sum(int((before[n] == 0).sum()) for n in masks)
    assert report["target"] == 0.5 and report["mask_sparsity"] == 0.0
    assert report["zeros_prunable"] == dense_zeros == sum(int((saved[n] == 0).sum()) for n in masks)
    assert all(bool(m.all()) for m in masks.values())
    assert all(not torch.equal(saved[n], before[n]) for n in masks)  # retrained: every matrix moved

    # an unpruned retrain: the dense model, the training loop without masks, the rung's seed
    tokenizer = load_tokenizer(root / "pretrained")
    train_data, dev_data = (encode(tokenizer, read_split(files[("xnli", "en", split)], 3), 32)
                            for split in ("train", "validation"))
    model = load_classifier(root / "dense")
    settings = train_settings(RETRAIN, max_steps=RETRAIN["steps"], seed=stable_seed("xnli", 1, "0.50"))
    train(model, train_data, dev_data, settings, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
          progress=False)
    expected = model.state_dict()
    assert saved.keys() <= expected.keys()
    assert all(torch.equal(saved[name], expected[name]) for name in saved)

    # the next rung starts from the control's model and still prunes nothing
    report, second = prune(dense, "retrain_only", control, 0.8, start=first)
    assert report["zeros_prunable"] == dense_zeros and report["mask_sparsity"] == 0.0
    # the independent schedule: retrained from dense, nothing pruned along the cubic schedule
    report, _ = prune(dense, "retrain_only", control, 0.8, out=root / "control-independent", schedule="independent",
                      gradual=config_section("gradual", {"pruning_steps": 4, "pruning_fraction": 0.5}))
    assert report["zeros_prunable"] == dense_zeros


def test_retraining_control_refuses_a_pruned_start_and_a_regularizer(dense):
    _, pruned = prune(dense, "magnitude-start", method(criterion="magnitude", scope="global"), 0.3)
    with pytest.raises(ValueError, match="control starts from unpruned models only"):
        prune(dense, "retrain_only", method(criterion="none"), 0.6, start=pruned)
    # a method the schema refuses; the job refuses it too, for callers that pass no checked config
    with pytest.raises(ValueError, match="takes no regularizer"):
        prune(dense, "retrain_only", {**method(criterion="none"), "regularizer": "l2", "weight": 1.0}, 0.6)


def test_sparsity_check_accepts_zero_for_the_control_only(dense, monkeypatch):
    """A pruning method whose masks came out empty is caught; the control's 0 is what it should be."""
    def prune_nothing(weights, **kwargs):
        return {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}

    monkeypatch.setattr(prune_stage, "compute_masks", prune_nothing)
    with pytest.raises(RuntimeError, match=r"differs from 0\.5 \(target\)"):
        prune(dense, "broken", method(criterion="magnitude", scope="layer"), 0.5)
