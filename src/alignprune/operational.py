"""Settings that change how a job runs, not what it is meant to compute.

Snakemake reruns a job whose ``params`` changed, so a rule passes only the settings that
change its outputs as params; its script reads the operational ones below from
``snakemake.config``. Editing them (a checkpoint or log interval, threads, the evaluation
batch size, TensorBoard) then reruns nothing. Threads and the evaluation batch size may still
move the last digits of a result (floating-point sums in another order, other padded shapes):
what runs on another thread count is not bit-identical (the demo's testbed model, calibrated on
2 threads, differs more), so compare runs made with the same ones.
"""

from __future__ import annotations

# Keys of the finetune and retrain sections that only say how often to checkpoint or log.
TRAINING_KEYS = ("checkpoint_every", "log_every")


# The order of a training section's result keys in a rule's params. Snakemake compares params
# by their repr, in which a dict's key order shows: a config that lists the same keys in another
# order would rerun every training job. This is the order config.yaml gives them (so runs made
# before the order was fixed rerun nothing); a key not listed here follows, sorted.
RESULT_ORDER = ("learning_rate", "batch_size", "epochs", "steps", "warmup_ratio", "weight_decay", "eval_every",
                "group_by_length")


def result_settings(section: dict) -> dict:
    """A finetune or retrain section without its operational keys, in RESULT_ORDER: what a
    rule's params hold."""
    keys = [key for key in section if key not in TRAINING_KEYS]
    ordered = [key for key in RESULT_ORDER if key in keys] + sorted(set(keys) - set(RESULT_ORDER))
    return {key: section[key] for key in ordered}


# the regularizers that compare units (rows or columns) and read a method's ``units``; here, not in
# regularizers.py (which reads it from here), as this module is read at plan time and imports no torch
UNIT_REGULARIZERS = ("cosine",)


def method_settings(spec: dict, schedule: str) -> dict:
    """What a prune job reads of its method's validated config entry, keys sorted: its rule's
    params. Only the keys its kind of method reads, so that editing one it does not read (the
    units of a Frobenius method, gradient_batches of a magnitude method, enabled) or a key added
    to the schema for another criterion reruns nothing; the keys it reads keep their schema
    defaults, so that a changed default reruns what it changes."""
    keys = {"criterion", "regularizer"}
    if spec["criterion"] != "none":  # the retraining control prunes nothing: no scope
        keys.add("scope")
    if spec["criterion"] == "gradient":
        keys.add("gradient_batches")
    if spec["criterion"] == "movement" and schedule == "ladder":  # independent: scores from retraining
        keys.add("score_steps")
    if spec["regularizer"] != "none":
        keys |= {"weight", "reference"}
    if spec["regularizer"] in UNIT_REGULARIZERS:
        keys.add("units")
    return {key: spec[key] for key in sorted(keys)}


def task_finetune(config: dict, task: str) -> dict:
    """The finetune section for ``task``: the config's ``finetune`` with the task's own
    overrides (``tasks.<task>.finetune``: a task learnt slowly gets more epochs)."""
    return {**config["finetune"], **config["tasks"][task].get("finetune", {})}


def with_operational(settings: dict, section: dict) -> dict:
    """``settings`` (a rule's params) completed with the operational keys of the validated config
    ``section`` (the schema gives each a default)."""
    return {**settings, **{key: section[key] for key in TRAINING_KEYS}}
