"""Settings that change how a job runs but not what it computes.

Snakemake reruns a job whose ``params`` changed, so a rule passes only the settings that
change its outputs as params; its script reads the operational ones below from
``snakemake.config``. Editing them (a checkpoint or log interval, threads, the evaluation
batch size, TensorBoard) then reruns nothing.
"""

from __future__ import annotations

# Keys of the finetune and retrain sections that only say how often to checkpoint or log.
TRAINING_KEYS = ("checkpoint_every", "log_every")


def result_settings(section: dict) -> dict:
    """A finetune or retrain section without its operational keys: what a rule's params hold."""
    return {key: value for key, value in section.items() if key not in TRAINING_KEYS}


def task_finetune(config: dict, task: str) -> dict:
    """The finetune section for ``task``: the config's ``finetune`` with the task's own
    overrides (``tasks.<task>.finetune``: a task learnt slowly gets more epochs)."""
    return {**config["finetune"], **config["tasks"][task].get("finetune", {})}


def with_operational(settings: dict, section: dict) -> dict:
    """``settings`` (a rule's params) completed with the operational keys of the validated config
    ``section`` (the schema gives each a default)."""
    return {**settings, **{key: section[key] for key in TRAINING_KEYS}}
