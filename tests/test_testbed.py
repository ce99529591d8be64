"""The synthetic testbed: deterministic, parallel across languages, in the download stage's formats."""

import contextlib
import dataclasses
import itertools
import random
import signal

import pandas as pd
import pytest

from alignprune import testbed as tb
from alignprune.data import read_split

LANGS = [tb.LanguageSpec("en"), tb.LanguageSpec("de", order="SOV"), tb.LanguageSpec("fr", adjective_after_noun=True)]


def lexicon(seed=0):
    return tb.build_lexicon(LANGS, random.Random(seed))


def test_word_order_of_each_language():
    lex = lexicon()
    p = tb.Proposition(subject=0, verb=1, obj=2, subject_adj=3, object_adj=None, negated=True)
    kinds = lambda spec: [k for k, _, _ in tb.render_tokens(p, spec, lex)]
    assert kinds(LANGS[0]) == ["adj", "noun", "neg", "verb", "noun"]
    assert kinds(LANGS[1]) == ["adj", "noun", "noun", "neg", "verb"]
    assert kinds(LANGS[2]) == ["noun", "adj", "neg", "verb", "noun"]


def test_languages_have_disjoint_vocabularies():
    lex = lexicon()
    vocab = {code: lex.vocabulary(code) for code in lex.words}
    assert lex.neg["en"] in vocab["en"] and len(vocab["en"]) == 2 * (tb.N_NOUNS + tb.N_VERBS + tb.N_ADJECTIVES) + 1
    assert not vocab["en"] & vocab["de"] and not vocab["en"] & vocab["fr"]


@pytest.mark.parametrize("task, labels", [("xnli", {0, 1, 2}), ("pawsx", {0, 1})])
def test_test_sets_are_parallel_balanced_and_deterministic(task, labels):
    lex = lexicon()
    frames = {s.code: tb.task_frame(task, 600, s, lex, seed=5) for s in LANGS}
    assert set(frames["en"]["label"]) == labels
    counts = frames["en"]["label"].value_counts(normalize=True)
    assert counts.min() > 0.8 / len(labels)
    assert frames["en"]["label"].tolist() == frames["de"]["label"].tolist() == frames["fr"]["label"].tolist()
    assert frames["en"]["text_a"].tolist() != frames["de"]["text_a"].tolist()
    again = tb.task_frame(task, 600, LANGS[0], lexicon(), seed=5)
    pd.testing.assert_frame_equal(frames["en"], again)


def test_nli_labels_follow_their_definition():
    rng = random.Random(0)
    neutral = {"adjective changed": 0, "object changed": 0, "adjective added": 0}
    for _ in range(600):
        premise, hypothesis, label = tb.nli_example(rng)
        if label == 2:
            assert premise.negated != hypothesis.negated
        else:
            assert premise.negated == hypothesis.negated
        if label == 0:  # only adjectives removed
            assert (premise.subject, premise.verb, premise.obj) == (hypothesis.subject, hypothesis.verb, hypothesis.obj)
            assert hypothesis.subject_adj in (None, premise.subject_adj)
            assert hypothesis.object_adj in (None, premise.object_adj)
            assert hypothesis != premise
        if label == 1:  # exactly one of: an adjective changed, the object changed, an adjective added
            changed = {f.name for f in dataclasses.fields(premise) if getattr(premise, f.name) != getattr(hypothesis, f.name)}
            slot = next(iter(changed)) if len(changed) == 1 else None
            kinds = {
                "adjective changed": slot in ("subject_adj", "object_adj")
                and None not in (getattr(premise, slot), getattr(hypothesis, slot)),
                "object changed": slot == "obj" and hypothesis.obj != premise.subject,
                "adjective added": slot in ("subject_adj", "object_adj")
                and getattr(premise, slot) is None and getattr(hypothesis, slot) is not None,
            }
            assert sum(kinds.values()) == 1, (premise, hypothesis)
            neutral[next(kind for kind, holds in kinds.items() if holds)] += 1
    assert min(neutral.values()) > 30, neutral  # each kind of neutral pair is drawn


@pytest.mark.parametrize("spec", LANGS, ids=lambda s: s.code)
def test_nli_contrasts_take_the_label_away_from_length_and_negation(spec):
    """At 0 the surface cues (negation in one sentence only, a shorter hypothesis) label every
    NLI-like pair; each contrast pair of entailment or neutral (2/3 of them) they label wrong,
    so at c they label 1 - 2c/3 of the pairs, and the labels stay balanced."""
    lex = lexicon()
    for contrasts, expected in ((0.0, 1.0), (0.5, 1 - 0.5 * 2 / 3), (1.0, 1 / 3)):
        frame = tb.task_frame("xnli", 3000, spec, lex, seed=7, nli_contrasts=contrasts)
        cues = [tb.surface_cue_label(a, b, lex.neg[spec.code]) for a, b in zip(frame["text_a"], frame["text_b"])]
        assert (frame["label"] == cues).mean() == pytest.approx(expected, abs=0.03)
        assert frame["label"].value_counts(normalize=True).min() > 0.3


def test_task_data_are_those_made_before_nli_contrasts():
    """No draw at nli_contrasts 0: both tasks' pairs, with and without particles and own_order,
    hash as the code before the knob made them (sha256 of their CSV, recorded at that commit)."""
    import hashlib

    specs = LANGS + [tb.LanguageSpec("ja", order="SOV", own_order=0.5)]
    lex = tb.build_lexicon(specs, random.Random(0), particles=True)
    digest = hashlib.sha256()
    for task in ("xnli", "pawsx"):
        for spec in specs:
            for particles in (0.0, 0.3):
                frame = tb.task_frame(task, 200, spec, lex, seed=7, particles=particles, nli_contrasts=0.0)
                digest.update(frame.to_csv(index=False).encode())
    assert digest.hexdigest() == "f4f15abe840d65edb917eb9273cc73acb3dc5b5548c1b9ea3a37fa0d23edb190"


def test_nli_contrast_pairs_follow_their_definition():
    rng = random.Random(3)
    lex = lexicon()
    for label in (0, 1, 2) * 100:
        premise, hypothesis, got = tb.contrast_nli_example(rng, label)
        assert got == label
        a, b = tb.render(premise, LANGS[0], lex), tb.render(hypothesis, LANGS[0], lex)
        if label == 0:  # the same proposition: entailed, though the cues say neutral
            assert a == b and tb.surface_cue_label(a, b, lex.neg["en"]) == 1
        elif label == 1:  # another object, so nothing follows, though the cues say entailment or contradiction
            assert hypothesis.obj not in (premise.obj, premise.subject)
            assert (hypothesis.subject, hypothesis.verb) == (premise.subject, premise.verb)
            assert tb.surface_cue_label(a, b, lex.neg["en"]) in (0, 2)
        else:
            assert hypothesis == dataclasses.replace(premise, negated=not premise.negated)


def test_cue_contrast_probe_is_labelled_wrong_by_the_cues_and_parallel():
    settings = tb.TestbedSettings(seed=0, languages=LANGS)
    lex = tb.testbed_lexicon(settings)
    assert lex.words == lexicon().words  # the build's lexicon: the first draws of the seed
    frames = {spec.code: tb.cue_contrast_frame(settings, lex, spec, 400) for spec in LANGS}
    for code, frame in frames.items():
        cues = [tb.surface_cue_label(a, b, lex.neg[code]) for a, b in zip(frame["text_a"], frame["text_b"])]
        assert not (frame["label"] == cues).any()
        assert frame["label"].tolist() == [0, 1] * 200
    assert frames["en"]["text_a"].tolist() != frames["de"]["text_a"].tolist()
    same = lambda frame: (frame["text_a"] == frame["text_b"]).tolist()  # the entailed pairs, in every language
    assert same(frames["en"]) == same(frames["de"]) == same(frames["fr"]) == [True, False] * 200
    # the same propositions in every language: one word per slot, so the same lengths
    lengths = lambda frame: [(len(a.split()), len(b.split())) for a, b in zip(frame["text_a"], frame["text_b"])]
    assert lengths(frames["en"]) == lengths(frames["de"]) == lengths(frames["fr"])


def test_cue_contrast_probe_is_rendered_as_the_testbed_renders_its_tasks():
    """Particles and own_order apply to the probe as to the task data."""
    de = tb.LanguageSpec("de", order="SOV", own_order=0.5)
    settings = tb.TestbedSettings(seed=0, languages=[LANGS[0], de], particles=0.5)
    lex = tb.testbed_lexicon(settings)
    frame = tb.cue_contrast_frame(settings, lex, de, 400)
    particles = set(lex.particles["de"])
    with_particle = sum(bool(particles & set(a.split())) for a in frame["text_a"])
    assert 0.5 * 400 < with_particle < 0.9 * 400  # 1 - 0.5^2 = 75% of sentences get one
    verbs = {w for forms in lex.words["de"]["verb"] for w in forms}
    last = sum(a.split()[-1] in verbs for a in frame["text_a"])  # verb-final: de's own order
    assert 0.2 * 400 < last < 0.6 * 400  # own order in half the pairs, less where a particle ends it


def test_paws_labels_depend_on_roles_not_on_the_words():
    rng = random.Random(0)
    lex = lexicon()
    same_words = {0: 0, 1: 0}
    for _ in range(400):
        first, second, label = tb.paws_example(rng, synonyms=0.3)
        concepts = lambda p: ({p.subject, p.obj}, p.verb, p.negated)
        assert concepts(first) == concepts(second)  # the same words up to synonyms
        if label == 0:
            assert (second.subject, second.obj) == (first.obj, first.subject)
        else:
            assert (second.subject, second.verb, second.obj) == (first.subject, first.verb, first.obj)
            assert (second.subject_adj, second.object_adj) == (first.subject_adj, first.object_adj)
        a, b = tb.render(first, LANGS[0], lex), tb.render(second, LANGS[0], lex)
        same_words[label] += sorted(a.split()) == sorted(b.split())
    # synonyms are swapped in as often in both classes: the bag of words does not give the label
    # (about a fifth of each class: no word of 3 to 5 replaced at a rate of 0.3)
    assert 20 < same_words[0] < 70 and 20 < same_words[1] < 70
    assert abs(same_words[0] - same_words[1]) < 25


def test_paws_without_synonyms_pairs_identical_sentences_with_role_swaps():
    rng = random.Random(1)
    lex = lexicon()
    for _ in range(100):
        first, second, label = tb.paws_example(rng, synonyms=0.0)
        a, b = tb.render(first, LANGS[1], lex), tb.render(second, LANGS[1], lex)
        assert (a == b) == (label == 1)
        assert sorted(a.split()) == sorted(b.split())


@contextlib.contextmanager
def within_seconds(seconds):
    """A TimeoutError where the block runs longer (a loop that never ends fails the test)."""
    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_lexicon_out_of_one_syllable_words_is_refused_not_drawn_for_ever():
    """15 languages with particles need 75 one-syllable words (a negation word and four particles
    each) of the 14 x 5 = 70 that the consonants and vowels make: one language runs out, on
    any seed. The build says so, and what to change, instead of drawing for ever."""
    specs = [tb.LanguageSpec("en")] + [tb.LanguageSpec(f"x{i}") for i in range(14)]
    with within_seconds(30):
        for seed in (0, 1):
            with pytest.raises(ValueError, match=r"run out of 1-syllable words for language '\w+'.*"
                                                 r"use fewer languages, or no particles \(testbed.particles: 0\)"):
                tb.build_lexicon(specs, random.Random(seed), particles=True)
        lex = tb.build_lexicon(specs, random.Random(0))  # without particles, one each: they fit
    assert len({lex.neg[spec.code] for spec in specs}) == len(specs)


def test_overlap_shares_english_words_and_grows_monotonically():
    def shared(overlap):
        specs = [tb.LanguageSpec("en"), tb.LanguageSpec("de", overlap=overlap), tb.LanguageSpec("fr")]
        lex = tb.build_lexicon(specs, random.Random(0))
        words = lambda code: [tuple(forms) for kind in ("noun", "verb", "adj") for forms in lex.words[code][kind]]
        return {i for i, (en, de) in enumerate(zip(words("en"), words("de"))) if en == de}, lex

    none, lex0 = shared(0.0)
    half, lex5 = shared(0.5)
    everything, _ = shared(1.0)
    concepts = tb.N_NOUNS + tb.N_VERBS + tb.N_ADJECTIVES
    assert none == set() and len(everything) == concepts
    assert none < half < everything and 0.3 * concepts < len(half) < 0.7 * concepts
    assert lex0.neg["de"] == lex5.neg["de"] != lex5.neg["en"]  # function words stay apart
    assert lex0.words["fr"] == lex5.words["fr"]  # other languages unchanged


def test_shared_negation_spells_the_negation_as_english_and_changes_no_other_word():
    def lexicon(shared):
        specs = [tb.LanguageSpec("en"), tb.LanguageSpec("de", shared_negation=shared), tb.LanguageSpec("fr")]
        return tb.build_lexicon(specs, random.Random(0))

    apart, shared = lexicon(False), lexicon(True)
    assert apart.neg["de"] != apart.neg["en"] and shared.neg["de"] == shared.neg["en"] == apart.neg["en"]
    assert shared.neg["fr"] == apart.neg["fr"] != apart.neg["en"]
    assert shared.words == apart.words  # every content word as before
    p = tb.Proposition(subject=1, verb=2, obj=3, subject_adj=None, object_adj=4, negated=True)
    german = tb.render(p, tb.LanguageSpec("de", shared_negation=True), shared).split()
    assert shared.neg["en"] in german and german == [
        shared.neg["en"] if w == apart.neg["de"] else w for w in tb.render(p, tb.LanguageSpec("de"), apart).split()]


@pytest.mark.parametrize("task", ["xnli", "pawsx"])
def test_particles_move_words_apart_and_change_nothing_else(task):
    plain, with_words = lexicon(), tb.build_lexicon(LANGS, random.Random(0), particles=True)
    assert with_words.words == plain.words and with_words.neg == plain.neg and not plain.particles
    particles = {code: set(words) for code, words in with_words.particles.items()}
    assert all(len(words) == tb.N_PARTICLES for words in particles.values())
    assert not particles["en"] & particles["de"]  # each language its own, like its other words
    off = tb.task_frame(task, 400, LANGS[2], plain, seed=5)
    pd.testing.assert_frame_equal(off, tb.task_frame(task, 400, LANGS[2], with_words, seed=5, particles=0.0))
    on = tb.task_frame(task, 400, LANGS[2], with_words, seed=5, particles=0.5)
    assert on["label"].tolist() == off["label"].tolist()  # the same propositions, still parallel
    added = 0
    for column in ("text_a", "text_b"):
        for sentence, before in zip(on[column], off[column]):
            words = sentence.split()
            kept = [w for w in words if w not in particles["fr"]]
            assert kept == before.split() and len(words) - len(kept) <= 2
            added += len(words) - len(kept)
    # two draws at 0.5 each: one particle per sentence on average
    assert 0.9 < added / (2 * len(on)) < 1.1
    # and the two sentences of a pair line up word for word less often
    def aligned(frame):
        pairs = [(a.split(), b.split()) for a, b in zip(frame["text_a"], frame["text_b"])]
        return sum(sum(x == y for x, y in zip(a, b)) / max(len(a), len(b)) for a, b in pairs) / len(pairs)

    assert aligned(on) < aligned(off) - 0.2, (aligned(on), aligned(off))


@pytest.mark.parametrize("task", ["xnli", "pawsx"])
def test_own_order_puts_that_share_of_pairs_in_the_language_s_order_and_the_rest_in_english_s(task):
    lex = lexicon()
    tr = tb.LanguageSpec("tr", order="SOV", adjective_after_noun=True)
    lex.words["tr"], lex.neg["tr"] = lex.words["de"], lex.neg["de"]  # any vocabulary of its own
    frame = lambda own: tb.task_frame(task, 600, dataclasses.replace(tr, own_order=own), lex, seed=5)
    own, english, half = frame(1.0), frame(0.0), frame(0.4)
    pd.testing.assert_frame_equal(own, tb.task_frame(task, 600, tr, lex, seed=5))  # 1: as before, no draws
    assert half["label"].tolist() == own["label"].tolist()  # the same propositions
    rng = random.Random(5)
    for row in english.itertuples():  # 0: every pair in English's order (SVO, adjective first)
        a, b, _ = tb.nli_example(rng) if task == "xnli" else tb.paws_example(rng, 0.15)
        assert (row.text_a, row.text_b) == (tb.render(a, tb.LanguageSpec("tr"), lex), tb.render(b, tb.LanguageSpec("tr"), lex))
    chose_own = [(x.text_a, x.text_b) == (o.text_a, o.text_b) for x, o in zip(half.itertuples(), own.itertuples())]
    chose_english = [(x.text_a, x.text_b) == (e.text_a, e.text_b) for x, e in zip(half.itertuples(), english.itertuples())]
    assert all(o or e for o, e in zip(chose_own, chose_english))  # both sentences of a pair in one order
    assert 0.34 < sum(o and not e for o, e in zip(chose_own, chose_english)) / 600 < 0.46


def test_build_writes_resources_in_the_download_formats(tmp_path):
    settings = tb.TestbedSettings(
        seed=3, languages=LANGS, hidden_size=16, layers=1, heads=2, pretrain_steps=3,
        pretrain_batch_size=4, sizes={"train": 40, "validation": 10, "test": 10},
    )
    files = {
        ("xnli", "en", "train"): tmp_path / "data/xnli/en/train.parquet",
        ("xnli", "de", "test"): tmp_path / "data/xnli/de/test.parquet",
        ("pawsx", "fr", "test"): tmp_path / "data/pawsx/fr/test.parquet",
    }
    tb.build_testbed(settings, tmp_path / "model", files, progress=False)
    assert len(read_split(files[("xnli", "en", "train")], 3)) == 40
    assert set(read_split(files[("pawsx", "fr", "test")], 2)["label"]) <= {0, 1}

    from transformers import XLMRobertaTokenizer

    from alignprune.modeling import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(tmp_path / "model")
    assert isinstance(tokenizer, XLMRobertaTokenizer)
    sentence = read_split(files[("xnli", "de", "test")], 3)["text_a"].iloc[0]
    ids = tokenizer(sentence)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids
    model = load_classifier(tmp_path / "model", num_labels=3)
    assert type(model).__name__ == "XLMRobertaForSequenceClassification"
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "code.json", "config.json", "model.safetensors", "provenance.json", "tokenizer.json", "tokenizer_config.json",
    ]
    # where the inputs came from, as the download jobs record it: the testbed and its seed
    from alignprune import hub

    assert hub.provenance(tmp_path / "model", files[("xnli", "de", "test")]) == {
        "model_source": "testbed (seed 3)", "model_revision": None, "model_commit": None,
        "data_source": "testbed (seed 3)", "data_revision": None, "data_commit": None,
    }


def test_a_testbed_of_one_pretraining_step_builds(tmp_path):
    """pretrain_steps: 1 (the schema's minimum) is all warm-up: no decay to divide by."""
    settings = tb.TestbedSettings(seed=3, languages=LANGS[:2], hidden_size=16, layers=1, heads=2, pretrain_steps=1,
                                  pretrain_batch_size=4, tokenizer="word", sizes={"train": 8, "validation": 4, "test": 4})
    tb.build_testbed_model(settings, tmp_path / "model", progress=False)
    assert (tmp_path / "model/model.safetensors").exists()


def test_build_refuses_a_tokenizer_that_lacks_a_word_and_leaves_no_model(tmp_path, monkeypatch):
    train_tokenizer, dropped = tb.train_tokenizer, []

    def without_one_word(corpus, out_dir, vocab_size, model_type):  # a corpus that misses one word
        dropped.append(corpus[0].split()[0])
        return train_tokenizer([s for s in corpus if dropped[0] not in s.split()], out_dir, vocab_size, model_type)

    monkeypatch.setattr(tb, "train_tokenizer", without_one_word)
    settings = tb.TestbedSettings(seed=3, languages=LANGS, hidden_size=16, layers=1, heads=2, pretrain_steps=3,
                                  pretrain_batch_size=4, tokenizer="word", sizes={"train": 8, "validation": 4, "test": 4})
    with pytest.raises(RuntimeError, match="the testbed tokenizer lacks the words") as refused:
        tb.build_testbed(settings, tmp_path / "model", {("xnli", "en", "test"): tmp_path / "en.parquet"}, progress=False)
    assert dropped[0] in str(refused.value) and not (tmp_path / "model").exists()


@pytest.mark.parametrize("model_type", ["word", "unigram"])
def test_word_tokenizer_keeps_every_word_of_every_language_one_piece(tmp_path, model_type):
    lex = tb.build_lexicon(LANGS, random.Random(0))
    rng = random.Random(1)
    corpus = [tb.render(tb.random_proposition(rng), spec, lex) for spec in LANGS for _ in range(300)]
    tokenizer = tb.train_tokenizer(corpus, tmp_path, vocab_size=2000, model_type=model_type)
    words = sorted(lex.vocabulary())
    pieces = [len(tokenizer.tokenize(w)) for w in words]
    if model_type == "word":
        assert set(pieces) == {1} and tokenizer.unk_token_id not in tokenizer(corpus[:50])["input_ids"][0]
    else:  # what the word model is for: the unigram model splits some words and not others
        assert max(pieces) > 1 and min(pieces) == 1


def test_demo_config_makes_valid_settings():
    from workflow_helpers import load_config

    demo = load_config("config.yaml", "profiles/demo/testbed.yaml")
    assert demo["testbed"]["enabled"] and demo["gpus_per_job"] == 0
    settings = tb.settings_from_config(demo["testbed"])
    assert settings.languages[0].code == "en"
    assert len(settings.languages) >= 6
    assert {s.order for s in settings.languages} == {"SVO", "SOV"}


# Every knob away from its default, so that a setting the params left out would show.
KNOBS = tb.TestbedSettings(
    seed=4, hidden_size=16, layers=1, heads=2, pretrain_steps=6, pretrain_batch_size=4,
    pretrain_learning_rate=1e-3, parallel_fraction=0.0, vocab_size=1500, paws_synonyms=0.3,
    nli_contrasts=0.2, particles=0.1, tokenizer="word", sizes={"train": 30, "validation": 8, "test": 12},
    languages=[tb.LanguageSpec("en"),
               tb.LanguageSpec("de", order="SOV", parallel=0.5, code_switch=0.1, own_order=0.6),
               tb.LanguageSpec("fr", adjective_after_noun=True, overlap=0.3, shared_negation=True)],
)


@pytest.mark.parametrize("task, split, lang", [("xnli", "test", "de"), ("pawsx", "train", "en"), ("xnli", "validation", "fr")])
def test_a_data_file_made_from_its_job_s_params_equals_the_whole_testbed_s(tmp_path, task, split, lang):
    """The testbed_data job gets data_params only: they must hold all that the file reads."""
    from alignprune.testbed_settings import data_params, settings_from_params

    whole = {(t, lg, s): tmp_path / f"whole_{t}_{lg}_{s}.parquet"
             for t in ("xnli", "pawsx") for lg in ("en", "de", "fr") for s in ("train", "validation", "test")}
    tb.write_testbed_data(KNOBS, whole)
    params = data_params(KNOBS, task, split)
    assert params["sizes"] == {split: KNOBS.sizes[split]} and "vocab_size" not in params
    assert ("nli_contrasts" in params) == (task == "xnli") and ("paws_synonyms" in params) == (task == "pawsx")
    alone = tmp_path / "alone.parquet"
    tb.write_testbed_data(settings_from_params(params), {(task, lang, split): alone})
    pd.testing.assert_frame_equal(pd.read_parquet(alone), pd.read_parquet(whole[(task, lang, split)]))
    assert len(pd.read_parquet(alone)) == KNOBS.sizes[split]


def test_the_model_made_from_its_job_s_params_equals_the_whole_testbed_s(tmp_path):
    """The testbed_model job gets model_params only: they must hold all that the model reads."""
    from safetensors.torch import load_file

    from alignprune.testbed_settings import model_params, settings_from_params

    params = model_params(KNOBS)
    assert not {"sizes", "paws_synonyms", "nli_contrasts"} & set(params)
    tb.build_testbed(KNOBS, tmp_path / "whole", {("xnli", "en", "test"): tmp_path / "en.parquet"}, progress=False)
    tb.build_testbed_model(settings_from_params(params), tmp_path / "alone", progress=False)
    whole, alone = load_file(tmp_path / "whole/model.safetensors"), load_file(tmp_path / "alone/model.safetensors")
    assert whole.keys() == alone.keys() and all(whole[k].equal(alone[k]) for k in whole)
    assert (tmp_path / "whole/tokenizer.json").read_text() == (tmp_path / "alone/tokenizer.json").read_text()
    # and the knobs reach it: the model of the defaults is another
    default = tb.settings_from_config({"seed": 4, "languages": {"en": {}, "de": {}, "fr": {}}, "hidden_size": 16,
                                       "layers": 1, "heads": 2, "pretrain_steps": 3, "pretrain_batch_size": 4})
    tb.build_testbed_model(default, tmp_path / "default", progress=False)
    other = load_file(tmp_path / "default/model.safetensors")
    assert not all(other[k].shape == whole[k].shape and other[k].equal(whole[k]) for k in whole)


def test_params_leave_out_defaults_and_key_order():
    """Snakemake compares params by their text: a default written out, whole numbers for
    floats, or another key order must give the same text; a changed value another."""
    from alignprune.testbed_settings import data_params, model_params

    written = {"seed": 0, "tokenizer": "word", "sizes": {"train": 6000, "validation": 500, "test": 1000},
               "languages": {"en": {}, "de": {"order": "SOV", "parallel": 0.5}, "fr": {"adjective_after_noun": True}}}
    defaults = {"particles": 0, "nli_contrasts": 0.0, "vocab_size": 2000, "sizes": {"test": 1000, "train": 6000, "validation": 500},
                "tokenizer": "word", "seed": 0,
                "languages": {"en": {"own_order": 1}, "de": {"parallel": 0.5, "code_switch": 0.3, "order": "SOV"},
                              "fr": {"shared_negation": False, "adjective_after_noun": True, "overlap": 0}}}
    a, b = tb.settings_from_config(written), tb.settings_from_config(defaults)
    assert repr(model_params(a)) == repr(model_params(b))
    assert repr(data_params(a, "xnli", "test")) == repr(data_params(b, "xnli", "test"))
    assert model_params(a) == {"seed": 0, "languages": [{"code": "en"}, {"code": "de", "order": "SOV", "parallel": 0.5},
                                                        {"code": "fr", "adjective_after_noun": True}], "tokenizer": "word"}
    changed = tb.settings_from_config({**written, "languages": {**written["languages"], "de": {"order": "SOV", "parallel": 1}}})
    assert model_params(changed) != model_params(a)
    # a test size changes the test files' params only; the language order is a setting
    bigger = tb.settings_from_config({**written, "sizes": {**written["sizes"], "test": 999}})
    assert model_params(bigger) == model_params(a) and data_params(bigger, "xnli", "train") == data_params(a, "xnli", "train")
    assert data_params(bigger, "xnli", "test") != data_params(a, "xnli", "test")
    swapped = tb.settings_from_config({**written, "languages": {"en": {}, "fr": {"adjective_after_noun": True},
                                                                "de": {"order": "SOV", "parallel": 0.5}}})
    assert model_params(swapped) != model_params(a) and data_params(swapped, "xnli", "test") != data_params(a, "xnli", "test")


def test_a_partial_sizes_section_keeps_the_other_splits_default_sizes(tmp_path):
    """The schema lets ``testbed.sizes`` name some splits only: the others keep their default
    size, and the params stay those of the sizes written out (a default size reruns nothing)."""
    from alignprune.testbed_settings import data_params, model_params

    base = {"seed": 0, "languages": {"en": {}, "de": {"order": "SOV"}}}
    partial = tb.settings_from_config({**base, "sizes": {"train": 100}})
    assert partial.sizes == {"train": 100, "validation": 500, "test": 1000}
    written = tb.settings_from_config({**base, "sizes": {"test": 1000, "validation": 500, "train": 100}})
    assert repr(model_params(partial)) == repr(model_params(written)) == repr(model_params(tb.settings_from_config(base)))
    for split in ("train", "validation", "test"):
        assert repr(data_params(partial, "xnli", split)) == repr(data_params(written, "xnli", split))
    assert data_params(partial, "pawsx", "train")["sizes"] == {"train": 100}
    assert data_params(partial, "pawsx", "test")["sizes"] == {"test": 1000}
    # a split written at its default size: the params of none written
    default = tb.settings_from_config({**base, "sizes": {"validation": 500}})
    for split in ("train", "validation", "test"):
        assert repr(data_params(default, "xnli", split)) == repr(data_params(tb.settings_from_config(base), "xnli", split))
    files = {("xnli", "en", split): tmp_path / f"{split}.parquet" for split in ("train", "validation", "test")}
    tb.write_testbed_data(partial, files)
    assert {split: len(pd.read_parquet(files[("xnli", "en", split)])) for split in partial.sizes} == partial.sizes


def test_each_split_draws_its_own_propositions_and_shares_no_nli_pair_with_another(tmp_path):
    """Every (testbed seed, task, split) its own seed; the demo's English splits at the demo's
    sizes share no NLI-like pair. The PAWS-like task's are drawn from a smaller world (a pair is
    one proposition, its second sentence following from the first): 6,000 training pairs meet
    one of the 500 validation and one of the 1,000 test pairs by chance (about 1e-3 of them,
    as 6,000 draws of its propositions predict), and the test pins that count."""
    from workflow_helpers import load_config

    seeds = [tb.split_seed(seed, task, split) for seed in range(3) for task in tb.TASK_SEED for split in tb.SPLIT_SEED]
    assert len(set(seeds)) == len(seeds) == 18
    demo = tb.settings_from_config(load_config("config.yaml", "profiles/demo/testbed.yaml")["testbed"])
    assert demo.sizes == {"train": 6000, "validation": 500, "test": 1000}
    splits = ("train", "validation", "test")
    files = {(task, "en", split): tmp_path / f"{task}_{split}.parquet" for task in tb.TASK_SEED for split in splits}
    tb.write_testbed_data(demo, files)
    shared = {}
    for task in tb.TASK_SEED:
        frames = {split: pd.read_parquet(files[(task, "en", split)]) for split in splits}
        pairs = {split: set(zip(frame["text_a"], frame["text_b"])) for split, frame in frames.items()}
        shared[task] = {(a, b): len(pairs[a] & pairs[b]) for a, b in itertools.combinations(splits, 2)}
    assert shared["xnli"] == {("train", "validation"): 0, ("train", "test"): 0, ("validation", "test"): 0}
    assert shared["pawsx"] == {("train", "validation"): 1, ("train", "test"): 1, ("validation", "test"): 0}


def test_translation_pairs_follow_parallel_and_switched_words_follow_code_switch():
    """Over pretraining_batch's draws: each language's share of the translation pairs is its
    ``parallel`` weight over all (none at 0), and the share of a monolingual sentence's words
    swapped into another language is its base language's ``code_switch``. Every language has a
    word order of its own, so a sentence's slots tell its base language where only one order
    fits them (switched words keep their slot); vocabularies are apart, so a word tells its."""
    import re

    specs = [tb.LanguageSpec("en", code_switch=0.1),
             tb.LanguageSpec("de", order="SOV", parallel=1.0, code_switch=0.4),
             tb.LanguageSpec("fr", adjective_after_noun=True, parallel=0.25, code_switch=0.2),
             tb.LanguageSpec("tr", order="SOV", adjective_after_noun=True, parallel=0.0, code_switch=0.0)]
    lex = tb.build_lexicon(specs, random.Random(0))
    owner = {}
    for spec in specs:
        for kind, concepts in lex.words[spec.code].items():
            owner.update({word: (spec.code, kind) for forms in concepts for word in forms})
        owner[lex.neg[spec.code]] = (spec.code, "neg")
    assert len(owner) == sum(len(lex.vocabulary(spec.code)) for spec in specs)  # no word in two languages
    rng = random.Random(1)

    translations = tb.pretraining_batch(specs, lex, 4000, rng, parallel=True)
    targets = []
    for english, translation in translations:
        assert {owner[w][0] for w in english.split()} == {"en"}  # no switching in translation pairs
        (language,) = {owner[w][0] for w in translation.split()}
        targets.append(language)
    shares = pd.Series(targets).value_counts(normalize=True)
    assert set(shares.index) == {"de", "fr"}  # tr has no parallel text
    assert shares["de"] == pytest.approx(1.0 / 1.25, abs=0.03) and shares["fr"] == pytest.approx(0.25 / 1.25, abs=0.03)

    phrase = {False: "(adj )?noun", True: "noun( adj)?"}  # adjective before or after its noun
    orders = {spec.code: re.compile(
        f"^{phrase[spec.adjective_after_noun]} " + ("(neg )?verb " + phrase[spec.adjective_after_noun] if spec.order == "SVO"
                                                    else phrase[spec.adjective_after_noun] + " (neg )?verb") + "$")
        for spec in specs}
    switched = {spec.code: [0, 0] for spec in specs}  # words in another language, words
    for sentence, none in tb.pretraining_batch(specs, lex, 8000, rng, parallel=False):
        assert none is None
        words = sentence.split()
        kinds = " ".join(owner[w][1] for w in words)
        fits = [code for code, pattern in orders.items() if pattern.match(kinds)]
        assert fits  # every sentence in some language's order
        if len(fits) == 1:
            switched[fits[0]][0] += sum(owner[w][0] != fits[0] for w in words)
            switched[fits[0]][1] += len(words)
    for spec in specs:
        foreign, words = switched[spec.code]
        assert words > 2500, switched
        assert foreign / words == pytest.approx(spec.code_switch, abs=0.03), (spec.code, foreign / words)
