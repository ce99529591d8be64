"""Same config and seed: identical models, masks and eval files; another seed: another data order
and other masks. Common random numbers: two methods that prune the same weights give identical
models. Every schedule's prune job, stopped in any of its training phases, resumes to the same
files as an uninterrupted job."""

import json

import pytest
import torch
from conftest import PRUNABLE, tiny_testbed
from safetensors.torch import load_file

from alignprune import train as train_module
from alignprune.batching import training_batches
from alignprune.data import encode, read_split
from alignprune.model_key import ModelKey
from alignprune.modeling import load_tokenizer
from alignprune.train import random_streams, stable_seed
from alignprune.stages.evaluate import evaluate_model
from alignprune.stages.finetune import finetune as finetune_job
from alignprune.stages.prune import prune_and_retrain
from workflow_helpers import config_section

FINETUNE = config_section("finetune", {"learning_rate": 1e-3, "batch_size": 16, "epochs": 1, "eval_every": 10,
                                       "checkpoint_every": 4})
RETRAIN = config_section("retrain", {"learning_rate": 3e-3, "batch_size": 16, "steps": 12, "eval_every": 6,
                                     "checkpoint_every": 4})
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    files = {(lang, split): root / f"{lang}-{split}.parquet" for lang in ("en", "de") for split in ("train", "validation", "test")}
    tokens = tiny_testbed(root / "pretrained", {("xnli", *k): v for k, v in files.items()},
                          sizes={"train": 200, "validation": 60, "test": 60})
    return root, {key[1:]: path for key, path in tokens.items()}


def finetune(world, seed, out):
    root, files = world
    return finetune_job(
        task="xnli", seed=seed, pretrained_dir=root / "pretrained", train_file=files[("en", "train")],
        dev_file=files[("en", "validation")], out_dir=out, settings=FINETUNE, max_length=32, prunable=PRUNABLE,
        device=CPU, progress=False,
    )


def prune(world, start, out, method, sparsity=0.5, checkpoint_dir=None, name="m", **schedule):
    root, files = world
    return prune_and_retrain(
        task="xnli", seed=1, method_name=name, method=config_section("methods.*", method), sparsity=sparsity, start_dir=start,
        reference_dir=start, tokenizer_dir=root / "pretrained", train_file=files[("en", "train")],
        dev_file=files[("en", "validation")], out_dir=out, settings=RETRAIN, max_length=32, prunable=PRUNABLE,
        device=CPU, progress=False, checkpoint_dir=checkpoint_dir, **schedule,
    )


def evaluate(world, model_dir, out):
    root, files = world
    evaluate_model(
        key=ModelKey.of("xnli", 1), lang="de", split="test", model_dir=model_dir,
        tokenizer_dir=root / "pretrained", token_file=files[("de", "test")], out_file=out, batch_size=32,
        max_length=32, prunable=PRUNABLE, device=CPU,
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def dense(world):
    root, _ = world
    for seed in (1, 2):
        finetune(world, seed, root / f"dense-{seed}")
    return {seed: root / f"dense-{seed}" for seed in (1, 2)}


METHOD = {"criterion": "magnitude", "scope": "global", "regularizer": "cosine", "weight": 10.0}


def test_same_seed_twice_gives_identical_models_masks_and_eval_files(world, dense, tmp_path):
    finetune(world, 1, tmp_path / "dense-again")
    assert (tmp_path / "dense-again/model.safetensors").read_bytes() == (dense[1] / "model.safetensors").read_bytes()
    prune(world, dense[1], tmp_path / "a", METHOD)
    prune(world, tmp_path / "dense-again", tmp_path / "b", METHOD)
    assert (tmp_path / "a/masks.safetensors").read_bytes() == (tmp_path / "b/masks.safetensors").read_bytes()
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
    assert evaluate(world, tmp_path / "a", tmp_path / "a.json") == evaluate(world, tmp_path / "b", tmp_path / "b.json")


def test_another_seed_gives_another_data_order_and_other_masks(world, dense, tmp_path):
    root, files = world
    # the data order of each seed's fine-tuning (seeds derived as the finetune job derives them)
    tokenizer = load_tokenizer(root / "pretrained")
    data = encode(tokenizer, read_split(root / "en-train.parquet", 3), 32)
    first_labels = {
        seed: next(training_batches(data, 16, 1, random_streams(stable_seed("xnli", seed, "dense"))))[2]
        for seed in (1, 2)
    }
    assert not torch.equal(first_labels[1], first_labels[2])
    assert json.loads((dense[1] / "training.json").read_text())["settings"]["seed"] != json.loads(
        (dense[2] / "training.json").read_text()
    )["settings"]["seed"]
    for seed in (1, 2):
        prune(world, dense[seed], tmp_path / f"seed-{seed}", METHOD)
    masks = {seed: load_file(tmp_path / f"seed-{seed}/masks.safetensors") for seed in (1, 2)}
    differ = sum(int((masks[1][n] != masks[2][n]).sum()) for n in masks[1])
    total = sum(m.numel() for m in masks[1].values())
    assert differ > 0.05 * total  # not a few ties: the two fine-tuned models keep other weights


@pytest.mark.parametrize(
    "first, second",
    [
        # two names for one method
        (("magnitude_a", {"criterion": "magnitude", "scope": "layer"}),
         ("magnitude_b", {"criterion": "magnitude", "scope": "layer"})),
        # two criteria that keep the same weights: within a layer LAMP orders weights by magnitude
        (("magnitude_layer", {"criterion": "magnitude", "scope": "layer"}),
         ("lamp_layer", {"criterion": "lamp", "scope": "layer"})),
    ],
    ids=["same-method-other-name", "magnitude-vs-lamp-per-layer"],
)
def test_methods_that_prune_the_same_weights_give_identical_models(world, dense, tmp_path, first, second):
    """Common random numbers: a rung's data order and dropout come from task, seed and target, so
    the only difference two methods' models can have is the methods' own."""
    for rung, target in enumerate((0.5, 0.8)):
        for name, method in (first, second):
            start = dense[1] if rung == 0 else tmp_path / f"{name}-0.5"
            prune(world, start, tmp_path / f"{name}-{target}", method, sparsity=target, name=name)
        a, b = (tmp_path / f"{name}-{target}" for name, _ in (first, second))
        assert (a / "masks.safetensors").read_bytes() == (b / "masks.safetensors").read_bytes()
        assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
        seeds = [json.loads((d / "training.json").read_text())["settings"]["seed"] for d in (a, b)]
        assert seeds[0] == seeds[1] == stable_seed("xnli", 1, f"{target:.2f}")


class Stop(Exception):
    pass


def stop_after(monkeypatch, calls: int) -> None:
    """Make the training loop fail after ``calls`` optimizer steps of this job, like a kill."""
    original, count = train_module.training_step, {"n": 0}

    def step(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise Stop
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "training_step", step)


@pytest.mark.parametrize(
    "method, schedule, steps_before_kill, retraining_resumed_at",
    [
        # movement at the first target: 8 scoring steps (checkpointed at 4 and 8), then 12 retraining steps
        ({"criterion": "movement", "scope": "layer", "score_steps": 8}, {}, 6, None),
        ({"criterion": "movement", "scope": "layer", "score_steps": 8}, {}, 17, 8),
        # the independent schedule prunes at random during retraining (its generator is checkpointed)
        ({"criterion": "random", "scope": "layer"}, {"schedule": "independent", "gradual": config_section("gradual", {"pruning_steps": 3, "pruning_fraction": 0.7})}, 6, 4),
        (METHOD, {}, 9, 8),
    ],
    ids=["movement-scoring", "movement-retraining", "independent-random", "ladder-cosine"],
)
def test_a_prune_job_stopped_in_any_phase_resumes_to_the_same_files(world, dense, tmp_path, monkeypatch, method, schedule, steps_before_kill, retraining_resumed_at):
    prune(world, dense[1], tmp_path / "uninterrupted", method, **schedule)
    with monkeypatch.context() as patch:
        stop_after(patch, steps_before_kill)
        with pytest.raises(Stop):
            prune(world, dense[1], tmp_path / "resumed", method, checkpoint_dir=tmp_path / "ckpt", **schedule)
    assert not (tmp_path / "resumed").exists() and any((tmp_path / "ckpt").rglob("step-*"))
    prune(world, dense[1], tmp_path / "resumed", method, checkpoint_dir=tmp_path / "ckpt", **schedule)
    for name in ("model.safetensors", "masks.safetensors"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "uninterrupted" / name).read_bytes(), name
    history = json.loads((tmp_path / "resumed/training.json").read_text())
    assert history["resumed_from_step"] == retraining_resumed_at
    # the logged means over steps on both sides of the resume (the cosine's penalty and its floor)
    uninterrupted = json.loads((tmp_path / "uninterrupted/training.json").read_text())["history"]
    for key in ("train_loss", "penalty", "penalty_floor"):
        assert [e.get(key, 0.0) for e in history["history"]] == pytest.approx([e.get(key, 0.0) for e in uninterrupted])
    assert not (tmp_path / "ckpt").exists()  # removed after success


def test_a_checkpoint_written_before_floors_were_logged_resumes_to_the_same_log(world, dense, tmp_path, monkeypatch):
    """A checkpoint without the floor's running sum (older code): the steps it covers since the
    last evaluation count at the restored masks' floor, the floor they had on the ladder."""
    prune(world, dense[1], tmp_path / "uninterrupted", METHOD)
    with monkeypatch.context() as patch:
        stop_after(patch, 9)  # checkpoint at step 8, evaluation at 6: two steps of the sum in it
        with pytest.raises(Stop):
            prune(world, dense[1], tmp_path / "resumed", METHOD, checkpoint_dir=tmp_path / "ckpt")
    (state,) = (tmp_path / "ckpt").rglob("step-*/state.json")
    record = json.loads(state.read_text())
    del record["loop"]["floor_sum"]
    state.write_text(json.dumps(record))
    prune(world, dense[1], tmp_path / "resumed", METHOD, checkpoint_dir=tmp_path / "ckpt")
    resumed, uninterrupted = (json.loads((tmp_path / d / "training.json").read_text())["history"]
                              for d in ("resumed", "uninterrupted"))
    assert [e["penalty_floor"] for e in resumed] == pytest.approx([e["penalty_floor"] for e in uninterrupted])
