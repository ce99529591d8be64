"""Calibration of the demo testbed's transfer, on dense models only.

Builds the testbed of a config, fine-tunes each seed on English for each enabled task
through the workflow's own fine-tuning job, evaluates every configured language's validation
set and prints accuracy and retention r = (acc - chance) / (acc_en - chance) per task, seed
and language, with the calibration targets that fail. Not the test sets, which the demo's
findings measure: settings chosen on them would be chosen on the labels they report
(``--split test`` scores them all the same). Pruned models play no part, so the pruning
outcome is free to come out either way. For the NLI-like task it also scores each model on
pairs that length and negation label wrong (testbed.cue_contrast_frame): whether it compares
the two sentences' words or reads those cues.

    python -m alignprune.calibrate                      # the demo config, its seeds
    python -m alignprune.calibrate --seeds 1 --tasks pawsx \\
        --set testbed.languages.de.overlap=0.4 --set finetune.epochs=3
    python -m alignprune.calibrate --recipes profiles/demo/finetune_recipes.yaml   # choose among recipes

The testbed builds on the demo profile's cores (``cores`` in profiles/demo/config.yaml, the
threads of its testbed_model job: the model depends on them), fine-tuning and evaluation on
``threads.train`` threads (1 in the demo), as the demo's jobs do, so the numbers are the demo's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import yaml

from . import code_version, modeling, results
from .config_check import data_path
from .data import encode
from .evaluate import accuracy
from .operational import task_finetune
from .rule_runtime import quiet_libraries
from .stages.finetune import finetune
from .tasks import task_spec
from .testbed import build_testbed, cue_contrast_frame, settings_from_config, testbed_lexicon
from .tokens import read_tokens, tokenize_files

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ("config.yaml", "profiles/demo/testbed.yaml")
DEMO_PROFILE = "profiles/demo/config.yaml"


@dataclass(frozen=True)
class Targets:
    """XLM-R's transfer profile as the demo's dense models must show it (every seed, every task)."""

    english: float = 0.90  # English accuracy on the split scored (validation by default)
    retention: tuple[float, float] = (0.40, 0.95)  # every evaluated language
    best: float = 0.80  # the best language's retention
    spread: float = 0.20  # best minus worst retention
    languages: int = 5  # evaluated languages besides English


def chance(task: str) -> float:
    return 1.0 / task_spec(task).num_labels


def load(files=DEMO_CONFIG, overrides: list[str] = ()) -> dict:
    """The config as the workflow sees it, with ``key.sub=value`` overrides (YAML values)."""
    from snakemake.utils import update_config

    from .config_check import SCHEMA_FILE, check_config

    config: dict = {}
    for path in files:
        update_config(config, yaml.safe_load((ROOT / path).read_text()))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. testbed.pretrain_steps=1200")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        value = yaml.safe_load(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        node[leaf] = value
    check_config(config, ROOT / SCHEMA_FILE, workdir=ROOT)
    return config


def demo_cores() -> int:
    """The demo profile's cores: the threads its testbed_model job builds the model on."""
    return int(yaml.safe_load((ROOT / DEMO_PROFILE).read_text())["cores"])


def testbed_key(config: dict, files) -> str:
    """What a built testbed depends on: the config's testbed section, its data files, the code
    (code_version's digest of the package) and the threads it is built on (torch's setting)."""
    return json.dumps({"testbed": config["testbed"], "files": sorted(map(list, files)),
                       "code": code_version.CURRENT, "threads": torch.get_num_threads()}, sort_keys=True)


def enabled_tasks(config: dict) -> list[str]:
    return [task for task, spec in config["tasks"].items() if spec["enabled"]]


SPLITS = ("validation", "test")  # what a calibration may score


def build(
    config: dict, work_dir: Path, progress: bool = False, split: str = "validation"
) -> tuple[Path, dict, float]:
    """The testbed of ``config`` with the data of every task it names, under ``work_dir``
    (reused while its settings, the code and torch's threads are unchanged: testbed_key):
    English's training and validation files and every language's ``split``.

    Returns the model folder, the token files (max_length of ``config``) by (task, language,
    split), and the build's seconds (0 when reused)."""
    if split not in SPLITS:
        raise ValueError(f"a calibration scores one of {SPLITS}, not {split!r}")
    files = {}
    for task in config["tasks"]:
        files[(task, "en", "train")] = files[(task, "en", "validation")] = None
        for lang in config["tasks"][task]["languages"]:
            files[(task, lang, split)] = None
    key = testbed_key(config, files)
    root = work_dir / f"testbed-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    files = {k: Path(data_path(root, *k)) for k in files}
    model_dir = root / "pretrained"
    seconds = 0.0
    if not (model_dir.is_dir() and all(path.exists() for path in files.values())):
        started = time.perf_counter()
        build_testbed(settings_from_config(config["testbed"]), model_dir, files, progress=progress)
        seconds = time.perf_counter() - started
        (root / "testbed.json").write_text(key)
    token_root = root / f"tokens-{config['max_length']}"
    tokens = tokenize_files(files, model_dir, lambda key: token_root / key[0] / key[1] / f"{key[2]}.parquet",
                            max_length=config["max_length"], reuse=True)
    return model_dir, tokens, seconds


def measure(
    config: dict,
    seeds: list[int],
    tasks: list[str],
    work_dir: Path,
    *,
    build_threads: int | None = None,
    progress: bool = False,
    split: str = "validation",
) -> tuple[pd.DataFrame, dict]:
    """Dense accuracy per task, seed and language on ``split`` (validation: English's is also the
    set fine-tuning keeps its best step by), and the seconds each step took.

    The testbed builds on ``build_threads`` (the rule's every core; default: the demo profile's
    cores, demo_cores); fine-tuning and evaluation on ``threads.train``, as in the demo."""
    work_dir = Path(work_dir)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(build_threads or demo_cores())
        model_dir, files, build_seconds = build(config, work_dir, progress, split)
        torch.set_num_threads(config["threads"]["train"])
        timings = {"testbed": build_seconds}
        device = torch.device("cpu")
        rows = []
        probes = cue_contrasts(config, model_dir) if "xnli" in tasks else {}
        for task in tasks:
            num_labels = task_spec(task).num_labels
            scored = {
                lang: read_tokens(files[(task, lang, split)], model_dir, max_length=config["max_length"],
                                  num_labels=num_labels)
                for lang in config["tasks"][task]["languages"]
            }
            # named by the fine-tuning settings too, so calibrations of one testbed can run side by side
            settings = task_finetune(config, task)
            recipe = hashlib.sha1(json.dumps([settings, config["max_length"]], sort_keys=True).encode())
            for seed in seeds:
                out_dir = work_dir / f"dense-{model_dir.parent.name}-{recipe.hexdigest()[:8]}-{task}-{seed}"
                shutil.rmtree(out_dir, ignore_errors=True)  # a calibration always fine-tunes anew
                started = time.perf_counter()
                history = finetune(
                    task=task, seed=seed, pretrained_dir=model_dir,
                    train_file=files[(task, "en", "train")], dev_file=files[(task, "en", "validation")],
                    out_dir=out_dir, settings=settings, max_length=config["max_length"],
                    prunable=config["prunable"], device=device, progress=progress,
                )
                timings[f"finetune {task} {seed}"] = time.perf_counter() - started
                model = modeling.load_classifier(out_dir)
                for lang, (encoded, pad_id) in scored.items():
                    result = accuracy(
                        model, encoded, batch_size=config["evaluation"]["batch_size"],
                        pad_id=pad_id, device=device,
                    )
                    row = {"task": task, "seed": seed, "language": lang, "split": split,
                           "accuracy": result["accuracy"], "dev_accuracy": history["best_dev_accuracy"],
                           "best_step": history["best_step"]}
                    if task == "xnli":
                        row["cue_contrast_accuracy"] = accuracy(
                            model, probes[lang], batch_size=config["evaluation"]["batch_size"],
                            pad_id=pad_id, device=device,
                        )["accuracy"]
                    rows.append(row)
    finally:
        torch.set_num_threads(threads)
    return with_retention(pd.DataFrame(rows)), timings


CUE_CONTRASTS = 1000  # pairs per language


def cue_contrasts(config: dict, model_dir: Path) -> dict:
    """Per NLI language: the encoded cue-contrast probe (testbed.cue_contrast_frame), pairs that
    length and negation label wrong. A model that reads only those cues scores 0 on it (without
    particles), one that also tells identical sentences 50, one that compares the two
    sentences' words up to 100."""
    settings = settings_from_config(config["testbed"])
    lexicon, specs = testbed_lexicon(settings), {spec.code: spec for spec in settings.languages}
    tokenizer = modeling.load_tokenizer(model_dir)
    return {lang: encode(tokenizer, cue_contrast_frame(settings, lexicon, specs[lang], CUE_CONTRASTS),
                         config["max_length"])
            for lang in config["tasks"]["xnli"]["languages"]}


def with_retention(table: pd.DataFrame) -> pd.DataFrame:
    """Adds chance and retention (acc - chance) / (acc_en - chance) within each (task, seed):
    results.dense_retention, the formula of the dense_transfer table and the findings."""
    table = table.copy()
    table["chance"] = table["task"].map(chance)
    retention = pd.concat({
        # as eval rows of dense models, in points (the tables' unit; the ratio is the same)
        task: results.dense_retention(rows.assign(method="dense", sparsity_target=0.0,
                                                  accuracy=100 * rows["accuracy"]), "en").stack()
        for task, rows in table.groupby("task", sort=False)
    })
    table["retention"] = [retention[key] for key in zip(table["task"], table["seed"], table["language"])]
    return table


def problems(table: pd.DataFrame, targets: Targets = Targets()) -> list[str]:
    """Every calibration target a (task, seed) misses, in words; empty when all hold."""
    found = []
    low, high = targets.retention
    for (task, seed), group in table.groupby(["task", "seed"]):
        where = f"{task} seed {seed}"
        by_lang = group.set_index("language")
        english = by_lang.loc["en", "accuracy"]
        if english < targets.english:
            found.append(f"{where}: English accuracy {english:.3f} < {targets.english}")
        other = by_lang.drop(index="en")["retention"]
        if len(other) < targets.languages:
            found.append(f"{where}: {len(other)} languages besides English < {targets.languages}")
        for lang, r in other.items():
            if not low <= r <= high:
                found.append(f"{where}: {lang} retention {r:.2f} outside [{low}, {high}]")
        if other.max() < targets.best:
            found.append(f"{where}: best retention {other.max():.2f} < {targets.best}")
        if other.max() - other.min() < targets.spread:
            found.append(f"{where}: retention spread {other.max() - other.min():.2f} < {targets.spread}")
    return found


@dataclass(frozen=True)
class Score:
    """What the selection rule reads of one recipe's calibration."""

    missed: int  # calibration targets missed, over every task and seed
    smallest: float  # the smallest retention of any language, task and seed

    @classmethod
    def of(cls, table: pd.DataFrame, targets: Targets = Targets()) -> "Score":
        return cls(len(problems(table, targets)), float(table.loc[table["language"] != "en", "retention"].min()))


def choose(scores: dict[str, Score], incumbent: str) -> str:
    """The recipe the rule picks: the fewest targets missed, ties to the larger smallest
    retention; the ``incumbent`` (the recipe in use) stays unless another misses strictly fewer
    (a rule fixed before the recipes are scored, so that scoring them cannot move it)."""
    if incumbent not in scores:
        raise ValueError(f"the incumbent recipe {incumbent!r} is not among the recipes: {', '.join(scores)}")
    best = min(scores, key=lambda name: (scores[name].missed, -scores[name].smallest))
    return best if scores[best].missed < scores[incumbent].missed else incumbent


def read_recipes(path: Path) -> tuple[dict[str, list[str]], str]:
    """A recipes file: ``recipes`` (name -> {dotted.key: value}, each an override of the config)
    and ``incumbent`` (the name of the recipe in use). Returns each recipe's --set items and the
    incumbent."""
    spec = yaml.safe_load(Path(path).read_text())
    # JSON is YAML: each value as --set would read it
    recipes = {name: [f"{key}={json.dumps(value)}" for key, value in (overrides or {}).items()]
               for name, overrides in spec["recipes"].items()}
    if spec.get("incumbent") not in recipes:
        raise ValueError(f"{path}: incumbent {spec.get('incumbent')!r} must name one of its recipes: {', '.join(recipes)}")
    return recipes, spec["incumbent"]


def render(table: pd.DataFrame) -> str:
    """Accuracy (%) and retention per language, one row per task and seed, plus the mean over seeds."""
    lines = []
    for task, group in table.groupby("task", sort=False):
        langs = list(dict.fromkeys(group["language"]))
        where = f", {group['split'].iloc[0]} split" if "split" in group else ""
        lines.append(f"{task} (chance {100 * chance(task):.1f}%{where}): accuracy % / retention")
        lines.append("seed  " + "  ".join(f"{lang:>11}" for lang in langs))
        cells = group.set_index(["seed", "language"])
        for seed in dict.fromkeys(group["seed"]):
            lines.append(f"{seed:<4}  " + "  ".join(
                f"{100 * cells.loc[(seed, lang), 'accuracy']:5.1f} / {cells.loc[(seed, lang), 'retention']:.2f}"
                if lang != "en" else f"{100 * cells.loc[(seed, lang), 'accuracy']:11.1f}"
                for lang in langs
            ))
        mean = group.groupby("language")[["accuracy", "retention"]].mean()
        lines.append("mean  " + "  ".join(
            f"{100 * mean.loc[lang, 'accuracy']:5.1f} / {mean.loc[lang, 'retention']:.2f}"
            if lang != "en" else f"{100 * mean.loc[lang, 'accuracy']:11.1f}"
            for lang in langs
        ))
        if "cue_contrast_accuracy" in group and group["cue_contrast_accuracy"].notna().any():
            lines.append(f"{task}: accuracy % on {CUE_CONTRASTS} pairs that length and negation label wrong "
                         "(a model reading only them: 0)")
            probe = group.pivot_table(index="seed", columns="language", values="cue_contrast_accuracy", sort=False)
            for seed, values in probe.iterrows():
                lines.append(f"{seed:<4}  " + "  ".join(f"{100 * values[lang]:11.1f}" for lang in langs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", nargs="+", default=list(DEMO_CONFIG), help="config files, merged in order")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (dotted path, YAML value); repeatable")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the config's seeds")
    parser.add_argument("--tasks", nargs="+", help="default: the config's enabled tasks")
    parser.add_argument("--work-dir", type=Path, default=Path("results/calibration"),
                        help="testbeds (reused while their settings, the code and the build's threads "
                             "are unchanged) and dense models")
    parser.add_argument("--build-threads", type=int, default=None,
                        help=f"threads of the testbed build (default: the demo profile's cores, {demo_cores()})")
    parser.add_argument("--split", choices=SPLITS, default="validation",
                        help="the split every language is scored on (default: validation; test reads the "
                             "labels the demo's findings report)")
    parser.add_argument("--out", type=Path, help="also write the table here (TSV)")
    parser.add_argument("--recipes", type=Path,
                        help="score every recipe of this file (overrides of the config) and print the one "
                             "the selection rule picks (calibrate.choose), e.g. profiles/demo/finetune_recipes.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    quiet_libraries()
    if args.recipes:
        return compare_recipes(args)
    config = load(args.config, args.set)
    tasks = args.tasks or enabled_tasks(config)
    table, timings = measure(config, args.seeds or config["seeds"], tasks, args.work_dir,
                             build_threads=args.build_threads, split=args.split)
    print(render(table))
    print("seconds: " + ", ".join(f"{name} {s:.0f}" for name, s in timings.items()))
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    missed = problems(table)
    print("\n".join(["calibration targets missed:"] + [f"  - {p}" for p in missed]) if missed
          else "every calibration target holds")
    return 1 if missed else 0


def compare_recipes(args) -> int:
    """Every recipe of ``args.recipes`` calibrated in turn (one testbed build while the recipes
    leave the testbed alone), a line of scores per recipe, and the rule's choice."""
    recipes, incumbent = read_recipes(args.recipes)
    configs = {name: load(args.config, [*args.set, *overrides]) for name, overrides in recipes.items()}  # all checked first
    scores, tables = {}, []
    for name, config in configs.items():
        table, _ = measure(config, args.seeds or config["seeds"], args.tasks or enabled_tasks(config), args.work_dir,
                           build_threads=args.build_threads, split=args.split)
        scores[name] = Score.of(table)
        tables.append(table.assign(recipe=name))
        print(f"{name}: {scores[name].missed} targets missed, smallest retention {scores[name].smallest:.3f}", flush=True)
    if args.out:
        pd.concat(tables).to_csv(args.out, sep="\t", index=False)
    print(f"chosen: {choose(scores, incumbent)} (fewest targets missed, ties to the larger smallest retention; "
          f"the incumbent {incumbent} unless another misses strictly fewer; {args.split} split)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
