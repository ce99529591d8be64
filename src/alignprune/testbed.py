"""A synthetic multilingual world for the offline demo.

Concepts (nouns, verbs, adjectives, negation) get their own surface words in
every language; languages differ in word order (SVO or SOV, adjective before
or after the noun) and in how much parallel text links them to English. A
tiny XLM-R is pretrained with masked-LM on code-switched sentences and on
translation pairs, and the two tasks are generated on top:

- xnli: entailment (an adjective dropped), contradiction (negation flipped, and in half
  the pairs with an adjective one adjective dropped too), neutral (an adjective or the
  object changed, or an adjective added);
- pawsx: paraphrase (same proposition, synonyms swapped in) or not (subject
  and object swapped: the same words with another meaning).

Everything is written in the formats of the download stage, so every later
rule runs unchanged. All randomness comes from one seed.
"""

from __future__ import annotations

import itertools
import logging
import random
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from . import code_version, hub
from .data import write_split
from .io import atomic_path
# The settings, apart so that the workflow reads them without importing torch (1 s per start)
from .testbed_settings import LanguageSpec, TestbedSettings, settings_from_config  # noqa: F401

log = logging.getLogger(__name__)

N_NOUNS, N_VERBS, N_ADJECTIVES, N_SYNONYMS = 16, 8, 8, 2
N_PARTICLES = 4  # meaning-free discourse words ("well", "indeed"), drawn only when particles are on
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"


@dataclass(frozen=True)
class Proposition:
    subject: int
    verb: int
    obj: int
    subject_adj: int | None
    object_adj: int | None
    negated: bool
    # which synonym each slot uses: (subject, verb, object, subject_adj, object_adj)
    forms: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)


@dataclass
class Lexicon:
    """words[lang][kind][concept][synonym] -> surface word; neg[lang] -> negation word;
    particles[lang] -> its meaning-free particles (empty unless the testbed uses them)."""

    words: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)
    neg: dict[str, str] = field(default_factory=dict)
    particles: dict[str, list[str]] = field(default_factory=dict)

    def vocabulary(self, lang: str | None = None) -> set[str]:
        """Every word of ``lang`` (content words, negation, particles), or of all languages."""
        words = set()
        for code in [lang] if lang else self.words:
            words |= {w for kind in self.words[code].values() for forms in kind for w in forms}
            words |= {self.neg[code], *self.particles.get(code, [])}
        return words


WORD_ATTEMPTS = 1000  # draws of one word before build_lexicon checks that any is left


def free_word(syllables: int, consonants, vowels, used: set) -> bool:
    """Whether a word of ``syllables`` syllables of these sounds is not yet ``used``."""
    return any("".join(w) not in used
               for w in itertools.product([c + v for c in consonants for v in vowels], repeat=syllables))


def exhausted(code: str, syllables: int, consonants, vowels, n_languages: int, particles: bool) -> str:
    """Why build_lexicon cannot draw a word, and what to change."""
    message = (f"the testbed has run out of {syllables}-syllable words for language {code!r}: all "
               f"{(len(consonants) * len(vowels)) ** syllables} that its {len(consonants)} consonants and "
               f"{len(vowels)} vowels make are taken by the words of the {n_languages} languages")
    if syllables == 1:
        message += (" (each language's negation word" + (" and its particles" if particles else "")
                    + " have one syllable)")
    return message + "; use fewer languages" + (
        ", or no particles (testbed.particles: 0)" if particles and syllables == 1 else "")


def build_lexicon(languages: list[LanguageSpec], rng: random.Random, particles: bool = False) -> Lexicon:
    """Every language's words, drawn from its own sounds and never two alike.

    One-syllable words (the negation word, the particles) are few: about a dozen languages
    with particles can take them all, and then a ValueError says so."""
    lexicon, used, words = Lexicon(), set(), {}
    for spec in languages:
        # Each language draws from its own sound inventory so its words look its own.
        consonants = rng.sample(CONSONANTS, 8)
        vowels = rng.sample(VOWELS, 3)

        def word(syllables: int, consonants=consonants, vowels=vowels, code=spec.code) -> str:
            for attempt in itertools.count(1):
                w = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
                if w not in used:
                    used.add(w)
                    return w
                # After many misses, whether any word is left at all: while one is, the draws
                # go on as before (one is drawn in the end); with none, they would go on forever.
                if attempt == WORD_ATTEMPTS and not free_word(syllables, consonants, vowels, used):
                    raise ValueError(exhausted(code, syllables, consonants, vowels, len(languages), particles))

        words[spec.code] = word
        lexicon.words[spec.code] = {
            kind: [[word(rng.choice((2, 3))) for _ in range(N_SYNONYMS)] for _ in range(n)]
            for kind, n in (("noun", N_NOUNS), ("verb", N_VERBS), ("adj", N_ADJECTIVES))
        }
        lexicon.neg[spec.code] = word(1)
    english = lexicon.words[languages[0].code]
    for spec in languages[1:]:
        # Shared words (cognates, loanwords): a concept keeps English's words where its draw
        # falls below the overlap. Every concept draws whatever the overlap, so the other
        # words stay the same when a language's overlap changes and a larger overlap shares
        # a superset of concepts.
        for kind, concepts in lexicon.words[spec.code].items():
            for concept in range(len(concepts)):
                if rng.random() < spec.overlap:
                    concepts[concept] = list(english[kind][concept])
        if spec.shared_negation:  # drawn all the same above: the other words do not change
            lexicon.neg[spec.code] = lexicon.neg[languages[0].code]
    if particles:  # drawn last, so every other word is the same with particles on or off
        for spec in languages:
            lexicon.particles[spec.code] = [words[spec.code](1) for _ in range(N_PARTICLES)]
    return lexicon


def random_proposition(rng: random.Random, p_adjective: float = 0.7) -> Proposition:
    subject, obj = rng.sample(range(N_NOUNS), 2)
    return Proposition(
        subject=subject,
        verb=rng.randrange(N_VERBS),
        obj=obj,
        subject_adj=rng.randrange(N_ADJECTIVES) if rng.random() < p_adjective else None,
        object_adj=rng.randrange(N_ADJECTIVES) if rng.random() < p_adjective else None,
        negated=rng.random() < 0.5,
        forms=tuple(rng.randrange(N_SYNONYMS) for _ in range(5)),
    )


def render_tokens(p: Proposition, spec: LanguageSpec, lexicon: Lexicon) -> list[tuple[str, int, int]]:
    """The sentence as (kind, concept, synonym) slots in the language's word order."""

    def phrase(noun: int, adj: int | None, noun_form: int, adj_form: int):
        out = [("noun", noun, noun_form)]
        if adj is not None:
            adj_slot = ("adj", adj, adj_form)
            out = out + [adj_slot] if spec.adjective_after_noun else [adj_slot] + out
        return out

    subject = phrase(p.subject, p.subject_adj, p.forms[0], p.forms[3])
    obj = phrase(p.obj, p.object_adj, p.forms[2], p.forms[4])
    verb = ([("neg", 0, 0)] if p.negated else []) + [("verb", p.verb, p.forms[1])]
    return subject + verb + obj if spec.order == "SVO" else subject + obj + verb


def with_particles(slots: list, rng: random.Random | None, rate: float) -> list:
    """The slots with up to two meaning-free particles put in at random places.

    Each of two draws adds one with probability ``rate``. Two sentences with the same
    proposition then seldom line up word for word, as in real text, so a classifier cannot
    compare them position by position.
    No draw is made when ``rate`` is 0, so the data stay as they were without particles."""
    if not rate:
        return slots
    slots = list(slots)
    for _ in range(2):
        if rng.random() < rate:
            slots.insert(rng.randrange(len(slots) + 1), ("particle", rng.randrange(N_PARTICLES), 0))
    return slots


def surface(slot: tuple[str, int, int], lang: str, lexicon: Lexicon) -> str:
    kind, concept, form = slot
    if kind == "neg":
        return lexicon.neg[lang]
    if kind == "particle":
        return lexicon.particles[lang][concept]
    return lexicon.words[lang][kind][concept][form]


def render(
    p: Proposition, spec: LanguageSpec, lexicon: Lexicon, rng: random.Random | None = None, particles: float = 0.0
) -> str:
    slots = with_particles(render_tokens(p, spec, lexicon), rng, particles)
    return " ".join(surface(s, spec.code, lexicon) for s in slots)


# --- tasks -----------------------------------------------------------------


def surface_cue_label(premise: str, hypothesis: str, negation: str) -> int:
    """The label two surface cues give, with no word of the pair compared: the negation word in
    one sentence only -> contradiction (2), a shorter hypothesis -> entailment (0), else neutral
    (1). With ``nli_contrasts`` 0 and no particles this rule labels every NLI-like pair right."""
    if (negation in premise.split()) != (negation in hypothesis.split()):
        return 2
    return 0 if len(hypothesis.split()) < len(premise.split()) else 1


def contrast_nli_example(rng: random.Random, label: int) -> tuple[Proposition, Proposition, int]:
    """A pair whose label the surface cues get wrong, so only comparing the words tells it:
    entailment, the same proposition (the cues say neutral); neutral, an adjective dropped or the
    negation flipped, and the object changed (the cues say entailment or contradiction).
    Contradiction has no such pair here (no antonyms): the usual flipped negation."""
    premise = random_proposition(rng)
    if label == 0:
        return premise, premise, 0
    if label == 1:
        other = rng.choice([n for n in range(N_NOUNS) if n not in (premise.obj, premise.subject)])
        adjectives = [slot for slot in ("subject_adj", "object_adj") if getattr(premise, slot) is not None]
        if adjectives and rng.random() < 0.5:
            return premise, replace(premise, obj=other, **{rng.choice(adjectives): None}), 1
        return premise, replace(premise, obj=other, negated=not premise.negated), 1
    return premise, replace(premise, negated=not premise.negated), 2


def nli_example(rng: random.Random, contrasts: float = 0.0) -> tuple[Proposition, Proposition, int]:
    """(premise, hypothesis, label) with XNLI's labels: 0 entailment, 1 neutral, 2 contradiction.

    With probability ``contrasts`` a pair from contrast_nli_example; else the usual pairs, which
    length and negation alone label (surface_cue_label). No draw is made when it is 0, so the
    data stay as they were."""
    label = rng.randrange(3)
    if contrasts and rng.random() < contrasts:
        return contrast_nli_example(rng, label)
    while True:
        premise = random_proposition(rng)
        adjectives = [slot for slot in ("subject_adj", "object_adj") if getattr(premise, slot) is not None]
        if label == 0:
            if not adjectives:
                continue
            hypothesis = premise
            for slot in rng.sample(adjectives, rng.choice((1, len(adjectives)))):
                hypothesis = replace(hypothesis, **{slot: None})
            return premise, hypothesis, 0
        if label == 2:
            hypothesis = replace(premise, negated=not premise.negated)
            if adjectives and rng.random() < 0.5:
                hypothesis = replace(hypothesis, **{rng.choice(adjectives): None})
            return premise, hypothesis, 2
        change = rng.choice(("adj", "obj", "add"))
        if change == "adj" and adjectives:
            slot = rng.choice(adjectives)
            other = rng.choice([a for a in range(N_ADJECTIVES) if a != getattr(premise, slot)])
            return premise, replace(premise, **{slot: other}), 1
        if change == "obj":
            other = rng.choice([n for n in range(N_NOUNS) if n not in (premise.obj, premise.subject)])
            return premise, replace(premise, obj=other), 1
        empty = [slot for slot in ("subject_adj", "object_adj") if getattr(premise, slot) is None]
        if empty:
            return premise, replace(premise, **{rng.choice(empty): rng.randrange(N_ADJECTIVES)}), 1


def paws_example(rng: random.Random, synonyms: float = 0.15) -> tuple[Proposition, Proposition, int]:
    """(sentence1, sentence2, label), as in PAWS: both classes share most words.

    1 paraphrase: the same proposition; 0 not: subject and object (with or without their
    adjectives) swapped. In both classes every word of the second sentence is then replaced
    by its synonym with probability ``synonyms``, so neither "the same words" nor "other
    words" gives the label away: only who does what to whom does.
    """
    first = random_proposition(rng)
    second, label = first, 1
    if rng.random() < 0.5:
        label = 0
        s, v, o, sa, oa = first.forms
        second = replace(first, subject=first.obj, obj=first.subject, forms=(o, v, s, sa, oa))
        if rng.random() < 0.5:  # the adjectives move with their nouns
            second = replace(
                second, subject_adj=first.object_adj, object_adj=first.subject_adj, forms=(o, v, s, oa, sa)
            )
    forms = tuple(1 - f if rng.random() < synonyms else f for f in second.forms)
    return first, replace(second, forms=forms), label


def task_frame(
    task: str, n: int, spec: LanguageSpec, lexicon: Lexicon, seed: int, paws_synonyms: float = 0.15,
    particles: float = 0.0, nli_contrasts: float = 0.0,
) -> pd.DataFrame:
    """n examples; the same seed gives the same propositions in every language (parallel test sets)."""
    rng = random.Random(seed)
    pairs = [nli_example(rng, nli_contrasts) if task == "xnli" else paws_example(rng, paws_synonyms)
             for _ in range(n)]
    # Word order and particles draw from their own stream (seeded apart from every split's
    # propositions), so the propositions stay parallel across languages.
    return render_pairs(pairs, spec, lexicon, random.Random(f"surface {seed}"), particles)


def render_pairs(pairs: list, spec: LanguageSpec, lexicon: Lexicon, surface_rng: random.Random,
                 particles: float) -> pd.DataFrame:
    """(proposition, proposition, label) triples as text_a, text_b, label in ``spec``'s language."""
    rows = []
    for a, b, label in pairs:
        pair_spec = spec.sentence_order(surface_rng)  # one order for both sentences of a pair
        rows.append((render(a, pair_spec, lexicon, surface_rng, particles),
                     render(b, pair_spec, lexicon, surface_rng, particles), label))
    return pd.DataFrame(rows, columns=["text_a", "text_b", "label"]).astype({"label": "int64"})


# --- pretraining -----------------------------------------------------------


def code_switched(
    p: Proposition, spec: LanguageSpec, others: list[str], lexicon: Lexicon, rng, particles: float = 0.0
) -> str:
    words = []
    for slot in with_particles(render_tokens(p, spec.sentence_order(rng), lexicon), rng, particles):
        lang = rng.choice(others) if rng.random() < spec.code_switch else spec.code
        words.append(surface(slot, lang, lexicon))
    return " ".join(words)


def pretraining_batch(
    languages: list[LanguageSpec], lexicon: Lexicon, batch_size: int, rng: random.Random, parallel: bool,
    particles: float = 0.0,
) -> list[tuple[str, str | None]]:
    """Monolingual (code-switched) sentences, or English sentences paired with a translation."""
    codes = [s.code for s in languages]
    by_code = {s.code: s for s in languages}
    english = languages[0]
    targets = [s for s in languages[1:] if s.parallel > 0]
    batch = []
    for _ in range(batch_size):
        p = random_proposition(rng)
        if parallel and targets:
            target = rng.choices(targets, weights=[s.parallel for s in targets])[0]
            translation = render(p, target.sentence_order(rng), lexicon, rng, particles)
            batch.append((render(p, english, lexicon, rng, particles), translation))
        else:
            spec = by_code[rng.choice(codes)]
            others = [c for c in codes if c != spec.code]
            batch.append((code_switched(p, spec, others, lexicon, rng, particles), None))
    return batch


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, tokenizer, generator, probability=0.15):
    """BERT masking: 15% of tokens, of which 80% <mask>, 10% random, 10% kept."""
    labels = ids.clone()
    chosen = (torch.rand(ids.shape, generator=generator) < probability) & ~special
    labels[~chosen] = -100
    inputs = ids.clone()
    replace_mask = chosen & (torch.rand(ids.shape, generator=generator) < 0.8)
    inputs[replace_mask] = tokenizer.mask_token_id
    randomise = chosen & ~replace_mask & (torch.rand(ids.shape, generator=generator) < 0.5)
    inputs[randomise] = torch.randint(len(tokenizer), ids.shape, generator=generator)[randomise]
    return inputs, labels


def train_tokenizer(corpus: list[str], out_dir: Path, vocab_size: int, model_type: str = "unigram"):
    """A sentencepiece model, loaded through the XLM-R tokenizer class like the real one.

    ``unigram`` (XLM-R's kind) splits some words into pieces and keeps others whole, by their
    frequency in the small corpus: an accident that differs between languages. ``word``
    keeps every word one piece, so no language is segmented unlike English by chance."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    spm_dir = out_dir / "sentencepiece"
    spm_dir.mkdir(parents=True)
    (spm_dir / "corpus.txt").write_text("\n".join(corpus) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(spm_dir / "corpus.txt"),
        model_prefix=str(spm_dir / "sentencepiece.bpe"),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    tokenizer = XLMRobertaTokenizer.from_pretrained(str(spm_dir), model_max_length=512)
    shutil.rmtree(spm_dir)  # the saved tokenizer.json carries the vocabulary
    return tokenizer


def pretrain_model(settings: TestbedSettings, lexicon: Lexicon, tokenizer, progress: bool = True):
    from tqdm.auto import tqdm
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(settings.seed)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        intermediate_size=4 * settings.hidden_size,
        max_position_embeddings=130,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = XLMRobertaForMaskedLM(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.pretrain_learning_rate, weight_decay=0.01)
    warmup = max(1, settings.pretrain_steps // 10)
    decay = max(1, settings.pretrain_steps - warmup)  # 0 for a single step (its warm-up)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (settings.pretrain_steps - s) / decay)),
    )
    rng = random.Random(settings.seed + 1)
    generator = torch.Generator().manual_seed(settings.seed + 2)
    special_ids = torch.tensor(tokenizer.all_special_ids)
    # disable=None: a bar only on a terminal (the testbed job's log gets the lines below)
    for step in tqdm(range(settings.pretrain_steps), disable=None if progress else True, mininterval=5, desc="pretrain"):
        parallel = rng.random() < settings.parallel_fraction
        pairs = pretraining_batch(
            settings.languages, lexicon, settings.pretrain_batch_size, rng, parallel, settings.particles
        )
        if parallel:
            enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
        else:
            enc = tokenizer([a for a, _ in pairs], padding=True, return_tensors="pt")
        ids = enc["input_ids"]
        special = torch.isin(ids, special_ids)
        inputs, labels = mask_tokens(ids, special, tokenizer, generator)
        loss = model(input_ids=inputs, attention_mask=enc["attention_mask"], labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 250 == 0 or step == settings.pretrain_steps - 1:
            log.info("pretrain step %d: masked-LM loss %.4f", step, loss.item())
    return model


def testbed_lexicon(settings: TestbedSettings) -> Lexicon:
    """The words of every language of a testbed: the first draws of its seed."""
    return build_lexicon(settings.languages, random.Random(settings.seed), particles=settings.particles > 0)


def cue_contrast_frame(settings: TestbedSettings, lexicon: Lexicon, spec: LanguageSpec, n: int) -> pd.DataFrame:
    """n NLI-like pairs that length and negation label wrong (contrast_nli_example's entailment
    and neutral pairs, alternately), in ``spec``'s language: a probe of whether a model compares
    the two sentences' words, on which one that reads only those cues scores 0 (without
    particles), and one that answers "identical sentences: entailment, else the cues", or always
    one label, 50%. The same propositions in every language (seeded apart from every split)."""
    rng = random.Random(f"cue contrasts {settings.seed}")
    pairs = [contrast_nli_example(rng, i % 2) for i in range(n)]
    return render_pairs(pairs, spec, lexicon, random.Random(f"cue contrasts surface {settings.seed}"),
                        settings.particles)


def _check_english_first(settings: TestbedSettings) -> None:
    if settings.languages[0].code != "en":
        raise ValueError("the testbed's first language must be English (en), the training language")


SPLIT_SEED = {"train": 11, "validation": 12, "test": 13}
TASK_SEED = {"xnli": 100, "pawsx": 200}


def split_seed(seed: int, task: str, split: str) -> int:
    """The seed of a (task, split)'s propositions, the same in every language: one of its own for
    each testbed seed, task and split, so that no two splits draw the same sequence."""
    return seed * 1000 + TASK_SEED[task] + SPLIT_SEED[split]


def write_testbed_data(settings: TestbedSettings, data_files: dict[tuple[str, str, str], Path]) -> None:
    """Write each requested data file; ``data_files`` maps (task, language, split) to its path.

    A file depends on the settings ``data_params`` names and on no other file: each (task,
    split) has its own seed, shared by all languages (test sets are parallel).
    """
    _check_english_first(settings)
    lexicon = testbed_lexicon(settings)
    by_code = {s.code: s for s in settings.languages}
    unknown = sorted({lang for _, lang, _ in data_files} - set(by_code))
    if unknown:
        raise ValueError(f"testbed has no language {unknown}; it defines {sorted(by_code)}")
    for (task, lang, split), path in sorted(data_files.items()):
        frame = task_frame(
            task,
            settings.sizes[split],
            by_code[lang],
            lexicon,
            seed=split_seed(settings.seed, task, split),
            paws_synonyms=settings.paws_synonyms,
            particles=settings.particles,
            nli_contrasts=settings.nli_contrasts,
        )
        write_split(frame, path, provenance=hub.testbed_record(settings.seed))
        log.info("wrote %s (%d rows)", path, len(frame))


def build_testbed_model(settings: TestbedSettings, model_dir: Path, progress: bool = True) -> None:
    """Write the pretrained model and its tokenizer to ``model_dir`` (they read no data file)."""
    _check_english_first(settings)
    lexicon = testbed_lexicon(settings)
    corpus_rng = random.Random(settings.seed + 3)
    corpus = [
        render(random_proposition(corpus_rng), spec.sentence_order(corpus_rng), lexicon, corpus_rng,
               settings.particles)
        for spec in settings.languages
        for _ in range(2000)
    ]
    with atomic_path(model_dir, directory=True) as tmp:
        tokenizer = train_tokenizer(corpus, tmp, settings.vocab_size, settings.tokenizer)
        words = sorted(lexicon.vocabulary())
        pieces = tokenizer(words, add_special_tokens=False)["input_ids"]  # one batch call, every word
        unknown = [w for w, ids in zip(words, pieces) if tokenizer.unk_token_id in ids]
        if unknown:  # a word model knows only the corpus's words: no word may become <unk>
            raise RuntimeError(f"the testbed tokenizer lacks the words {unknown[:5]}: enlarge its corpus")
        model = pretrain_model(settings, lexicon, tokenizer, progress)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        hub.write_model_record(tmp, hub.testbed_record(settings.seed))
        code_version.write_record(tmp)  # the code that pretrained it


def build_testbed(
    settings: TestbedSettings,
    model_dir: Path,
    data_files: dict[tuple[str, str, str], Path],
    progress: bool = True,
) -> None:
    """The whole testbed at once (calibration, benchmarks): its data files and its model."""
    write_testbed_data(settings, data_files)
    build_testbed_model(settings, model_dir, progress)
