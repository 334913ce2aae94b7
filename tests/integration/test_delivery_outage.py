"""A broker outage, a kill -9 of the sender and a full spool lose nothing silently.

Uses a broker of its own (not the session one) because it stops and restarts it on
the same port. No part of Kafka is mocked.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.delivery import BatchSender
from collectors.metrics import CollectorMetrics
from collectors.spool import SqliteSpool
from collectors.wire import decode_batch
from tests.integration.collector_send_script import make_batch
from tests.integration.collector_support import StoppableBroker, read_topic, stoppable_broker
from tests.kafka_broker import REPO_ROOT, create_topic, unique_name

pytestmark = pytest.mark.slow

OUTAGE_S = 15.0
FAST_RECONNECT = {"reconnect.backoff.max.ms": 500}


@pytest.fixture(scope="module")
def broker() -> Iterator[StoppableBroker]:
    with stoppable_broker() as b:
        yield b


@pytest.fixture
def topic(broker: StoppableBroker) -> str:
    if not broker.launcher._speaks_kafka(broker.inst.host, broker.inst.port):
        broker.start()
    return create_topic(broker.bootstrap, unique_name("collector-outage"), partitions=3)


def seqs_by_device(bootstrap: str, topic: str, device: str) -> list[int]:
    records = read_topic(bootstrap, topic)
    out = []
    for r in records:
        batch = decode_batch(r.value)
        assert dict(r.headers)["cadence-schema"] == b"1"
        if batch.device == device:
            out.append(batch.seq)
    return out


def assert_complete_and_ordered(seqs: list[int], expected: range) -> int:
    """Every expected seq arrived, first arrivals in order; returns the duplicate count."""
    seen: set[int] = set()
    first_arrivals = []
    for s in seqs:
        if s not in seen:
            seen.add(s)
            first_arrivals.append(s)
    missing = sorted(set(expected) - seen)
    assert not missing, f"{len(missing)} batches lost, e.g. {missing[:10]}"
    assert first_arrivals == sorted(first_arrivals), "batches of one device arrived out of order"
    return len(seqs) - len(seen)


def send_for(sender: BatchSender, device: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sender.send(make_batch(device, sender.next_seq(device)))
        sender.poll(0.02)


def test_broker_outage_loses_nothing(broker: StoppableBroker, topic: str, tmp_path: Path) -> None:
    device = "dev-outage"
    sender = BatchSender(
        SqliteSpool(tmp_path / "spool.db", fsync=False),
        bootstrap=broker.bootstrap,
        topic=topic,
        extra_config=FAST_RECONNECT,
    )
    first = sender.next_seq(device)
    send_for(sender, device, 2.0)
    broker.stop()
    send_for(sender, device, OUTAGE_S)
    assert sender.pending > 100, "batches should pile up on the spool while the broker is down"
    broker.start()
    send_for(sender, device, 2.0)
    assert sender.flush(90.0) == 0
    end = sender.next_seq(device)
    sender.close()
    duplicates = assert_complete_and_ordered(
        seqs_by_device(broker.bootstrap, topic, device), range(first, end)
    )
    print(f"outage: {end - first} batches, {duplicates} duplicates, counters {sender.counters}")


def _script(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("collector_send_script.py")), *args]


def test_kill_9_with_broker_down_loses_nothing(
    broker: StoppableBroker, topic: str, tmp_path: Path
) -> None:
    device = "dev-kill9"
    spool = str(tmp_path / "spool.db")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    broker.stop()
    proc = subprocess.Popen(
        _script(spool, broker.bootstrap, topic, device, "100000"),
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    spooled = []
    for line in proc.stdout:
        spooled.append(int(line.split()[1]))
        if len(spooled) > 150:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = SqliteSpool(spool)
    assert left.batches >= 151  # nothing acknowledged: everything is still on disk
    left.close()

    broker.start()
    done = subprocess.run(
        _script(spool, broker.bootstrap, topic, device, "20", "90"),
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    end = int(done.stdout.split()[-1])
    assert end - spooled[0] >= 171
    duplicates = assert_complete_and_ordered(
        seqs_by_device(broker.bootstrap, topic, device), range(spooled[0], end)
    )
    print(f"kill -9: {end - spooled[0]} batches, {duplicates} duplicates")


def test_full_spool_drops_oldest_counted_and_keeps_running(
    broker: StoppableBroker, topic: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    device = "dev-bound"
    metrics = CollectorMetrics()
    window = 10
    sender = BatchSender(
        SqliteSpool(tmp_path / "spool.db", fsync=False, max_batches=50, metrics=metrics),
        bootstrap=broker.bootstrap,
        topic=topic,
        extra_config=FAST_RECONNECT,
        metrics=metrics,
        window=window,
    )
    first = sender.next_seq(device)
    broker.stop()
    with caplog.at_level(logging.WARNING, logger="collectors.spool"):
        for _ in range(200):
            sender.send(make_batch(device, sender.next_seq(device)))
            sender.poll(0)
    assert sender.dropped == 150
    assert metrics.registry.get_sample_value("cadence_collector_dropped_batches_total") == 150
    assert metrics.registry.get_sample_value("cadence_collector_spool_batches") == 50
    assert "spool full" in caplog.text and "150 dropped in total" in caplog.text

    broker.start()
    for _ in range(10):  # still sending after the drop
        sender.send(make_batch(device, sender.next_seq(device)))
    assert sender.flush(90.0) == 0
    # Drops are oldest first, so for one device they are a prefix of the sequence numbers
    # (the 10 sends above may have dropped more if the producer had not reconnected yet).
    dropped = sender.dropped
    sender.close()
    seqs = {s - first for s in seqs_by_device(broker.bootstrap, topic, device)}
    assert set(range(dropped, 210)) <= seqs, "every batch still spooled must arrive"
    lost = set(range(dropped)) - seqs
    # A dropped batch can still arrive if it was handed to the producer before the drop:
    # at most a window of them per round of drops. A second round happens when the 10
    # sends above find the producer not yet reconnected; its rewind hands over the
    # then-oldest batches, which that round drops (seen once in CI: 160 dropped, 147 lost).
    rounds = 1 if dropped == 150 else 2
    assert dropped - rounds * window <= len(lost) <= dropped
