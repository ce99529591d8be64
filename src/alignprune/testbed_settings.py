"""The settings of the demo's synthetic world (``alignprune.testbed``), and which of them each
of its outputs reads: the workflow reads this module when it plans the testbed's jobs, so it
imports nothing heavy."""

from __future__ import annotations

import random
from dataclasses import MISSING, dataclass, field, fields, replace


@dataclass(frozen=True)
class LanguageSpec:
    """One language of the testbed and the knobs that grade its transfer from English."""

    code: str
    order: str = "SVO"  # or "SOV"
    adjective_after_noun: bool = False
    parallel: float = 1.0  # relative weight of this language in translation pairs
    code_switch: float = 0.3  # share of its words swapped into another language in pretraining
    overlap: float = 0.0  # share of its content words spelt as in English (shared vocabulary)
    shared_negation: bool = False  # its negation word spelt as English's (a shared function word)
    own_order: float = 1.0  # share of its sentences in its own word order; the rest in English's

    def sentence_order(self, rng: random.Random | None) -> "LanguageSpec":
        """The spec one sentence (or sentence pair) is rendered with: its own order with
        probability ``own_order``, else English's (a language whose order is free to follow
        English's, as German main clauses do). No draw unless ``own_order`` < 1."""
        if self.own_order >= 1 or rng.random() < self.own_order:
            return self
        return replace(self, order="SVO", adjective_after_noun=False)


DEFAULT_SIZES = {"train": 6000, "validation": 500, "test": 1000}  # rows of each split the config names none for


@dataclass
class TestbedSettings:
    seed: int
    languages: list[LanguageSpec]
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    pretrain_steps: int = 1500
    pretrain_batch_size: int = 64
    pretrain_learning_rate: float = 5e-4
    parallel_fraction: float = 0.5  # share of pretraining batches that are translation pairs
    vocab_size: int = 2000
    paws_synonyms: float = 0.15  # share of a PAWS-like second sentence's words replaced by synonyms
    nli_contrasts: float = 0.0  # share of NLI-like pairs from contrast_nli_example (2/3 of them: cues mislead)
    particles: float = 0.0  # chance of each of two meaning-free particles in a sentence (with_particles)
    tokenizer: str = "unigram"  # sentencepiece model type: unigram or word (train_tokenizer)
    sizes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SIZES))


# The settings each output of the testbed reads, as its rules pass them as params (Snakemake
# reruns a job whose params changed): the model does not read the data files' settings, so a new
# test size reruns the test files and what reads them, not the model; a data file reads its own
# split's size and its own task's knob. Values at their defaults are left out and the keys come
# in the dataclasses' order, so that a default written out, another key order, or a knob added
# later at its default reruns nothing (the order of the languages is a setting: the lexicon is
# drawn language by language).
DATA_ONLY = ("sizes", "paws_synonyms", "nli_contrasts")
# a language's knobs that only pretraining reads (translation pairs, code-switched sentences)
PRETRAINING_ONLY = ("parallel", "code_switch")
TASK_KNOB = {"xnli": "nli_contrasts", "pawsx": "paws_synonyms"}


def _set_values(obj) -> dict:
    """The fields of a settings dataclass that differ from their defaults (all without one),
    languages as such dicts; a whole number where the default is a float becomes a float."""
    values = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name == "languages":
            value = [_set_values(spec) for spec in value]
        elif f.default is not MISSING:
            if isinstance(f.default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if value == f.default:
                continue
        elif f.default_factory is not MISSING and value == f.default_factory():
            continue
        values[f.name] = value
    return values


def model_params(settings: TestbedSettings) -> dict:
    """What the testbed model job reads (its params)."""
    return {k: v for k, v in _set_values(settings).items() if k not in DATA_ONLY}


def data_params(settings: TestbedSettings, task: str, split: str) -> dict:
    """What one data file of ``task`` and ``split`` reads (the params of its job): the seed,
    the languages (its own and, for the lexicon, the others) without their pretraining knobs,
    particles, its split's size and its task's knob."""
    values = _set_values(settings)
    values["languages"] = [{k: v for k, v in spec.items() if k not in PRETRAINING_ONLY}
                           for spec in values["languages"]]
    read = ("seed", "languages", "particles", TASK_KNOB[task])
    return {**{k: values[k] for k in read if k in values}, "sizes": {split: settings.sizes[split]}}


def settings_from_params(params: dict) -> TestbedSettings:
    """TestbedSettings from ``model_params`` or ``data_params`` (the rest at their defaults)."""
    languages = [LanguageSpec(**spec) for spec in params["languages"]]
    return TestbedSettings(**{**params, "languages": languages})


def settings_from_config(testbed: dict) -> TestbedSettings:
    """TestbedSettings from the config's ``testbed`` section (languages in config order, English
    first); a split that ``sizes`` leaves out (the schema lets it) keeps its default size."""
    languages = [LanguageSpec(code=code, **(spec or {})) for code, spec in testbed["languages"].items()]
    keys = ("hidden_size", "layers", "heads", "pretrain_steps", "pretrain_batch_size",
            "pretrain_learning_rate", "parallel_fraction", "paws_synonyms", "particles", "tokenizer",
            "nli_contrasts")
    values = {k: testbed[k] for k in keys if k in testbed}
    if "sizes" in testbed:
        values["sizes"] = {**DEFAULT_SIZES, **testbed["sizes"]}
    return TestbedSettings(seed=testbed["seed"], languages=languages, **values)
