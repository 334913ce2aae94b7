"""The worker image's recipe, rehearsed without a Docker engine.

deploy/docker/Dockerfile copies a few paths of the repository and installs them as a
package. What it copies is read from the Dockerfile itself, built into a wheel and
installed apart from the repository, as the image does; a worker run from that
install alone, outside the checkout, must start and judge batches. This catches what
the editable install of the tests hides: a module or data file outside what the image
copies or the wheel packages (the shipped background model), a path read relative to
the checkout. The base image and the dependency set of the `streams` extra are not
checked here (the venv's packages are used): there is no registry to pull from.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
import time
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

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"


def build_context_paths() -> list[str]:
    """The sources of the build stage's COPY instructions (those not ``--from`` a stage)."""
    dockerfile_parse = pytest.importorskip("dockerfile_parse")
    parser = dockerfile_parse.DockerfileParser(path=str(DOCKERFILE))
    sources: list[str] = []
    for instruction in parser.structure:
        if instruction["instruction"] != "COPY" or "--from" in instruction["value"]:
            continue
        *paths, _destination = instruction["value"].split()
        sources += paths
    return sources


@pytest.fixture(scope="module")
def image_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as the image installs it: only the copied paths, built into a wheel."""
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    context.mkdir()
    for pattern in build_context_paths():
        for found in glob.glob(str(REPO / pattern)):
            path = Path(found)
            if path.is_dir():
                shutil.copytree(
                    path, context / path.name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(path, context / path.name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels, site = root / "wheels", root / "site"
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(wheels), str(context)],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        # Build isolation fetches setuptools from the package index, as docker build does.
        if "Could not find a version" in build.stderr or "NewConnectionError" in build.stderr:
            pytest.skip(f"no package index to build the wheel with: {build.stderr[-300:]}")
        raise AssertionError(f"the image's package does not build:\n{build.stderr}")
    (wheel,) = wheels.glob("cadence-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
    )
    return site


def test_the_image_install_runs_a_worker_that_judges_batches(
    kafka_bootstrap: str, tmp_path: Path, image_install: Path
) -> None:
    run_dir = tmp_path / "run"  # outside the checkout: nothing of it is on the path
    run_dir.mkdir()
    env = {"PYTHONPATH": str(image_install)}
    deployment = Deployment(kafka_bootstrap, tmp_path)
    where = subprocess.run(
        [
            sys.executable,
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
    assert Path(module_file).is_relative_to(image_install)
    assert int(mouse_groups) > 0  # the shipped background, read from the install

    deployment.create_topics()
    start = time.time() * 1000.0 - 120_000.0
    batches = [
        b
        for _, b in Workload(users=2, seed=5, run="image", start_wall_ms=start).batches(until_s=60)
    ]
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)
    deployment.send(batches)
    with running_worker(deployment, label="image", cwd=run_dir, **env):

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
