"""Helpers for the collector integration tests: read a topic to its end, a stoppable broker."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_broker import free_port, load_launcher, unique_name


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record now on ``topic``, per partition in offset order (partitions concatenated)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("collector-read"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends: dict[int, int] = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out: dict[int, list[Record]] = {p: [] for p in ends}
        deadline = time.monotonic() + timeout
        while any(not out[p] or out[p][-1].offset < ends[p] - 1 for p in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout} s")
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError(str(msg.error()))
            out[msg.partition()].append(
                Record(
                    msg.partition(), msg.offset(), msg.key(), msg.value(), list(msg.headers() or [])
                )
            )
        return [r for p in sorted(out) for r in out[p]]
    finally:
        consumer.close()


class StoppableBroker:
    """A private broker on fixed ports that a test may stop and start again (same data)."""

    def __init__(self, root: Path) -> None:
        self.launcher: Any = load_launcher()
        self.inst = self.launcher.Instance(root=root, port=free_port(), controller_port=free_port())

    @property
    def bootstrap(self) -> str:
        return str(self.inst.bootstrap)

    def start(self) -> float:
        return float(self.launcher.start(self.inst, timeout=120.0, die_with_parent=True).seconds)

    def stop(self) -> None:
        self.launcher.stop(self.inst, timeout=30.0)


@contextmanager
def stoppable_broker() -> Iterator[StoppableBroker]:
    launcher = load_launcher()
    try:
        launcher.find_java()
        launcher.ensure_jars()
    except launcher.LauncherError as exc:
        pytest.skip(f"cannot start a dedicated Kafka broker: {exc}")
    root = Path(tempfile.mkdtemp(prefix="cadence-kafka-outage-"))
    broker = StoppableBroker(root)
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
