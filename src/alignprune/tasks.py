"""The two tasks of the study: where they live on the Hub and how their rows look."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str
    hub_id: str
    # Hub column names of the two texts, in the order the model reads them.
    text_columns: tuple[str, str]
    label_names: tuple[str, ...]
    languages: tuple[str, ...]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


TASKS: dict[str, TaskSpec] = {
    "xnli": TaskSpec(
        name="xnli",
        hub_id="facebook/xnli",
        text_columns=("premise", "hypothesis"),
        label_names=("entailment", "neutral", "contradiction"),
        languages=(
            "en", "fr", "es", "de", "el", "bg", "ru", "tr",
            "ar", "vi", "th", "zh", "hi", "sw", "ur",
        ),
    ),
    "pawsx": TaskSpec(
        name="pawsx",
        hub_id="google-research-datasets/paws-x",
        text_columns=("sentence1", "sentence2"),
        label_names=("not_paraphrase", "paraphrase"),
        languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
    ),
}

SPLITS = ("train", "validation", "test")


def task_spec(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from None
