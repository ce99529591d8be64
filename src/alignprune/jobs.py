"""The stage functions' former module, kept so that code not yet moved to ``alignprune.stages``
(calibrate.py, the benchmarks) still imports; new code imports from the stage modules.
Remove once nothing imports it."""

from .stages.alignment import (  # noqa: F401
    LanguageFile,
    measure_representation_alignment,
    measure_representation_alignment_files,
    measure_weight_alignment,
)
from .stages.common import stable_seed  # noqa: F401
from .stages.download import download_model, download_split  # noqa: F401
from .stages.evaluate import EvalFile, evaluate_model, evaluate_model_files  # noqa: F401
from .stages.finetune import finetune, finetune_steps  # noqa: F401
from .stages.keys import parse_variant  # noqa: F401
from .stages.prune import prune_and_retrain  # noqa: F401
