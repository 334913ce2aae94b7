"""Workloads and replays through the real delivery path into a real broker.

Every batch must arrive exactly once and, per device, in sequence order: that is what
the stream processor's end-to-end tests rely on when they replay into a broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from collectors.delivery import BatchSender
from collectors.publish import publish
from collectors.replay import keystroke_recordings, replay_timed
from collectors.simulate import Takeover, Workload
from collectors.wire import EventBatch, decode_batch
from streams.cli import main as cadence
from tests.kafka_broker import unique_name


def _create_topic(bootstrap: str, partitions: int = 4) -> str:
    name = unique_name("events")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)], operation_timeout=30
    )
    futures[name].result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if meta and meta.error is None and all(p.leader >= 0 for p in meta.partitions.values()):
            return name
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} has no leaders")


def _consume(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[EventBatch]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("replay-test"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    out: list[EventBatch] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert isinstance(value, bytes)
            batch = decode_batch(value)
            assert msg.key() == batch.user.encode()  # keyed by pseudonym: one user, one partition
            out.append(batch)
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None and msg.value() is not None:
                out.append(decode_batch(msg.value()))  # type: ignore[arg-type]
    finally:
        consumer.close()
    return out


def _assert_once_in_order(sent: list[EventBatch], received: list[EventBatch]) -> None:
    by_device: dict[str, list[int]] = defaultdict(list)
    for batch in received:
        by_device[batch.device].append(batch.seq)
    expected: dict[str, list[int]] = defaultdict(list)
    for batch in sent:
        expected[batch.device].append(batch.seq)
    assert dict(by_device) == dict(expected)
    assert all(seqs == list(range(len(seqs))) for seqs in by_device.values())
    assert sorted(received, key=lambda b: (b.device, b.seq)) == sorted(
        sent, key=lambda b: (b.device, b.seq)
    )


def test_simulated_workload_arrives_once_in_order(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)
    workload = Workload(users=8, seed=3, takeovers=[Takeover(user_index=2, at_s=10.0)])
    sent = [b for _, b in workload.batches(20.0)]
    sender = BatchSender(bootstrap=kafka_bootstrap, topic=topic)
    try:
        stats = publish(workload.batches(20.0), sender, speed=float("inf"))
        assert sender.flush(30.0) == 0
    finally:
        sender.close(5.0)
    assert stats.batches == len(sent)
    _assert_once_in_order(sent, _consume(kafka_bootstrap, topic, len(sent)))


def test_replayed_keystrokes_arrive_once_in_order(kafka_bootstrap: str, tmp_path: Path) -> None:
    for user in ("u1", "u2"):
        (tmp_path / user).mkdir()
        rows = ["type,key,t_ns"]
        for k in range(300):
            t = 1_700_000_000_000_000_000 + k * 120_000_000
            rows += [f"down,'e',{t}", f"up,'e',{t + 80_000_000}"]
        (tmp_path / user / "s.csv").write_text("\n".join(rows) + "\n")
    topic = _create_topic(kafka_bootstrap, partitions=2)
    sent = [b for _, b in replay_timed(keystroke_recordings(tmp_path), start_wall_ms=1.75e12)]
    sender = BatchSender(bootstrap=kafka_bootstrap, topic=topic)
    try:
        publish(
            replay_timed(keystroke_recordings(tmp_path), start_wall_ms=1.75e12),
            sender,
            speed=float("inf"),
        )
        assert sender.flush(30.0) == 0
    finally:
        sender.close(5.0)
    _assert_once_in_order(sent, _consume(kafka_bootstrap, topic, len(sent)))


def test_simulate_command_publishes(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = _create_topic(kafka_bootstrap)
    truth = tmp_path / "truth.json"
    argv = ["simulate", "--bootstrap", kafka_bootstrap, "--topic", topic, "--users", "4"]
    argv += ["--seconds", "5", "--fast", "--takeover", "1@2", "--truth", str(truth), "--quiet"]
    assert cadence(argv) == 0
    assert truth.exists()
    received = _consume(kafka_bootstrap, topic, expected=10**9, timeout=10.0)
    assert len({b.device for b in received}) == 4
    by_device: dict[str, list[int]] = defaultdict(list)
    for b in received:
        by_device[b.device].append(b.seq)
    assert all(seqs == list(range(len(seqs))) for seqs in by_device.values())


def test_producers_default_to_the_events_topic_the_worker_reads(kafka_bootstrap: str) -> None:
    # An operator who renames the events topic by environment (CADENCE_EVENTS_TOPIC, what
    # the worker and `topics create` read) must not leave the producers on the old name.
    topic = _create_topic(kafka_bootstrap)
    argv = [sys.executable, "-m", "streams.cli", "simulate", "--bootstrap", kafka_bootstrap]
    argv += ["--users", "2", "--seconds", "3", "--fast", "--quiet"]
    env = {**os.environ, "CADENCE_EVENTS_TOPIC": topic}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    received = _consume(kafka_bootstrap, topic, expected=10**9, timeout=10.0)
    assert len({b.device for b in received}) == 2
