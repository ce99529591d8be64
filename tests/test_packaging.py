"""What a user installs and cites: the supported Pythons, the install split, the licence and citation."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_citation_cff_names_the_software_and_the_paper_it_reproduces():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # the keys CFF 1.2.0 requires, and the licence of the LICENSE file
    assert {"cff-version", "message", "title", "authors"} <= set(cff)
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    [paper] = cff["references"]
    assert paper["title"] == "Aligned Weight Regularizers for Pruning Pretrained Neural Networks"
    assert [a["family-names"] for a in paper["authors"]] == ["O' Neill", "Dutta", "Assem"]
    assert paper["year"] == 2022 and "ACL 2022" in paper["collection-title"]
    assert {"type": "other", "value": "arXiv:2204.01385", "description": "arXiv preprint"} in paper["identifiers"]


def test_license_is_mit_and_declared_in_pyproject():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the alignprune authors\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]


def test_supported_pythons_agree_between_requires_python_and_classifiers():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    versions = [c.rsplit(" ", 1)[1] for c in project["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions == ["3.11", "3.12", "3.13"]


def test_make_install_installs_what_running_needs_and_make_test_adds_the_test_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[=<>]", d)[0].lower() for d in project["dependencies"]}
    assert not runtime & {"pytest", "nbclient", "ipykernel", "accelerate", "datasets"}
    assert "huggingface_hub" in runtime  # imported by the download jobs: pinned, not left to transformers
    assert {"pytest", "accelerate"} <= {d.split("==")[0] for d in project["optional-dependencies"]["test"]}
    assert {"nbclient", "nbformat", "ipykernel"} <= {d.split("==")[0] for d in project["optional-dependencies"]["notebook"]}
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): pyproject.toml\n", 1)[1].split("\n\n", 1)[0]
    assert "pip install --quiet -e .\n" in recipe + "\n" and "[test" not in recipe
    assert "-e '.[test,notebook]'" in makefile.split("$(TEST_STAMP): $(STAMP)\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^test: \$\(TEST_STAMP\)$", makefile, re.M) and re.search(r"^demo: \$\(STAMP\)$", makefile, re.M)
