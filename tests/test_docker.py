"""Docker reproduction: build docker/Dockerfile and train the quickstart inside the image.

Runs only where a Docker daemon answers `docker info`; skipped otherwise, with the reason.
The base image never comes from a registry here: set QUEST_DOCKER_BASE_IMAGE to an image present
locally (any image with Python >= 3.10, pip and torch 2.x; see docker/README.md), or have the
Dockerfile's default base image (ARG BASE_IMAGE) pulled already.

Optional environment:
  QUEST_DOCKER_BASE_IMAGE     base image for the build (default: the Dockerfile's ARG BASE_IMAGE)
  QUEST_DOCKER_BUILD_NETWORK  `docker build --network` value, e.g. host when dockerd runs with
                              --bridge=none (the build installs dependencies from PyPI)

Budget: a cached build takes seconds and the run under a minute on 2 CPU cores; the first build
(dependency layer) about one minute more. Hard limits below make the test fail, not hang.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
IMAGE = "quest-test:latest"  # kept after the test so the next build reuses its layers
BUILD_TIMEOUT_S = 480
RUN_TIMEOUT_S = 240
# One short epoch on 200 bundled images, CSV logger only: no network, no credentials.
TRAIN_CMD = [
    "python", "train.py", "experiment=quickstart",
    "trainer.max_epochs=1", "logger=csv", "data.train_subset=200",
]

pytestmark = pytest.mark.slow


def _docker(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _default_base_image() -> str:
    m = re.search(r"^ARG BASE_IMAGE=(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert m, f"{DOCKERFILE} has no `ARG BASE_IMAGE=<default>` line"
    return m.group(1)


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


@pytest.fixture(scope="module")
def base_image() -> str:
    """The base image to build on, or a skip saying why the Docker check cannot run here."""
    if shutil.which("docker") is None:
        pytest.skip("no Docker daemon reachable: docker CLI not found on PATH")
    try:
        info = _docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip("no Docker daemon reachable: `docker info` timed out after 30s")
    if info.returncode != 0:
        pytest.skip(f"no Docker daemon reachable: {_last_line(info.stderr or info.stdout)}")
    requested = os.environ.get("QUEST_DOCKER_BASE_IMAGE", "").strip()
    if requested:
        return requested
    default = _default_base_image()
    if _docker("image", "inspect", default, timeout=30).returncode != 0:
        pytest.skip(
            f"base image {default} is not present locally and QUEST_DOCKER_BASE_IMAGE is unset "
            "(the test does not pull from a registry; see docker/README.md for a local base image)"
        )
    return default


def test_docker_image_trains_quickstart(base_image: str, tmp_path: Path) -> None:
    """Build the image, run a 1-epoch quickstart in it, find a completed results.json in logs/."""
    build = [
        "build", "-f", str(DOCKERFILE), "--build-arg", f"BASE_IMAGE={base_image}", "-t", IMAGE,
    ]
    if os.environ.get("QUEST_DOCKER_BUILD_NETWORK"):
        build += ["--network", os.environ["QUEST_DOCKER_BUILD_NETWORK"]]
    t0 = time.monotonic()
    try:
        built = _docker(*build, str(ROOT), timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"docker build on {base_image} took over {BUILD_TIMEOUT_S}s")
    build_s = time.monotonic() - t0
    assert built.returncode == 0, f"docker build on {base_image} failed:\n{_tail(built.stdout + built.stderr)}"

    logs = tmp_path / "logs"
    logs.mkdir()
    name = f"quest-test-{uuid.uuid4().hex[:12]}"
    run = [
        "run", "--rm", "--name", name,
        # Offline by construction: the quickstart needs no network (bundled data, CSV logger).
        "--network", "none",
        # Files in the mounted folder belong to the test's user, so tmp_path cleans up.
        "--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp",
        "-v", f"{logs}:/workspace/quest/logs",
        IMAGE, *TRAIN_CMD,
    ]
    t1 = time.monotonic()
    try:
        ran = _docker(*run, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _docker("rm", "-f", name, timeout=60)
        pytest.fail(f"quickstart in the container took over {RUN_TIMEOUT_S}s (container removed)")
    run_s = time.monotonic() - t1
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, f"`{' '.join(TRAIN_CMD)}` failed in the container:\n{_tail(output)}"

    found = sorted(logs.glob("runs/*/results.json"))
    assert len(found) == 1, (
        f"expected one logs/runs/<time>/results.json in the mounted folder, found {found} "
        f"(is the daemon on another host, so the bind mount is not this folder?)\n{_tail(output)}"
    )
    results = json.loads(found[0].read_text())
    assert results["status"] == "completed", results
    assert isinstance(results["test_acc"], float) and 0.0 <= results["test_acc"] <= 1.0, results
    assert results["overrides"] == TRAIN_CMD[2:], results["overrides"]
    print(
        f"docker: base {base_image}, build {build_s:.0f}s, run {run_s:.0f}s, "
        f"test_acc {results['test_acc']:.4f}, {found[0].relative_to(tmp_path)}"
    )
