"""The worker image's recipe, rehearsed without a Docker engine.

deploy/docker/Dockerfile copies a few paths of the repository into its build stage and
pip-installs them, with the `streams` extra and the RocksDB store, into a venv at the
versions of constraints.txt. The test does the same, reading what is copied and the
install command from the Dockerfile itself: the copied paths are built into a wheel,
installed by that command into a fresh venv, and a worker run from that venv alone,
outside the checkout, with the image's RocksDB store, must start and judge batches.
This catches what the tests' editable install of the whole checkout hides: a module or
data file the image lacks (the shipped background model), a dependency the `streams`
extra does not declare, a path read relative to the checkout. The base image itself is
not checked: there is no registry here.
"""

from __future__ import annotations

import glob
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.simulate import Workload
from tests.integration.worker_support import (
    REPO,
    Deployment,
    TopicReader,
    read_verdicts,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.slow  # ~35 s: a venv installed from pip's cache

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
# What pip says when it cannot reach a package index.
OFFLINE = re.compile(r"NewConnectionError|Could not find a version|No matching distribution")


def build_stage() -> tuple[list[str], list[str]]:
    """The build stage's COPY sources and its ``pip install`` arguments (ARG defaults
    substituted)."""
    dockerfile_parse = pytest.importorskip("dockerfile_parse")
    parser = dockerfile_parse.DockerfileParser(path=str(DOCKERFILE))
    sources: list[str] = []
    install: list[str] = []
    args: dict[str, str] = {}
    for instruction in parser.structure:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "FROM" and sources:
            break  # the runtime stage copies from the build stage only
        if kind == "ARG" and "=" in value:
            name, default = value.split("=", 1)
            args[name] = shlex.split(default)[0] if default else ""
        elif kind == "COPY" and "--from" not in value:
            sources += value.split()[:-1]
        elif kind == "RUN" and re.search(r"\bpip install\b", value):
            value = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), value)
            words = shlex.split(value)
            install = words[words.index("install") + 1 :]
    assert sources and install, "the Dockerfile's build stage no longer reads as expected"
    return sources, install


def run_pip(command: list[str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        if OFFLINE.search(done.stderr):
            pytest.skip(f"no package index to {what}: {done.stderr.strip()[-300:]}")
        raise AssertionError(f"{what} failed:\n{done.stderr}")


@pytest.fixture(scope="module")
def image_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The python of a venv installed as the image's is."""
    sources, install = build_stage()
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    context.mkdir()
    for pattern in sources:
        for found in glob.glob(str(REPO / pattern)):
            path = Path(found)
            if path.is_dir():
                shutil.copytree(
                    path, context / path.name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(path, context / path.name)
    quiet = ["--disable-pip-version-check", "-q"]
    wheels, venv = root / "wheels", root / "venv"
    # Build isolation fetches setuptools from the package index, as docker build does.
    run_pip(
        [
            sys.executable,
            "-m",
            "pip",
            *quiet,
            "wheel",
            "--no-deps",
            "-w",
            str(wheels),
            str(context),
        ],
        "build the image's package",
    )
    (wheel,) = wheels.glob("cadence-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The Dockerfile's own arguments, run in the copied context: ".[streams]" is the wheel.
    arguments = [re.sub(r"^\.(?=\[)", str(wheel), a) for a in install]
    run_pip(
        [str(venv / "bin" / "pip"), *quiet, "install", *arguments],
        "install the image's venv",
        cwd=context,
    )
    yield venv / "bin" / "python"
    shutil.rmtree(root, ignore_errors=True)  # ~350 MB


def test_the_image_install_runs_a_worker_that_judges_batches(
    kafka_bootstrap: str, tmp_path: Path, image_python: Path
) -> None:
    run_dir = tmp_path / "run"  # outside the checkout: nothing of it is on the path
    run_dir.mkdir()
    env = {"CADENCE_STORE": "rocksdb://"}  # the prod overlay's store, from the image's venv
    deployment = Deployment(kafka_bootstrap, tmp_path)
    where = subprocess.run(
        [
            str(image_python),
            "-c",
            "import streams.app; from profiles.background import Background; "
            "print(streams.app.__file__, Background.default().mouse.n_groups)",
        ],
        cwd=run_dir,
        env=deployment.env(**env),
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, f"the image install does not load:\n{where.stderr}"
    module_file, mouse_groups = where.stdout.split()
    assert Path(module_file).is_relative_to(image_python.parent.parent)
    assert int(mouse_groups) > 0  # the shipped background, read from the install

    deployment.create_topics()
    start = time.time() * 1000.0 - 120_000.0
    batches = [
        b
        for _, b in Workload(users=2, seed=5, run="image", start_wall_ms=start).batches(until_s=60)
    ]
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)
    deployment.send(batches)
    with running_worker(deployment, "image", cwd=run_dir, python=str(image_python), **env):

        def judged() -> int:
            reader.poll(1.0)
            return sum(v.events for v in read_verdicts(reader))

        wait_until(
            lambda: judged() >= sum(len(b.events) for b in batches),
            timeout=120,
            what="every event judged by the worker of the image install",
        )
    reader.close()
    assert {v.user for v in read_verdicts(reader)} == {b.user for b in batches}
