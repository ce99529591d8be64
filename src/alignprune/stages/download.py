"""Stage 1: the pretrained model and each task's data splits, read once from the Hub or a local
folder and written in the workflow's own layout; no later stage touches the network."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import code_version, data, hub
from ..io import atomic_path
from ..tasks import task_spec

log = logging.getLogger(__name__)


def download_model(model_id: str, out_dir: str | Path, revision: str = "main") -> dict:
    """Pretrained masked-LM weights and tokenizer in save_pretrained layout, with the record of
    where they came from (hub.PROVENANCE_FILE): the commit ``revision`` resolved to, or a local
    folder's path and digest. Returns that record."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    # model_id: a Hub id or a local save_pretrained folder
    if Path(model_id).is_dir():
        folder = Path(model_id)
        files = [f for f in folder.iterdir() if f.is_file() and any(f.match(p) for p in hub.MODEL_FILES)]
        record = hub.local_record(folder, files)
    else:
        # only the download is the Hub's: an error after it (a full disk, a repository without
        # safetensors weights) is reported as itself, not as the Hub being out of reach
        with hub.downloading(f"the model {model_id}", from_hub=True):
            folder, record = hub.snapshot(model_id, revision, allow_patterns=hub.MODEL_FILES)
    with atomic_path(out_dir, directory=True) as tmp:
        AutoTokenizer.from_pretrained(folder).save_pretrained(tmp)
        AutoModelForMaskedLM.from_pretrained(folder, use_safetensors=True).save_pretrained(tmp)
        hub.write_model_record(tmp, record)
        code_version.write_record(tmp)  # the code that copied it (a local folder's own code.json is not carried)
    log.info("model %s: %s", model_id, record)
    return record


def download_split(task: str, lang: str, split: str, source: dict, out_file: str | Path) -> dict:
    """One language and split of a task, normalised (text_a, text_b, label) with its provenance;
    returns the row counts (read, dropped, written)."""
    spec = task_spec(task)
    # source: {hub: id} or {local: folder} (the schema allows one; the other is absent or null)
    where = f"{task}/{lang}/{split} from {source.get('local') or source['hub']}"
    with hub.downloading(where, from_hub=source.get("local") is None):
        files, record = data.raw_split_files(spec, lang, split, source)
    raw = data.read_raw_files(files)
    try:
        frame, report = data.normalise(spec, raw)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if frame.empty:
        raise ValueError(f"{where}: no usable rows out of {report.rows_in}")
    data.write_split(frame, out_file, provenance=record)
    counts = {
        "rows_in": report.rows_in,
        "dropped_bad_label": report.dropped_bad_label,
        "dropped_placeholder": report.dropped_placeholder,
        "rows_out": report.rows_out,
    }
    log.info("%s/%s/%s: %s from %s", task, lang, split, counts, record)
    return counts
