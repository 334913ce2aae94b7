"""`cadence demo` as an operator runs it: it feeds the topics its worker reads, and it never
leaves that worker behind, whichever way it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.worker_support import CADENCE, REPO, Deployment, TopicReader, wait_until
from tests.kafka_broker import free_port


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _start_demo(deployment: Deployment, port: int) -> subprocess.Popen[bytes]:
    kafka_bootstrap, tmp_path = deployment.bootstrap, deployment.tmp
    with (tmp_path / "demo.out").open("wb") as out:
        return subprocess.Popen(
            [
                *CADENCE, "demo", "--bootstrap", kafka_bootstrap, "--users", "3",
                "--takeover", "1@60", "--seconds", "600", "--rate", "2",
                "--web-port", str(port),
            ],
            cwd=tmp_path,  # the demo writes .cache/demo-worker.log under its directory
            env={**deployment.env(), "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
            # An operator's demo answers Ctrl-C, even when this test session was started
            # in the background by a shell without job control, which ignores SIGINT.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip


def _holders(target: Path) -> list[str]:
    """Processes that hold ``target`` open."""
    return [
        pid for pid in os.listdir("/proc") if pid.isdigit() and _holds(Path("/proc", pid), target)
    ]


def _holds(proc: Path, target: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(target) for fd in (proc / "fd").iterdir())
    except OSError:
        return False


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_demo_feeds_its_topics_and_stops_its_worker(
    kafka_bootstrap: str, tmp_path: Path, stop_signal: int
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=2)
    port = free_port()
    demo = _start_demo(deployment, port)
    events = TopicReader(kafka_bootstrap, deployment.events)
    try:
        log = tmp_path / "demo.out"
        wait_until(lambda: _answers(port), timeout=120, what=f"the demo's worker ({log})")
        # Published where the worker reads (CADENCE_EVENTS_TOPIC), not to the default name.
        wait_until(lambda: events.poll(1.0) > 0, timeout=60, what="batches on the events topic")
        demo.send_signal(stop_signal)  # SIGTERM: a closed terminal, `kill`, a service stop
        demo.wait(timeout=60)
        wait_until(lambda: not _answers(port), timeout=30, what="the demo's worker to stop")
    finally:
        events.close()
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
    worker_log = tmp_path / ".cache" / "demo-worker.log"
    assert worker_log.exists()
    # Nothing still listens on the worker's port and no process holds its log open.
    holders = _holders(worker_log)
    assert holders == [], f"processes left behind: {holders}"


def test_a_demo_killed_outright_takes_its_worker_along(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # kill -9 or the OOM killer leave the demo no time to stop its worker; left running, it
    # would keep consuming and hold the web port the next `make demo` needs.
    port = free_port()
    demo = _start_demo(Deployment(kafka_bootstrap, tmp_path, partitions=2), port)
    try:
        wait_until(lambda: _answers(port), timeout=120, what="the demo's worker")
    finally:
        demo.kill()
        demo.wait(timeout=10)
    wait_until(lambda: not _answers(port), timeout=30, what="the worker to die with the demo")
    worker_log = tmp_path / ".cache" / "demo-worker.log"
    wait_until(lambda: not _holders(worker_log), timeout=30, what="no process holding its log")


def test_demo_rejects_arguments_that_cannot_work_before_touching_kafka() -> None:
    started = time.monotonic()
    for args in (["--users", "3"], ["--rate", "0"], ["--takeover", "4"], ["--seconds", "inf"]):
        result = subprocess.run(
            [*CADENCE, "demo", "--bootstrap", "127.0.0.1:1", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "cadence demo:" in result.stderr
    assert time.monotonic() - started < 60  # no broker timeout was waited out
