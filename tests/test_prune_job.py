"""The prune-and-retrain job on a tiny testbed: every criterion, and the regularizers at work."""

import json

import pytest
import torch
from conftest import PRUNABLE, tiny_testbed
from safetensors.torch import load_file

from alignprune import modeling
from alignprune.criteria import CRITERIA
from alignprune.regularizers import REGULARIZERS, penalty_floor
from alignprune.stages import prune as prune_stage
from alignprune.stages.common import train_settings
from alignprune.train import stable_seed
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
    files = tiny_testbed(root / "pretrained", files, sizes={"train": 300, "validation": 60, "test": 60})
    finetune(
        task="xnli", seed=1, pretrained_dir=root / "pretrained", train_file=files[("xnli", "en", "train")],
        dev_file=files[("xnli", "en", "validation")], out_dir=root / "dense",
        settings=config_section("finetune", {"learning_rate": 1e-3, "batch_size": 16, "epochs": 1, "eval_every": 10,
                                             "warmup_ratio": 0.0, "weight_decay": 0.0}),
        max_length=32, prunable=PRUNABLE, device=torch.device("cpu"), progress=False,
    )
    return root, files


def prune(dense, name, method, sparsity, start=None, out=None, reference=None, settings=RETRAIN, **schedule):
    root, files = dense
    out = out or root / f"{name}-{sparsity}"
    return prune_stage.prune_and_retrain(
        task="xnli", seed=1, method_name=name, method=method, sparsity=sparsity,
        start_dir=start or root / "dense", reference_dir=reference or root / "dense",
        tokenizer_dir=root / "pretrained",
        train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")],
        out_dir=out, settings=settings, max_length=32, prunable=PRUNABLE,
        device=torch.device("cpu"), progress=False, **schedule,
    ), out


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
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
    # movement hands the scores of each retraining to the next target, which prunes by them
    # (not by scores of its own: nothing re-scored)
    assert (second / "movement.safetensors").exists() == (criterion == "movement")
    if criterion == "movement":
        from alignprune.pruning import compute_masks

        handed = load_file(first / "movement.safetensors")
        start = load_file(first / "model.safetensors")
        expected = compute_masks({n: start[n] for n in low}, criterion="movement", scope=scope, sparsity=0.8,
                                 previous=low, movement_scores=handed)
        assert all(torch.equal(expected[name], high[name]) for name in low)


def prunable_pairs(model_dir, reference_dir):
    """(retrained weight, reference weight) in float64 for every prunable weight of ``model_dir``
    (the weights its masks cover), the reference read from ``reference_dir``'s model file."""
    model = load_file(model_dir / "model.safetensors")
    reference = load_file(reference_dir / "model.safetensors")
    names = sorted(load_file(model_dir / "masks.safetensors"))
    return [(model[n].double(), reference[n].double()) for n in names]


def distance(kind, pairs):
    """How far retrained weights W are from their references W0, computed here, independently of
    alignprune.regularizers (pruned weights of a saved model are 0.0, so W is M*W); cosine and
    Frobenius as plain means over units and layers, not the penalties' per-parameter sums (the
    test asks only whether regularized retraining ends closer to W0 by an independent measure):
    cosine: mean over all units (rows) of 1 - cos(W_u, W0_u), the whole reference row;
    frobenius: mean over layers of ||W - W0||_F^2 / ||W0||_F^2;
    l2: sum over layers of ||W - W0||^2."""
    if kind == "cosine":
        distances = []
        for w, w0 in pairs:
            dot = (w * w0).sum(dim=1)
            norms = w.pow(2).sum(dim=1).sqrt() * w0.pow(2).sum(dim=1).sqrt()
            cosine = torch.where(norms > 0, dot / norms.clamp_min(1e-300), 0.0)  # an all-pruned row: cos 0
            distances.append(1.0 - cosine)
        return torch.cat(distances).mean().item()
    if kind == "frobenius":
        return sum(((w - w0).pow(2).sum() / w0.pow(2).sum()).item() for w, w0 in pairs) / len(pairs)
    if kind == "l2":
        return sum((w - w0).pow(2).sum().item() for w, w0 in pairs)
    raise NotImplementedError(f"regularizer {kind!r}: write the distance it pulls toward here (docs/architecture.md)")


def saved_floor(kind, model_dir, reference_dir):
    """The floor of ``kind`` under ``model_dir``'s saved masks, against ``reference_dir``'s weights
    (units: rows, the default)."""
    masks = load_file(model_dir / "masks.safetensors")
    references = [w0 for _, w0 in prunable_pairs(model_dir, reference_dir)]  # in sorted(masks) order
    return penalty_floor(kind, references, [masks[n] for n in sorted(masks)]).item()


def test_distance_of_hand_cases():
    w0 = torch.tensor([[1.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    w = torch.tensor([[0.0, 2.0], [6.0, 8.0]], dtype=torch.float64)  # row 0 orthogonal, row 1 parallel
    assert distance("cosine", [(w, w0)]) == pytest.approx(0.5)
    assert distance("frobenius", [(w, w0)]) == pytest.approx((1 + 4 + 9 + 16) / 26)
    assert distance("l2", [(w, w0)]) == pytest.approx(30.0)
    assert distance("cosine", [(torch.zeros_like(w), w0)]) == pytest.approx(1.0)  # pruned rows: cos 0


@pytest.mark.parametrize("kind", [kind for kind in REGULARIZERS if kind != "none"])
def test_regularized_retraining_stays_closer_to_the_dense_model(dense, kind):
    root, _ = dense
    plain = {"criterion": "magnitude", "scope": "global"}
    _, free = prune(dense, "plain", method(**plain), 0.6, out=root / f"plain-for-{kind}")
    _, held = prune(dense, kind, method(**plain, regularizer=kind, weight=100.0 if kind != "l2" else 1.0), 0.6)
    held_distance = distance(kind, prunable_pairs(held, root / "dense"))
    free_distance = distance(kind, prunable_pairs(free, root / "dense"))
    assert held_distance < 0.9 * free_distance
    history = json.loads((held / "training.json").read_text())["history"]
    assert all(entry["penalty"] > 0 for entry in history)
    # beside each logged penalty, its floor under the model's masks: the value at M*W0, which the
    # penalty (a mean over steps that each stay at or above it) exceeds by what retraining moved
    floor = saved_floor(kind, held, root / "dense")
    assert floor > 0 and all(entry["penalty_floor"] == pytest.approx(floor, rel=1e-5) for entry in history)
    assert all(entry["penalty"] > entry["penalty_floor"] for entry in history)
    # without a regularizer nothing is logged beside the (zero) penalty
    assert "penalty_floor" not in json.loads((free / "training.json").read_text())["history"][0]


def test_the_last_steps_kept_weight_measures_are_the_weight_alignments_of_the_last_step(dense, tmp_path):
    """Evaluated at its last step only, a model is saved at that step: the measures the job took
    there (training.json's last_step) are the weight alignment's of the saved model, per matrix, to
    the digit, also at a second rung (measured against the dense model, not the rung's start)."""
    from alignprune.model_key import ModelKey
    from alignprune.stages.alignment import measure_weight_alignment

    root, _ = dense
    at_end = config_section("retrain", {**RETRAIN, "eval_every": RETRAIN["steps"]})
    spec = method(criterion="magnitude", scope="global", regularizer="cosine", weight=10.0)
    _, first = prune(dense, "cos", spec, 0.5, out=tmp_path / "0.5", settings=at_end)
    _, second = prune(dense, "cos", spec, 0.7, start=first, out=tmp_path / "0.7", settings=at_end)
    for model_dir in (first, second):
        table = measure_weight_alignment(key=ModelKey.of("xnli", 1, "cos", 0.5), model_dir=model_dir,
                                         dense_dir=root / "dense", out_file=tmp_path / "w.csv", prunable=PRUNABLE)
        assert (table["last_step"] == RETRAIN["steps"]).all() and (table["kept_step"] == RETRAIN["steps"]).all()
        assert table["kept_change"].gt(0).all() and table["kept_cosine"].lt(1).all()  # retraining moved them
        assert table["last_kept_change"].tolist() == table["kept_change"].tolist()
        assert table["last_kept_cosine"].tolist() == table["kept_cosine"].tolist()
    # a regularizer aligned to the pretrained model: not measured (the weight alignment's W0 is the dense one)
    _, to_pretrained = prune(dense, "l2-pre", method(criterion="magnitude", scope="global", regularizer="l2",
                                                     weight=1.0, reference="pretrained"), 0.5,
                             reference=root / "pretrained", out=tmp_path / "pre", settings=at_end)
    assert "last_step" not in json.loads((to_pretrained / "training.json").read_text())
    # a dense model without every prunable weight: refused before retraining, nothing written
    from safetensors.torch import save_file

    stored = load_file(root / "dense" / "model.safetensors")
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    save_file({name: t for name, t in stored.items() if "layer.0.attention.self.query.weight" not in name},
              lacking / "model.safetensors")
    with pytest.raises(ValueError, match=f"dense model {lacking} lacks prunable weights"):
        prune(dense, "plain", method(criterion="magnitude", scope="global"), 0.5, reference=lacking,
              out=tmp_path / "refused", settings=at_end)
    assert not (tmp_path / "refused").exists()


def test_the_cosine_regularizers_units_reach_the_job(dense, tmp_path):
    """units: columns compares input units: the penalty the job logs at its first step (at the
    pruned dense model) is the columns' one, not the rows' (the default)."""
    from alignprune.regularizers import alignment_penalty

    root, _ = dense
    one_step = config_section("retrain", {**RETRAIN, "steps": 1, "eval_every": 1})
    spec = method(criterion="magnitude", scope="global", regularizer="cosine", weight=0.3, units="columns")
    _, out = prune(dense, "cos-columns", spec, 0.6, out=tmp_path / "columns", settings=one_step)
    logged = json.loads((out / "training.json").read_text())["history"][0]["penalty"]
    masks = load_file(out / "masks.safetensors")
    fine_tuned = load_file(root / "dense" / "model.safetensors")
    names = sorted(masks)
    pruned = [fine_tuned[n].double() * masks[n] for n in names]
    references = [fine_tuned[n].double() for n in names]
    columns = alignment_penalty("cosine", pruned, references, units="columns").item()
    rows = alignment_penalty("cosine", pruned, references, units="rows").item()
    assert logged == pytest.approx(columns, rel=1e-5) and abs(rows - columns) > 1e-3 * columns


def kept_l2(model_dir, reference_dir):
    """Squared distance of the kept weights of ``model_dir`` to those of ``reference_dir``: the
    part of the l2 penalty retraining can move (pruned weights stay 0.0)."""
    masks = load_file(model_dir / "masks.safetensors")
    pairs = prunable_pairs(model_dir, reference_dir)
    return sum((w - w0)[masks[n]].pow(2).sum().item() for n, (w, w0) in zip(sorted(masks), pairs))


def test_pretrained_reference_pulls_towards_the_pretrained_weights(dense):
    """``reference: pretrained``: the rule passes the pretrained model's folder as reference_dir
    (common.smk, reference_model); the job aligns to its weights, not the dense model's."""
    root, _ = dense
    pretrained = load_file(root / "pretrained" / "model.safetensors")
    fine_tuned = load_file(root / "dense" / "model.safetensors")
    names = modeling.prunable_names(modeling.load_classifier(root / "dense"), **PRUNABLE)
    # the masked-LM checkpoint names the classifier's prunable weights alike, with the same shapes
    assert names and set(names) <= set(pretrained) and all(pretrained[n].shape == fine_tuned[n].shape for n in names)
    assert all(not torch.equal(pretrained[n], fine_tuned[n]) for n in names)  # fine-tuning moved them

    spec = {"criterion": "magnitude", "scope": "global", "regularizer": "l2", "weight": 1.0}
    _, to_pretrained = prune(dense, "l2-pretrained", method(**spec, reference="pretrained"), 0.6,
                             reference=root / "pretrained")
    _, to_dense = prune(dense, "l2-dense", method(**spec, reference="dense"), 0.6,
                        out=root / "l2-dense-reference")
    # same start, same criterion: the same masks; only the reference differs
    assert (to_pretrained / "masks.safetensors").read_bytes() == (to_dense / "masks.safetensors").read_bytes()

    # each run ends closer to its own reference than the other run does
    assert kept_l2(to_pretrained, root / "pretrained") < 0.5 * kept_l2(to_dense, root / "pretrained")
    assert kept_l2(to_dense, root / "dense") < 0.5 * kept_l2(to_pretrained, root / "dense")

    # the logged penalty is the l2 distance to the pretrained weights: one step logged alone gives
    # the penalty before it, at the pruned dense model (the masks applied to the dense weights);
    # the penalty itself, not times its weight (0.3 here)
    one_step = config_section("retrain", {**RETRAIN, "steps": 1, "eval_every": 1})
    _, first = prune(dense, "l2-pretrained", method(**{**spec, "weight": 0.3}, reference="pretrained"), 0.6,
                     reference=root / "pretrained", out=root / "l2-pretrained-one-step", settings=one_step)
    logged = json.loads((first / "training.json").read_text())["history"][0]["penalty"]
    masks = load_file(first / "masks.safetensors")
    pruned_dense = [fine_tuned[n].double() * masks[n] for n in sorted(masks)]
    to_own = distance("l2", [(w, pretrained[n].double()) for w, n in zip(pruned_dense, sorted(masks))])
    to_other = distance("l2", [(w, fine_tuned[n].double()) for w, n in zip(pruned_dense, sorted(masks))])
    assert logged == pytest.approx(to_own, rel=1e-5)
    assert abs(to_other - to_own) > 1e-3 * to_own  # the dense reference would have logged another value


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
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


def test_gradual_pruning_logs_the_floor_of_the_masks_each_step_had(dense):
    """The independent schedule prunes at steps 4, 8, 11 and 15 of 30 (evaluations at 15 and 30):
    the first logged floor is a mean over masks from none pruned (floor 0) to nearly the final
    ones, the second the final masks' floor; each logged penalty is above its floor."""
    root, _ = dense
    spec = method(criterion="magnitude", scope="global", regularizer="frobenius", weight=100.0)
    _, out = prune(dense, "gradual-frobenius", spec, 0.8, schedule="independent",
                   gradual=config_section("gradual", {"pruning_steps": 4, "pruning_fraction": 0.5}))
    history = json.loads((out / "training.json").read_text())["history"]
    final = saved_floor("frobenius", out, root / "dense")
    assert [entry["step"] for entry in history] == [15, 30]
    assert history[1]["penalty_floor"] == pytest.approx(final, rel=1e-5)
    assert 0 < history[0]["penalty_floor"] < 0.8 * final  # 4 of its 15 steps at floor 0, the rest below final
    assert all(entry["penalty"] > entry["penalty_floor"] for entry in history)


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

    # an unpruned retrain: the dense model, the training loop without masks, the rung's seed, on
    # ids encoded here from the data files (the job read token files: the same ids)
    tokenizer = load_tokenizer(root / "pretrained")
    train_data, dev_data = (encode(tokenizer, read_split(root / f"{split}.parquet", 3), 32)
                            for split in ("train", "dev"))
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


def test_a_pruned_weight_that_leaves_zero_is_caught_before_saving(dense, monkeypatch, tmp_path):
    """One weight per matrix would pass the sparsity tolerance; the mask check admits none."""
    retrain = prune_stage.PruneJob.retrain

    def retrain_then_leak(job, run, masks, movement, **extra):
        history = retrain(job, run, masks, movement, **extra)
        name = job.names[0]
        job.params[name].data[~masks[name]] = 0.0
        job.params[name].data.view(-1)[(~masks[name]).view(-1).nonzero()[0]] = 1e-3  # one weight
        return history

    monkeypatch.setattr(prune_stage.PruneJob, "retrain", retrain_then_leak)
    with pytest.raises(RuntimeError, match=r"1 pruned weights are not 0 after retraining, in 1 matrices"):
        prune(dense, "leaky", method(criterion="magnitude", scope="layer"), 0.5, out=tmp_path / "leaky")
    assert not (tmp_path / "leaky").exists()


def test_every_model_and_evaluation_names_the_code_that_made_it(dense, tmp_path):
    """code.json: the testbed's, the fine-tuning's and each rung's code; an evaluation adds its
    own. A model started from one made by other code carries both, and the tables warn."""
    from alignprune import code_version
    from alignprune.model_key import ModelKey
    from alignprune.results import code_warning, collect_evals, inputs_table, load_evals
    from alignprune.stages.evaluate import EvalFile, evaluate_model_files

    root, files = dense
    now = code_version.package_digest()
    for folder in ("pretrained", "dense"):
        assert json.loads((root / folder / code_version.CODE_FILE).read_text()) == {"code": [now]}
    spec = method(criterion="magnitude", scope="global")
    _, current = prune(dense, "code-now", spec, 0.5, out=tmp_path / "now")
    assert json.loads((current / code_version.CODE_FILE).read_text()) == {"code": [now]}
    # a start model made by an older version of the code (its record as that version wrote it)
    import shutil
    older = tmp_path / "older-dense"
    shutil.copytree(root / "dense", older)
    (older / code_version.CODE_FILE).write_text(json.dumps({"code": ["0123456789ab"]}))
    _, mixed = prune(dense, "code-mixed", spec, 0.5, start=older, reference=older, out=tmp_path / "mixed")
    assert json.loads((mixed / code_version.CODE_FILE).read_text()) == {"code": sorted(["0123456789ab", now])}
    # and a rung started from the mixed one keeps the older version in its lineage
    _, next_rung = prune(dense, "code-mixed", spec, 0.7, start=mixed, out=tmp_path / "mixed-0.7")
    assert json.loads((next_rung / code_version.CODE_FILE).read_text())["code"] == sorted(["0123456789ab", now])
    # the reference model a regularizer aligns to is a parent too (in the workflow it is always an
    # ancestor of the start model as well; here it alone was made by the older code)
    _, aligned = prune(dense, "code-reference", method(criterion="magnitude", scope="global", regularizer="cosine",
                                                       weight=1.0), 0.5, reference=older, out=tmp_path / "ref")
    assert json.loads((aligned / code_version.CODE_FILE).read_text())["code"] == sorted(["0123456789ab", now])
    # a weight the sweep chose: the code that made the choice joins the record (unrecorded for a
    # choice file from before the records)
    from alignprune.chosen_weights import chosen_weights_text
    chosen = tmp_path / "chosen_weights.yaml"
    spec = method(criterion="magnitude", scope="global", regularizer="cosine", weight=1.0)
    for code, expected in ((["cccccccccccc"], ["cccccccccccc", now]), (None, [code_version.UNRECORDED, now])):
        chosen.write_text(chosen_weights_text({"code-chosen": 1.0}, 0.5, code=code))
        report, swept = prune(dense, "code-chosen", spec, 0.5, out=tmp_path / f"swept-{bool(code)}",
                              chosen_file=chosen)
        assert json.loads((swept / code_version.CODE_FILE).read_text())["code"] == sorted(expected)

    records = []
    for name, folder in (("now", current), ("mixed", mixed)):
        records += evaluate_model_files(
            key=ModelKey.of("xnli", 1, name, 0.50), model_dir=folder, tokenizer_dir=root / "pretrained",
            files=[EvalFile("validation", "en", files[("xnli", "en", "validation")], tmp_path / f"{name}.json")],
            batch_size=16, max_length=32, prunable=PRUNABLE, device=torch.device("cpu"),
        )
    assert [r["code"] for r in records] == [now, "+".join(sorted(["0123456789ab", now]))]
    collect_evals([tmp_path / "now.json", tmp_path / "mixed.json"], tmp_path / "evals.csv")
    inputs = inputs_table(load_evals(tmp_path / "evals.csv", "validation"))
    assert sorted(inputs["code"]) == sorted([now, "+".join(sorted(["0123456789ab", now]))])
    assert "2 versions of the code" in code_warning(inputs) and "0123456789ab" in code_warning(inputs)
    assert code_warning(inputs[inputs["code"] == now]) is None


def test_a_job_resumed_from_a_checkpoint_of_other_code_records_both_versions(dense, tmp_path, monkeypatch):
    """Fine-tuning and pruning stopped at their final save (after a checkpoint), the checkpoint
    marked as written by older code, then rerun: the model names both versions. Missing records
    (a start model or checkpoint from before code was recorded) count as 'unrecorded'."""
    from alignprune import code_version

    root, files = dense
    now = code_version.package_digest()
    real_save = modeling.save_model

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    def older(checkpoints, digests):
        (state,) = checkpoints.glob("*/step-*/state.json")
        record = json.loads(state.read_text())
        record["code"] = digests
        state.write_text(json.dumps(record))

    # fine-tuning: a pretrained model whose record names an older version, too
    import shutil
    pretrained = tmp_path / "pretrained"
    shutil.copytree(root / "pretrained", pretrained)
    (pretrained / code_version.CODE_FILE).write_text(json.dumps({"code": ["aaaaaaaaaaaa"]}))
    fine = dict(task="xnli", seed=1, pretrained_dir=pretrained, train_file=files[("xnli", "en", "train")],
                dev_file=files[("xnli", "en", "validation")], out_dir=tmp_path / "dense",
                settings=config_section("finetune", {"learning_rate": 1e-3, "batch_size": 16, "epochs": 1,
                                                     "eval_every": 10, "checkpoint_every": 5}),
                max_length=32, prunable=PRUNABLE, device=torch.device("cpu"), progress=False,
                checkpoint_dir=tmp_path / "ckpt-dense")
    monkeypatch.setattr(modeling, "save_model", killed)
    with pytest.raises(KeyboardInterrupt):
        finetune(**fine)
    older(tmp_path / "ckpt-dense", ["0123456789ab"])
    monkeypatch.setattr(modeling, "save_model", real_save)
    finetune(**fine)
    assert json.loads((tmp_path / "dense" / code_version.CODE_FILE).read_text())["code"] == sorted(
        ["0123456789ab", "aaaaaaaaaaaa", now])

    # a prune job resumed from a checkpoint of older code, from a start model without a record
    start = tmp_path / "start"
    shutil.copytree(root / "dense", start)
    (start / code_version.CODE_FILE).unlink()
    settings = config_section("retrain", {"learning_rate": 3e-3, "batch_size": 16, "steps": 30, "eval_every": 15,
                                          "checkpoint_every": 10})
    spec = method(criterion="magnitude", scope="global")
    monkeypatch.setattr(modeling, "save_model", killed)
    with pytest.raises(KeyboardInterrupt):
        prune(dense, "resumed", spec, 0.5, start=start, reference=root / "dense", out=tmp_path / "pruned",
              settings=settings, checkpoint_dir=tmp_path / "ckpt-prune")
    (state,) = (tmp_path / "ckpt-prune").glob("*/step-*/state.json")
    record = json.loads(state.read_text())
    assert record["code"] == [now]  # the runs' code; the start model's lineage is added at the save
    record["code"] = ["bbbbbbbbbbbb"]  # as an older version wrote it
    state.write_text(json.dumps(record))
    monkeypatch.setattr(modeling, "save_model", real_save)
    prune(dense, "resumed", spec, 0.5, start=start, reference=root / "dense", out=tmp_path / "pruned",
          settings=settings, checkpoint_dir=tmp_path / "ckpt-prune")
    assert json.loads((tmp_path / "pruned" / code_version.CODE_FILE).read_text())["code"] == sorted(
        [code_version.UNRECORDED, "bbbbbbbbbbbb", now])


def test_a_checkpoint_of_other_prunable_weights_is_not_resumed(dense, tmp_path, monkeypatch):
    """An edit of prunable reruns the prune jobs on the same inputs: a checkpoint killed before it
    holds masks and scores of other weights, and must be started over, not resumed."""
    root, files = dense
    real_save = modeling.save_model

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    def run(prunable):
        return prune_stage.prune_and_retrain(
            task="xnli", seed=1, method_name="edited", method=method(criterion="magnitude", scope="global"),
            sparsity=0.5, start_dir=root / "dense", reference_dir=root / "dense", tokenizer_dir=root / "pretrained",
            train_file=files[("xnli", "en", "train")], dev_file=files[("xnli", "en", "validation")],
            out_dir=tmp_path / "pruned", settings=config_section("retrain", {**RETRAIN, "checkpoint_every": 10}),
            max_length=32, prunable=prunable, device=torch.device("cpu"), progress=False,
            checkpoint_dir=tmp_path / "ckpt")

    monkeypatch.setattr(modeling, "save_model", killed)
    with pytest.raises(KeyboardInterrupt):
        run(PRUNABLE)
    assert list((tmp_path / "ckpt").glob("*/step-*"))
    monkeypatch.setattr(modeling, "save_model", real_save)
    queries = {"include": [r"attention\.self\.query\.weight$"], "exclude": []}
    report = run(queries)
    training = json.loads((tmp_path / "pruned" / modeling.TRAINING_FILE).read_text())
    assert training["resumed_from_step"] is None
    assert sorted(load_file(tmp_path / "pruned" / "masks.safetensors")) == sorted(report["layers"])
    assert all(name.endswith("attention.self.query.weight") for name in report["layers"])
