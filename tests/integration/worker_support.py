"""Real workers for integration tests: start `cadence worker` processes, feed them, read them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from collectors.batch_auth import Signer
from collectors.delivery import BatchSender
from collectors.wire import EventBatch
from streams import bench_worker
from streams.admin import create_topics
from streams.topics import IsolatedTopics
from streams.verdict import Verdict, decode_verdict
from tests.kafka_broker import free_port

REPO = Path(__file__).resolve().parents[2]
CADENCE = [sys.executable, "-m", "streams.cli"]

# Profiles become active after a few minutes of simulated activity, not hours.
FAST_ENROLLMENT = {
    "CADENCE_ENROLL_MIN_PRESSES": "200",
    "CADENCE_ENROLL_MIN_ACTIONS": "40",
    "CADENCE_ENROLL_MIN_SESSIONS": "1",
}


def offline_verdicts(batches: list[EventBatch]) -> list[Verdict]:
    """What `cadence.pipeline.replay` says about ``batches`` under the workers' settings."""
    from streams import judge
    from streams.pipeline import replay

    saved = {k: os.environ.get(k) for k in FAST_ENROLLMENT}
    os.environ.update(FAST_ENROLLMENT)
    judge.enrollment_policy.cache_clear()
    try:
        return list(replay(batches))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        judge.enrollment_policy.cache_clear()


@dataclass
class Deployment:
    """One isolated cadence deployment on the shared test broker: its own topics and group."""

    bootstrap: str
    tmp: Path
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    partitions: int = 4

    @property
    def topics(self) -> IsolatedTopics:
        return IsolatedTopics(self.name)

    @property
    def events(self) -> str:
        return self.topics.events

    @property
    def verdicts(self) -> str:
        return self.topics.verdicts

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "CADENCE_KAFKA_BOOTSTRAP": self.bootstrap,
            **self.topics.worker_env(self.partitions),
            "CADENCE_IDLE_FLUSH_SECONDS": "4",
            "PYTHONUNBUFFERED": "1",
            **FAST_ENROLLMENT,
        }
        env.update(extra)
        return env

    def create_topics(self) -> None:
        create_topics(
            {"bootstrap.servers": self.bootstrap}, self.topics.specs(self.partitions), timeout=30
        )

    def sender(self, signer: Signer | None = None) -> BatchSender:
        return BatchSender(bootstrap=self.bootstrap, topic=self.events, signer=signer)

    def send(self, batches: Iterable[EventBatch], signer: Signer | None = None) -> int:
        """Send ``batches`` (tagged by ``signer`` if given) and wait until acknowledged."""
        sender = self.sender(signer)
        n = 0
        for batch in batches:
            sender.send(batch)
            sender.poll(0)
            n += 1
        assert sender.flush(60) == 0, "batches not acknowledged by the broker"
        sender.close()
        return n

    def produce_raw(
        self, records: Iterable[tuple[bytes | None, bytes]], timestamp_ms: int | None = None
    ) -> None:
        from confluent_kafka import Producer

        # Compressed, so a value over the worker's 1 MB produce limit still fits the topic.
        config = {"bootstrap.servers": self.bootstrap, "acks": "all"}
        config |= {"compression.type": "zstd", "message.max.bytes": 4_000_000}
        producer = Producer(config)
        for key, value in records:
            if timestamp_ms is None:
                producer.produce(self.events, key=key, value=value)
            else:
                producer.produce(self.events, key=key, value=value, timestamp=timestamp_ms)
        assert producer.flush(30) == 0


@dataclass
class WorkerProcess(bench_worker.WorkerProcess):
    """The bench's worker process (``metrics``, ``ready``), which tests also kill."""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with suppress(ProcessLookupError):
            self.process.send_signal(sig)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def running_worker(
    deployment: Deployment,
    label: str = "w",
    cwd: Path = REPO,
    python: str = sys.executable,
    **env: str,
) -> Iterator[WorkerProcess]:
    """A `cadence worker` subprocess, ready (table recovered, partitions assigned)."""
    port = free_port()
    data_dir = deployment.tmp / f"{label}-data"
    log = deployment.tmp / f"{label}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [python, *CADENCE[1:], "worker", "--web-port", str(port), "--data-dir", str(data_dir)],
            cwd=cwd,
            env=deployment.env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(process, port, log)
    try:
        wait_until(worker.ready, timeout=90, what=f"worker {label} ready ({log})")
        yield worker
    finally:
        worker.kill(signal.SIGTERM)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class TopicReader:
    """Reads a whole topic from the beginning, keeping everything seen so far."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []

    def poll(self, seconds: float = 1.0) -> int:
        got = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            self.records.append((msg.key(), msg.value() or b"", list(msg.headers() or [])))
            got += 1
        return got

    def close(self) -> None:
        self.consumer.close()


def read_verdicts(reader: TopicReader) -> list[Verdict]:
    return [decode_verdict(value) for _, value, _ in reader.records]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


def comparable(v: Verdict) -> tuple[object, ...]:
    """A verdict without its emission time (which differs on every run)."""
    return (
        v.verdict_id,
        v.user,
        v.window_start_ms,
        v.window_end_ms,
        v.keyboard_score,
        v.mouse_score,
        v.trust,
        v.level,
        v.enrollment,
        v.events,
    )
