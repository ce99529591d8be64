"""Checkpoints of the training loop: a run stopped at any step and resumed ends bit-identical to
an uninterrupted one; a checkpoint of other settings is not resumed; a NaN loss stops the run
and keeps the last good checkpoint."""

import json
import math

import pytest
import torch
from conftest import PRUNABLE, tiny_classifier

from alignprune.checkpoint import Checkpointer
from alignprune.data import EncodedSplit
from alignprune.modeling import prunable_names
from alignprune.pruning import compute_masks
from alignprune.regularizers import alignment_penalty
from alignprune.train import NonFiniteLoss, TrainSettings, train

SETTINGS = TrainSettings(learning_rate=3e-3, batch_size=8, max_steps=14, eval_every=5, weight_decay=0.01, seed=7)


def split(n: int, seed: int) -> EncodedSplit:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 20, (n,), generator=g).tolist()
    return EncodedSplit(
        input_ids=[[0] + torch.randint(3, 60, (k,), generator=g).tolist() + [2] for k in lengths],
        labels=torch.randint(0, 3, (n,), generator=g).tolist(),
    )


TRAIN, DEV = split(50, 1), split(24, 2)


class Stop(Exception):
    """Stands in for a kill: raised from inside the loop after a given step."""


def run(folder=None, *, stop_after=None, every=4, settings=SETTINGS, penalty_nan_after=None, identity=None):
    """One retraining run with everything a checkpoint must carry: masks that on_step prunes
    further with a random generator, movement scores, a regularizer, dropout."""
    model = tiny_classifier(seed=3)
    params = dict(model.named_parameters())
    names = prunable_names(model, PRUNABLE["include"], [])
    reference = [params[n].detach().clone() for n in names]
    masks = compute_masks({n: params[n].detach() for n in names}, criterion="magnitude", scope="global", sparsity=0.3)
    movement = {n: torch.zeros_like(params[n]) for n in names}
    pruning = torch.Generator().manual_seed(11)
    calls = {"penalty": 0}

    def penalty():
        calls["penalty"] += 1
        value = alignment_penalty("cosine", [params[n] for n in names], reference, [masks[n] for n in names])
        if penalty_nan_after is not None and calls["penalty"] > penalty_nan_after:
            return value * math.nan
        return value

    def on_step(step, current):
        if stop_after is not None and step == stop_after + 1:
            raise Stop
        if step in (3, 9):  # prune 10% more of what is left, at random
            for name in names:
                alive = current[name].nonzero()
                drop = alive[torch.randperm(len(alive), generator=pruning)[: len(alive) // 10]]
                current[name][tuple(drop.T)] = False
            return {"pruned": int(sum((~m).sum() for m in current.values()))}
        return None

    checkpoint = Checkpointer(folder, every, identity or {"run": "test"}) if folder else None
    history = train(
        model, TRAIN, DEV, settings, pad_id=1, device=torch.device("cpu"), masks=masks, movement=movement,
        penalty=penalty, penalty_weight=0.5, on_step=on_step, generators={"pruning": pruning},
        checkpoint=checkpoint, progress=False,
    )
    return model, masks, movement, history


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted():
    return run()


def without_times(history):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history["history"]]


@pytest.mark.parametrize("stop_after", [2, 5, 9, 13])
def test_a_run_stopped_at_any_step_resumes_to_the_same_model_masks_scores_and_history(tmp_path, uninterrupted, stop_after):
    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=stop_after)
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("step-*"))
    assert saved == ([f"step-{4 * (stop_after // 4):08d}"] if stop_after >= 4 else [])
    model, masks, movement, history = run(tmp_path / "ckpt")
    ref_model, ref_masks, ref_movement, ref_history = uninterrupted
    assert same_tensors(model.state_dict(), ref_model.state_dict())
    assert same_tensors(masks, ref_masks) and same_tensors(movement, ref_movement)
    assert without_times(history) == without_times(ref_history)
    assert history["events"] == ref_history["events"] and history["best_step"] == ref_history["best_step"]
    assert history["resumed_from_step"] == (4 * (stop_after // 4) or None)
    # no temporary folders left beside the checkpoints
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".")]


def test_a_resumed_run_keeps_the_code_of_the_run_it_resumed(tmp_path):
    """The checkpoint names the code that wrote it; resuming one from before code was recorded
    adds 'unrecorded' (alignprune.code_version), and the next checkpoint carries both."""
    from alignprune import code_version

    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=5)
    (state,) = (tmp_path / "ckpt").glob("step-*/state.json")
    record = json.loads(state.read_text())
    assert record["code"] == [code_version.package_digest()]
    del record["code"]
    state.write_text(json.dumps(record))
    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=9)
    (state,) = (tmp_path / "ckpt").glob("step-*/state.json")
    assert json.loads(state.read_text())["code"] == sorted([code_version.UNRECORDED, code_version.package_digest()])


def test_checkpoints_keep_only_the_latest_step_and_the_best_model(tmp_path):
    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=13)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    state = json.loads((tmp_path / "ckpt" / "step-00000012" / "state.json").read_text())
    assert names == [state["best_file"], "step-00000012"]
    assert state["best_file"] == f"best-{state['loop']['best']['step']:08d}.safetensors"


def test_a_best_file_left_by_a_killed_run_is_written_again(tmp_path, uninterrupted):
    """A run killed after writing its best file but before the checkpoint that names it leaves the
    file behind; the resumed run reaches that best again (on a GPU, not bit-identically) and must
    keep its own weights, not the file's."""
    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=5)  # checkpoint step 4
    best = f"best-{uninterrupted[3]['best_step']:08d}.safetensors"
    assert 4 < uninterrupted[3]["best_step"] <= 12 and not (tmp_path / "ckpt" / best).exists()
    from safetensors.torch import save_file
    stale = {k: torch.full_like(v, 7.0) for k, v in uninterrupted[0].state_dict().items()}
    save_file(stale, tmp_path / "ckpt" / best)  # another run's weights at the same best step
    with pytest.raises(Stop):  # resumed past that best and its next checkpoint, killed again
        run(tmp_path / "ckpt", stop_after=13)
    model, *_ = run(tmp_path / "ckpt")  # resumes from step 12 with the best file it names
    assert same_tensors(model.state_dict(), uninterrupted[0].state_dict())


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, uninterrupted):
    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=9, identity={"run": "with another learning rate"})
    model, _, _, history = run(tmp_path / "ckpt")  # identity {"run": "test"}: starts over
    assert history["resumed_from_step"] is None  # (the same weights alone cannot show it: same settings)
    assert same_tensors(model.state_dict(), uninterrupted[0].state_dict())


def test_a_half_deleted_checkpoint_is_passed_over_for_the_last_complete_one(tmp_path, uninterrupted):
    """A kill while a checkpoint folder is being deleted (or while the job removes its checkpoints
    after saving its outputs) leaves a step folder without its state file: not a checkpoint."""
    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=9)  # checkpoint step 8
    torn = tmp_path / "ckpt" / "step-00000012"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"")  # what rmtree left: no state.json
    assert Checkpointer(tmp_path / "ckpt", 4, {"run": "test"}).latest().name == "step-00000008"
    assert not torn.exists()  # removed, out of the way of the next save
    model, *_ = run(tmp_path / "ckpt")
    assert same_tensors(model.state_dict(), uninterrupted[0].state_dict())


def test_a_kill_while_checkpoints_are_deleted_leaves_none_that_would_be_resumed(tmp_path, monkeypatch):
    """rmtree deletes in the file system's order: a kill could leave a state file naming weights
    already gone. The state files go first, so what is left is passed over."""
    from alignprune import checkpoint as checkpoint_module

    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=9)  # checkpoint step 8 and a best file

    def killed(folder, ignore_errors=False):
        raise KeyboardInterrupt  # the kill, before rmtree removed anything

    monkeypatch.setattr(checkpoint_module.shutil, "rmtree", killed)
    saved = Checkpointer(tmp_path / "ckpt", 4, {"run": "test"})
    with pytest.raises(KeyboardInterrupt):
        saved.remove()
    assert (tmp_path / "ckpt" / "step-00000008" / "model.safetensors").exists()  # the weights are still there
    monkeypatch.undo()
    assert Checkpointer(tmp_path / "ckpt", 4, {"run": "test"}).latest() is None  # but nothing to resume


def test_a_checkpoint_is_resumed_only_on_a_device_of_the_same_arithmetic(tmp_path):
    """A job's checkpoint names the arithmetic it was trained in: one begun in bf16 on a GPU and
    rerun on CPU (ALIGNPRUNE_DEVICE=cpu, or a node without a driver) starts over."""
    from alignprune.evaluate import numerics
    from alignprune.stages.common import checkpointer

    section = {"checkpoint_every": 4}
    cpu = checkpointer(tmp_path, "retrain", section, SETTINGS, device=torch.device("cpu"))
    assert cpu.identity["numerics"] == {"device": "cpu", "bf16_autocast": False, "tf32": False}
    assert numerics(torch.device("cpu")) == cpu.identity["numerics"]
    gpu = checkpointer(tmp_path, "retrain", section, SETTINGS, device=torch.device("cuda"))
    assert gpu.identity["numerics"]["device"] == "cuda" and gpu.identity != cpu.identity
    with pytest.raises(Stop):
        run(tmp_path / "ckpt", stop_after=9, identity=gpu.identity)
    assert Checkpointer(tmp_path / "ckpt", 4, cpu.identity).latest() is None  # other arithmetic: not resumed


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLoss) as err:
        run(tmp_path / "ckpt", penalty_nan_after=6)  # penalty of step 7 is NaN
    message = str(err.value)
    assert "NaN or infinite by step 8" in message and "step-00000004" in message and "Lower the learning rate" in message
    assert [p.name for p in (tmp_path / "ckpt").glob("step-*")] == ["step-00000004"]
    state = torch.load(tmp_path / "ckpt/step-00000004/state.pt", weights_only=True)
    assert state["optimizer"]["state"]  # a real checkpoint, with Adam's moments
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "ckpt/step-00000004/model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
