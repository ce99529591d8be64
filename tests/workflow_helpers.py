"""Running the workflow from tests: a snakemake subprocess and its job counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Python source that closes every way out to the network: a connection attempt fails (and is
# noted in the file MARKER names, if any). Prepend it to a `python -c` program.
REFUSE_NETWORK = r"""
import socket
def refuse(*args, **kwargs):
    if MARKER:
        open(MARKER, "a").write(f"network call: {args!r}\n")
    raise OSError("network access is not allowed here")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""
# Runs Snakemake's CLI with the network closed; its first argument is the marker file.
NO_NETWORK_CLI = "import sys\nMARKER = sys.argv.pop(1)\n" + REFUSE_NETWORK + "from snakemake.cli import main\nsys.exit(main())\n"


def snakemake(*args: str, network_marker: Path | None = None, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if network_marker is not None:
        command = [sys.executable, "-c", NO_NETWORK_CLI, str(network_marker), *args]
    else:
        command = [sys.executable, "-m", "snakemake", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints: rule -> number of jobs."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    for line in lines[start + 3 :]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def load_config(*files: str | Path) -> dict:
    """The config as the Snakefile sees it: files merged in order, validated, defaults filled."""
    from alignprune.config_check import load_config as load

    return load(*(ROOT / path for path in files), schema_file=ROOT / "workflow/schemas/config.schema.yaml", workdir=ROOT)


def config_section(path: str, values: dict) -> dict:
    """A section of the config as the rules pass it to a stage function: ``values`` checked
    against the schema's part ``path`` ("finetune", "retrain", "gradual", "methods.*") with the
    schema's defaults filled in."""
    from alignprune.config_check import config_section as section

    return section(ROOT / "workflow/schemas/config.schema.yaml", path, values)
