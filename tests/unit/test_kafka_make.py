"""``deploy/local/kafka.mk``: the make targets agree with the launcher's settings."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_kafka_logs_follows_the_log_where_the_launcher_writes_it(tmp_path: Path) -> None:
    # With CADENCE_KAFKA_CACHE set (deploy/local/README.md, "Settings"), `make kafka-logs`
    # followed .cache/kafka/... all the same: a file that never appears, silently.
    recipe = subprocess.run(
        ["make", "-s", "-n", "-f", "deploy/local/kafka.mk", "kafka-logs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert recipe.startswith("tail ")
    # The recipe's own shell expansion, with `echo` in place of `tail -n 50 -F`.
    echo = recipe.replace("tail -n 50 -F", "echo", 1)

    def shown(env: dict[str, str]) -> str:
        return subprocess.run(
            ["bash", "-c", echo], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    env = {**os.environ, "CADENCE_KAFKA_CACHE": str(tmp_path), "CADENCE_KAFKA_NAME": "other"}
    assert shown(env) == str(tmp_path / "other" / "logs" / "server.log")
    env.pop("CADENCE_KAFKA_CACHE")
    env.pop("CADENCE_KAFKA_NAME")
    assert shown(env) == ".cache/kafka/local/logs/server.log"
