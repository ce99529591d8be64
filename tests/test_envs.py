"""envs/pipeline.yaml, the conda environment of every rule (--sdm conda): the same pins as
pyproject.toml, and the project itself installed from the checkout."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "envs/pipeline.yaml"
PROJECT = "--editable ${ALIGNPRUNE_ROOT}"


def _name(requirement: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", requirement).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, separator, version = requirement.partition("==")
        assert separator and re.fullmatch(r"[A-Za-z0-9_.-]+", name), f"not an exact pin: {requirement!r}"
        pins[_name(name)] = version
    return pins


def _environment() -> tuple[list, list[str]]:
    """The conda dependencies and the pip list of envs/pipeline.yaml."""
    dependencies = yaml.safe_load(ENV_FILE.read_text())["dependencies"]
    conda = [item for item in dependencies if isinstance(item, str)]
    [pip] = [item["pip"] for item in dependencies if isinstance(item, dict)]
    return conda, pip


def test_env_file_pins_exactly_the_dependencies_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda, pip = _environment()
    assert conda == ["python=3.11", "pip"]
    # every pip entry is a pin, but the project itself
    assert _pins([item for item in pip if item != PROJECT]) == _pins(project["dependencies"])


def test_env_file_installs_the_project_from_the_checkout_the_snakefile_names():
    """Snakemake copies the env file into its conda prefix before conda runs pip from there, so
    the project's path is a variable (pip expands ${NAME}) that the Snakefile sets to its folder."""
    _, pip = _environment()
    assert pip[-1] == PROJECT
    assert "os.environ.update(ALIGNPRUNE_ROOT=workflow.basedir)" in (ROOT / "Snakefile").read_text()
    python = yaml.safe_load(ENV_FILE.read_text())["dependencies"][0].removeprefix("python=")
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    assert f"Programming Language :: Python :: {python}" in classifiers


def test_pip_resolves_the_project_entry_to_this_checkout_from_another_folder(tmp_path):
    """What conda does with the pip list: a requirements file in the env file's folder (here the
    copy's, far from the checkout), pip run there; with ALIGNPRUNE_ROOT set, it finds this project."""
    pytest.importorskip("setuptools")  # the build backend, without build isolation (no network)
    _, pip = _environment()
    requirements = tmp_path / "condaenv.requirements.txt"
    requirements.write_text(pip[-1] + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "--no-build-isolation",
         "-r", requirements.name],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ALIGNPRUNE_ROOT": str(ROOT)},
        capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Would install alignprune-" in result.stdout
