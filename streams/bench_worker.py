"""The worker under measurement: a ``cadence worker`` process, its metrics and its costs.

The benchmark starts the worker as a child process of its own (from any source tree, so
``bench/ab.py`` can compare two), reads its ``/metrics``, and times it through
``/proc`` (CPU seconds, RSS). The child dies with the thread that started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.children import dies_with_this_thread
from streams.topics import IsolatedTopics

REPO = Path(__file__).resolve().parent.parent

# Low enough that profiles turn active within the run's simulated minutes.
FAST_ENROLLMENT = {
    "CADENCE_ENROLL_MIN_PRESSES": "200",
    "CADENCE_ENROLL_MIN_ACTIONS": "40",
    "CADENCE_ENROLL_MIN_SESSIONS": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out: dict[str, int] = {}
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    with suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def scrape(web_port: int, timeout: float) -> dict[str, float]:
    """A local worker's /metrics as ``{'name{labels}': value}``."""
    url = f"http://127.0.0.1:{web_port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    web_port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics as ``{'name{labels}': value}``."""
        return scrape(self.web_port, timeout=10)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log}")
        try:
            url = f"http://127.0.0.1:{self.web_port}/health"
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200 and b'"ready":true' in r.read()
        except OSError:
            return False


@contextmanager
def running_worker(
    bootstrap: str,
    topics: IsolatedTopics,
    partitions: int,
    work_dir: Path,
    tree: Path = REPO,
    env_extra: dict[str, str] | None = None,
) -> Iterator[WorkerProcess]:
    """A ``cadence worker`` from the source tree ``tree`` (bench/ab.py runs other trees)."""
    port = free_port()
    log = work_dir / "worker.log"
    env = {
        **os.environ,
        "CADENCE_KAFKA_BOOTSTRAP": bootstrap,
        **topics.worker_env(partitions),
        "PYTHONUNBUFFERED": "1",
        **FAST_ENROLLMENT,
        **(env_extra or {}),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "worker",
                "--web-port",
                str(port),
                "--data-dir",
                str(work_dir / "worker-data"),
                "--loglevel",
                "warning",
            ],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dies_with_this_thread(),
        )
    worker = WorkerProcess(process, port, log)
    try:
        yield worker
    finally:
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class DrainWatch:
    """Ends a drain that cannot finish: past ``timeout_s``, or, once the worker's counter
    has moved, ``stall_s`` without it moving again."""

    def __init__(self, events: int, timeout_s: float, stall_s: float = 120.0) -> None:
        self.events = events
        self.deadline = time.monotonic() + timeout_s
        self.stall_s = stall_s
        self.last = 0.0
        self.last_change = time.monotonic()

    def check(self, consumed: float, now: float) -> None:
        if consumed != self.last:
            self.last, self.last_change = consumed, now
        if now > self.deadline or (consumed > 0 and now - self.last_change > self.stall_s):
            raise TimeoutError(f"worker stuck at {consumed:.0f}/{self.events} events")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class PacedTail:
    """Where the paced phase's tail stood when :func:`settle_paced` returned."""

    consumed: float
    emitted: int  # verdicts of the watched devices the worker emitted (counter delta)
    received: int  # ... and the reader received
    complete: bool


def verdicts_emitted(metrics: dict[str, float]) -> float:
    """``cadence_verdicts_total`` summed over its levels."""
    return sum(v for k, v in metrics.items() if k.startswith("cadence_verdicts_total{"))


def settle_paced(
    metrics: Callable[[], dict[str, float]],
    received: list[tuple[float, Any]],
    devices: set[str],
    consumed_target: float,
    emitted_before: float,
    timeout_s: float,
    *,
    quiet_s: float = 2.0,
    step_s: float = 0.2,
) -> PacedTail:
    """Wait until the worker consumed ``consumed_target`` events, the reader has every
    verdict it emitted since ``emitted_before`` and none came for ``quiet_s``.

    ``received`` is the reader's list of (arrival, verdict), read while it grows; only
    verdicts of ``devices`` count. Short of ``timeout_s``, ``complete`` is False and the
    counts say what was missing. The idle flush of each paced user's last window comes
    ``CADENCE_IDLE_FLUSH_SECONDS`` (30) after the last batch, long after ``quiet_s``.
    """
    deadline = time.monotonic() + timeout_s
    seen = count = 0
    last_arrival = time.monotonic()
    while True:
        now = time.monotonic()
        current = metrics()
        consumed = current.get("cadence_events_consumed_total", 0.0)
        emitted = int(verdicts_emitted(current) - emitted_before)
        # Counted after the scrape: every verdict the worker had emitted by then is in.
        while seen < len(received):
            if received[seen][1].device in devices:
                count, last_arrival = count + 1, now
            seen += 1
        done = consumed >= consumed_target and count >= emitted
        if (done and now - last_arrival >= quiet_s) or now >= deadline:
            return PacedTail(consumed, emitted, count, done)
        time.sleep(step_s)


def histogram_sum_count(metrics: dict[str, float], name: str) -> tuple[float, float]:
    """(sum, count) of histogram ``name`` in a /metrics scrape."""
    return metrics.get(f"{name}_sum", 0.0), metrics.get(f"{name}_count", 0.0)


def py_spy_path() -> Path:
    """The venv's py-spy; a clear error if it is not installed (it is not a dependency)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise FileNotFoundError(
            f"--py-spy needs py-spy in this venv ({spy} is missing): "
            f"{Path(sys.executable).with_name('pip')} install py-spy"
        )
    return spy


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (from this venv) sampling ``pid`` until interrupted, as collapsed stacks."""
    spy = py_spy_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
