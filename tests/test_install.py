"""Pinned installs: constraints.txt pins every dependency, and the Docker image installs with it (items 13-14)."""
from __future__ import annotations

import re
import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

from conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_constraints_pin_every_dependency_exactly():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version.strip()), line
            pins[_name(name)] = version.strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    missing = [r for r in wanted if _name(r) not in pins]
    assert not missing, missing
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"  # what the README's quickstart installs


def test_docker_image_installs_with_the_constraints():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^COPY .*constraints\.txt", dockerfile, flags=re.MULTILINE)
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs and all("-c constraints.txt" in line for line in installs), installs


def test_docker_readme_gives_cpu_command_before_gpu_and_a_plain_run_for_compose():
    text = (ROOT / "docker" / "README.md").read_text()
    runs = [line for line in text.splitlines() if line.startswith("docker run")]
    assert runs and "--gpus" not in runs[0] and any("--gpus all" in line for line in runs[1:])
    assert "docker run --rm --shm-size=2g -w /workspace/quest" in text  # compose.yaml's equivalent
