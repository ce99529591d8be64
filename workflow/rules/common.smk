# Targets, path helpers and wildcard constraints shared by every rule.
# Every file named after a model is named by alignprune.model_key (ModelKey, Layout): paths say
# what they hold, results/{task}/seed~{seed}/method~{m}/sparsity~{s}/... (see its docstring).
from pathlib import Path

# report() by another name: at the start of a line in a function, Snakemake reads `report` as
# its report: directive.
from snakemake.exceptions import WorkflowError
from snakemake.io import report as in_report

from alignprune.chosen_weights import SWEEP_WEIGHT, read_chosen_weight, regularized, unregularized_bases
from alignprune.config_check import data_path, pretrained_dir
from alignprune.operational import method_settings
from alignprune import analysis, model_key, results
from alignprune.model_key import Layout, ModelKey, target_label

RESOURCES = config["paths"]["resources"]
RESULTS = config["paths"]["results"]
LOGS = config["paths"]["logs"]
BENCHMARKS = config["paths"]["benchmarks"]
CHECKPOINTS = config["paths"]["checkpoints"]
LAYOUT = Layout.of(config["paths"])
# The rules' model patterns: wildcards {task} {seed} ({method} {sparsity} {weight}, or {variant}).
DENSE_MODEL = ModelKey.pattern(dense=True)
PRUNED_MODEL = ModelKey.pattern()
SWEEP_MODEL = ModelKey.pattern(sweep=True)

TASKS = [task for task, spec in config["tasks"].items() if spec["enabled"]]
TRAIN_LANGUAGE = config["train_language"]
SEEDS = [str(seed) for seed in config["seeds"]]
# Canonical two-decimal strings: one way to print each target.
SPARSITIES = sorted(target_label(s) for s in config["sparsities"])
METHODS = [name for name, spec in config["methods"].items() if spec["enabled"]]
# Retraining controls (criterion none): retrained along the ladder like a method, nothing pruned.
CONTROLS = [m for m in METHODS if config["methods"][m]["criterion"] == "none"]
MODEL_DIR = pretrained_dir(RESOURCES, config["model"])
PRUNABLE = config["prunable"]
# Training and evaluation jobs hold this many units of the "gpu" resource (0 on CPU-only runs).
GPUS_PER_JOB = config["gpus_per_job"]


wildcard_constraints:
    task="|".join(TASKS),
    seed=model_key.SEED_PATTERN,
    method="|".join(METHODS),
    sparsity=model_key.TARGET_PATTERN,
    split="train|validation|test",
    lang=r"[a-z]{2,3}",
    variant=model_key.VARIANT_PATTERN,
    weight=model_key.WEIGHT_PATTERN,


def languages(task):
    return config["tasks"][task]["languages"]


def data_file(task, lang, split):
    """Normalised rows (text_a, text_b, label) of one language and split."""
    return data_path(RESOURCES, task, lang, split)


def token_file(task, lang, split):
    """The same rows as token ids of the pretrained model's tokenizer: what every job reads."""
    return f"{RESOURCES}/tokens/{task}/{lang}/{split}.parquet"


def models(task, seed, dense=True):
    """Every model of a (task, seed): the dense one (unless not ``dense``) and each (method,
    sparsity)."""
    return ([ModelKey.of(task, seed)] if dense else []) + [
        ModelKey.of(task, seed, method, sparsity)
        for method in METHODS
        for sparsity in SPARSITIES
    ]


def checkpoint_dir(wildcards, output):
    """Resumable state of a training job: its output's path under paths.checkpoints, not an output."""
    return f"{CHECKPOINTS}/{Path(output[0]).relative_to(RESULTS)}"


def tensorboard_dir(wildcards, output):
    """TensorBoard event files of a training job: its output's path under paths.tensorboard."""
    return f"{config['paths']['tensorboard']}/{Path(output[0]).relative_to(RESULTS)}"


def eval_pairs(task):
    """(split, language) of every evaluation of one model of a task: one job makes them all."""
    return [(split, lang) for split in config["eval_splits"] for lang in languages(task)]


def all_eval_files(task=None):
    return [
        LAYOUT.eval_file(key, split, lang)
        for t in ([task] if task else TASKS)
        for seed in SEEDS
        for key in models(t, seed)
        for split, lang in eval_pairs(t)
    ]


TABLES = list(results.TABLES)  # named where they are written (alignprune.results, alignprune.analysis)
ANALYSIS_TABLES = list(analysis.TABLES)
TABLE_FORMATS = list(results.FORMATS)


def table_file(task, name, ext="csv"):
    """Every table of a task (and its tidy eval table, evals.csv) is named here."""
    return f"{RESULTS}/tables/{task}/{name}.{ext}"


EVALS_TABLE = table_file("{task}", "evals")  # every eval JSON of a task, one row each


def table_files(task, names=TABLES):
    return [table_file(task, name, ext) for name in names for ext in TABLE_FORMATS]


def reported_tables(names, subcategory):
    """Table files of the {task} wildcard; each CSV is shown in the report with its caption."""
    return [
        (
            in_report(
                path,
                category="{task}",
                subcategory=subcategory,
                caption=f"../report/{Path(path).stem}.rst",
                labels={"table": Path(path).stem.replace("_", " ")},
            )
            if path.endswith(".csv")
            else path
        )
        for path in table_files("{task}", names)
    ]


def plot_file(task, name, ext="png"):
    return f"{RESULTS}/plots/{task}/{name}.{ext}"


def reported_figures(names, subcategory):
    """PNG figures of the {task} wildcard, each shown in the report with its caption."""
    return [
        in_report(
            plot_file("{task}", name),
            category="{task}",
            subcategory=subcategory,
            caption=f"../report/{name}.rst",
            labels={"figure": name.replace("_", " ")},
        )
        for name in names
    ]


def heatmap_files(task):
    """{method: PNG path}: one degradation heatmap per method."""
    return {
        m: plot_file(task, f"degradation_heatmap/{model_key.method_part(m)}")
        for m in METHODS
    }


def bars_files(task):
    """{sparsity: PNG path}: accuracy per language at each target, next to dense."""
    return {
        s: plot_file(task, f"language_bars/{model_key.target_part(s)}")
        for s in SPARSITIES
    }


def with_pdf(pngs):
    """Every figure is written as PNG (report) and PDF (papers)."""
    return [f for png in pngs for f in (png, png.removesuffix(".png") + ".pdf")]


def plot_files(task):
    pngs = [
        plot_file(task, "accuracy_vs_sparsity"),
        plot_file(task, "supervised_vs_zero_shot"),
        *heatmap_files(task).values(),
        *bars_files(task).values(),
    ]
    return with_pdf(pngs)


# The alignment analysis measures the models of a few seeds (one job per model); the weight
# alignment every seed's (a few seconds a job, no data), so that the findings can pair the
# regularized and unregularized models' kept weights by seed.
ANALYSIS = config["analysis"]
ANALYSIS_SEEDS = [str(s) for s in ANALYSIS["seeds"] or config["seeds"][:1]]
ANALYSIS_PLOTS = [
    "weight_alignment",
    "representation_alignment",
    "alignment_vs_accuracy",
]


def weight_alignment_files(task):
    return [
        LAYOUT.weight_alignment_file(key)
        for seed in SEEDS
        for key in models(task, seed, dense=False)
    ]


def representation_languages(task):
    """Languages compared with the training language: every other one (one job per model)."""
    return [lang for lang in languages(task) if lang != TRAIN_LANGUAGE]


def representation_files(task):
    """Every analysed model (dense included) on every language but the training one."""
    return [
        LAYOUT.representation_file(key, config["table_split"], lang)
        for seed in ANALYSIS_SEEDS
        for key in models(task, seed)
        for lang in representation_languages(task)
    ]


def analysis_files(task):
    return table_files(task, ANALYSIS_TABLES) + with_pdf(
        [plot_file(task, name) for name in ANALYSIS_PLOTS]
    )


def findings_files(task):
    """The paper's claims answered (CSV, Markdown); needs a retraining control."""
    return [table_file(task, "findings", ext) for ext in ("csv", "md")]


def all_table_files():
    return [
        f
        for task in TASKS
        for f in table_files(task) + (findings_files(task) if CONTROLS else [])
    ]


def all_plot_files():
    return [f for task in TASKS for f in plot_files(task)]


def all_analysis_files():
    return (
        [f for task in TASKS for f in analysis_files(task)]
        if ANALYSIS["enabled"]
        else []
    )


def reference_model(wildcards):
    """The unpruned model W0 a regularizer aligns to: the dense fine-tuned one, or the pretrained one
    (a method without a regularizer reads none: the dense one, whatever its reference says;
    method_params holds a reference only where the method reads one)."""
    if method_params(wildcards.method).get("reference") == "pretrained":
        return MODEL_DIR
    return LAYOUT.model_dir(ModelKey.from_wildcards(wildcards).dense())


# The regularizer-weight sweep: its own ladder per (method, weight), under results/sweep/.
SWEEP = config["sweep"]
SWEEP_SPARSITIES = sorted(target_label(s) for s in SWEEP["sparsities"]) or SPARSITIES


def sweep_methods():
    """The methods the sweep retrains over their regularizer's grid: the enabled ones with
    `weight: sweep`; where none has it, every enabled method with a regularizer (`snakemake
    sweep` then compares their grids, and no prune job reads the choice). A method with a
    number beside one with `weight: sweep` is not swept: the study would not use its runs.
    Never a retraining control, which the schema keeps free of regularizers."""
    return weight_sweep_methods() or [m for m in METHODS if regularized(config["methods"][m])]


def weight_sweep_methods():
    """The enabled methods with `weight: sweep` (the config check gives each a regularizer)."""
    return [m for m in METHODS if config["methods"][m]["weight"] == SWEEP_WEIGHT]


def sweep_file(task, name):
    """Every file of a task's sweep, beside its models under results/sweep/{task}/, is named here."""
    return f"{RESULTS}/sweep/{task}/{name}"


def sweep_chosen_file(task):
    return sweep_file(task, "chosen_weights.yaml")


def sweep_table_file(task, ext="md"):
    return sweep_file(task, f"regularizer_weights.{ext}")


def sweep_report_files():
    """The sweep's table of every task, when some method's weight comes from the sweep."""
    if not weight_sweep_methods():
        return []
    return [sweep_table_file(task) for task in TASKS]


def sweep_eval_pairs(task):
    """(split, language) of a sweep model's evaluations: the zero-shot languages of the table split."""
    return [(config["table_split"], lang) for lang in representation_languages(task)]


def sweep_eval_files(task):
    """The zero-shot eval files of every sweep model of a task (reported by its sweep table)."""
    return [
        LAYOUT.eval_file(ModelKey.parse(folder), split, lang)
        for folder in sweep_models(task)
        for split, lang in sweep_eval_pairs(task)
    ]


def sweep_references():
    """{regularized method: its unregularized base}, whose weight-0 ladder the sweep table
    reports beside the grid (alignprune.chosen_weights.unregularized_bases: the findings' baselines)."""
    swept = sweep_methods()
    return {method: base for method, base in unregularized_bases(config["methods"]).items()
            if base and method in swept}


def sweep_models(task, references=True):
    """The model folder of every sweep run of a task (sweep_table reads each one's key from it):
    each weight of each method's grid, then (``references``) each unregularized base once, at
    weight 0."""
    runs = [(method, weight) for method in sweep_methods()
            for weight in SWEEP["weights"][config["methods"][method]["regularizer"]]]
    if references:
        runs += [(base, 0) for base in dict.fromkeys(sweep_references().values())]
    return [
        LAYOUT.model_dir(ModelKey.of(task, seed, method, sparsity, weight))
        for method, weight in runs
        for seed in SWEEP["seeds"]
        for sparsity in SWEEP_SPARSITIES
    ]


def start_model(wildcards):
    """Ladder: a target starts from the retrained model of the next lower target (a sweep run:
    of the sweep's targets, with the same weight). Independent: from the dense model."""
    key = ModelKey.from_wildcards(wildcards)
    targets = SPARSITIES if key.weight is None else SWEEP_SPARSITIES
    if key.target not in targets:  # a named output at a target the config does not train
        sweep_own = key.weight is not None and SWEEP["sparsities"]  # else the sweep uses sparsities
        listed = "sweep.sparsities" if sweep_own else "sparsities"
        raise WorkflowError(
            f"sparsity~{key.target} is not among {listed} ({', '.join(targets)}); "
            f"add {key.target} there to train it"
        )
    position = targets.index(key.target)
    if position == 0 or config["schedule"] == "independent":
        return LAYOUT.model_dir(key.dense())
    return LAYOUT.model_dir(key.with_target(targets[position - 1]))


def method_params(method):
    """What the method's jobs read of its config, keys sorted (operational.method_settings): params
    are compared by their text, so a key it does not read, or a default written out, must not show."""
    return method_settings(config["methods"][method], config["schedule"])


def method_spec(wildcards):
    """The method's config; a sweep run puts the weight under test in place of its own, and a
    method with `weight: sweep` the weight its task's sweep chose. A param, so a new choice
    reruns the method's prune jobs and a rewritten but equal choice reruns nothing (keys sorted:
    method_params)."""
    spec = method_params(wildcards.method)
    weight = getattr(wildcards, "weight", None)
    if weight is not None:  # the sweep's unregularized base (weight 0) reads no weight
        return spec | {"weight": float(weight)} if "weight" in spec else spec
    if spec.get("weight") == SWEEP_WEIGHT:
        # Before the sweep has run the choice is unknown: the job keeps "sweep" until the
        # checkpoint (sweep_choice) has run and Snakemake re-evaluates it with the number.
        chosen = sweep_chosen_file(wildcards.task)
        if Path(chosen).exists():
            return spec | {"weight": read_chosen_weight(chosen, wildcards.method)}
    return spec


def chosen_weights(wildcards):
    """The sweep's choice, an input of a prune job of a `weight: sweep` method (not of the sweep's
    own runs): the sweep's checkpoint runs first. ancient(): a rewritten choice file reruns
    nothing by its time stamp; the weight itself is a param (method_spec)."""
    if getattr(wildcards, "weight", None) is not None:
        return []
    if config["methods"][wildcards.method]["weight"] != SWEEP_WEIGHT:
        return []
    return ancient(checkpoints.sweep_choice.get(task=wildcards.task).output.chosen)


# The training-curves figure and kept-steps table (rule training_curves in report.smk).
def training_models(task):
    """The model folder of every training job of the study's task: the dense fine-tunes, then
    the prune jobs (training_curves reads each one's key from it)."""
    return [LAYOUT.model_dir(ModelKey.of(task, seed)) for seed in SEEDS] + [
        LAYOUT.model_dir(ModelKey.of(task, seed, method, sparsity))
        for method in METHODS
        for sparsity in SPARSITIES
        for seed in SEEDS
    ]


def all_curve_files():
    return [f for task in TASKS for f in (plot_file(task, "training_curves"), *table_files(task, ["kept_steps"]))]
