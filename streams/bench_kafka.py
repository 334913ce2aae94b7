"""The benchmark's Kafka side: its topics, the load, the ceiling, and what it reads back.

Used by ``cadence bench pipeline`` (:mod:`streams.bench`) and the A/B scripts under
``bench/``. Every client here is a plain confluent-kafka one; the load goes through the
agent's own delivery path (:class:`collectors.delivery.BatchSender`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from streams.topics import IsolatedTopics

if TYPE_CHECKING:
    from collectors.delivery import BatchSender
    from collectors.publish import PublishStats
    from collectors.simulate import Workload
    from collectors.wire import EventBatch


def create_run_topics(
    bootstrap: str,
    topics: IsolatedTopics,
    partitions: int,
    client: Mapping[str, Any] | None = None,
) -> None:
    """``client``: settings added to the admin client's (an operator command's logger)."""
    from streams.admin import create_topics

    create_topics(
        {"bootstrap.servers": bootstrap, **(client or {})}, topics.specs(partitions), timeout=30
    )


def delete_run_topics(
    bootstrap: str, topics: IsolatedTopics, client: Mapping[str, Any] | None = None
) -> None:
    """Drop everything this run created, the worker's changelog included: it is large."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, **(client or {})})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(topics.prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with suppress(Exception):
                future.result(timeout=30)


def profile_changelog(topics: IsolatedTopics) -> str:
    """The changelog Faust creates for the worker's ``user-profiles`` table."""
    return f"{topics.app_id}-user-profiles-changelog"


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 300.0
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of ``topic`` up to its end now, in each partition's order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None:
            return
        last: dict[int, int] = {}
        for partition in found.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high > low:
                last[partition] = high - 1
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in last])
        deadline = time.monotonic() + timeout_s
        while last:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(last)} not read to their end")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            partition, error = msg.partition() or 0, msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    last.pop(partition, None)
                continue
            yield msg.key(), msg.value()
            if (msg.offset() or 0) >= last.get(partition, -1):
                last.pop(partition, None)
    finally:
        consumer.close()


def last_value_sizes(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[bytes, int]:
    """The size of each key's last value; a tombstone (None) removes the key.

    >>> last_value_sizes([(b"a", b"xx"), (b"b", b"y"), (b"a", b"xxxx"), (b"b", None)])
    {b'a': 4}
    """
    sizes: dict[bytes, int] = {}
    for key, value in records:
        if key is None:
            continue
        if value is None:
            sizes.pop(key, None)
        else:
            sizes[key] = len(value)
    return sizes


@contextmanager
def batch_sender(bootstrap: str, topic: str, *, flat_out: bool) -> Iterator[BatchSender]:
    """The agent's own delivery path (a ``BatchSender``), flushed and closed on exit."""
    from collectors.delivery import BatchSender

    sender = BatchSender(
        bootstrap=bootstrap,
        topic=topic,
        # Bigger producer batches: loading the backlog is not what is measured.
        extra_config={"linger.ms": 50, "batch.size": 1 << 20} if flat_out else None,
        window=20_000,
    )
    try:
        yield sender
    except BaseException:
        # Interrupted: the batches no longer matter, and a callback cut short can leave
        # one unacknowledged for good; 120 s spent flushing would hold up the clean-up.
        sender.close(2.0)
        raise
    remaining = sender.close(120.0)
    if remaining:
        raise RuntimeError(f"{remaining} batches not acknowledged by the broker")


def produce(
    bootstrap: str, topic: str, timed: Iterable[tuple[float, EventBatch]], speed: float
) -> PublishStats:
    """Send batches through the agent's own delivery path; returns PublishStats."""
    from collectors.publish import publish

    with batch_sender(bootstrap, topic, flat_out=math.isinf(speed)) as sender:
        return publish(timed, sender, speed=speed, max_pending=50_000)


def on_wall_clock(
    timed: Iterable[tuple[float, EventBatch]],
    origin_wall_ms: float,
    origin_clock: float,
    *,
    wait: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[float, EventBatch]]:
    """Batches generated with ``start_wall_ms=0``, each at ``origin_clock`` + its close time.

    Their wall times are moved to ``origin_wall_ms``: event time 0 is ``origin_clock``,
    the instant pacing starts, however long building the generator took before it.
    """
    from collectors.simulate import pace

    def moved(batch: EventBatch) -> EventBatch:
        return dataclasses.replace(
            batch,
            sent_at_ms=batch.sent_at_ms + origin_wall_ms,
            clock_offset_ms=batch.clock_offset_ms + origin_wall_ms,
        )

    shifted = ((t, (t, moved(batch))) for t, batch in timed)
    return pace(shifted, 1.0, wait=wait, clock=clock, start=origin_clock)


def produce_in_real_time(
    bootstrap: str, topic: str, workload: Workload, seconds: float
) -> tuple[PublishStats, float]:
    """Send ``seconds`` of ``workload`` in real time; returns (PublishStats, origin wall ms).

    The producer is connected and every device stream built (its first batch cut) before
    the clock starts, ~0.1 ms per user: started first, that time made every batch late.
    """
    from collectors.publish import publish

    with batch_sender(bootstrap, topic, flat_out=False) as sender:
        timed = workload.batches(until_s=seconds, start_wall_ms=0.0)
        first = next(timed, None)
        origin_wall_ms, origin_clock = time.time() * 1000.0, time.monotonic()
        batches = on_wall_clock(
            itertools.chain([first] if first is not None else [], timed),
            origin_wall_ms,
            origin_clock,
            wait=lambda s: sender.poll(min(s, 0.1)),
        )
        # Paced above: publish only sends (speed inf never waits).
        stats = publish(batches, sender, speed=math.inf, max_pending=50_000)
    return stats, origin_wall_ms


def measure_ceiling(bootstrap: str, topic: str, expected_batches: int) -> tuple[int, float, float]:
    """(events, wall seconds, CPU seconds) for a plain consumer to read and decode the topic."""
    from confluent_kafka import Consumer

    from collectors.wire import decode_batch

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-ceiling-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    events = batches = 0
    started: float | None = None
    cpu_started = 0.0
    # consume() returns when it has 1000 records or its timeout is up, so the last call
    # waits out the timeout for records that never come: with 1 s, a second added to
    # every drain (a short backlog's ceiling was half of what it is). 20 ms at most now.
    ended = cpu_ended = 0.0
    deadline = time.monotonic() + 600
    try:
        while batches < expected_batches and time.monotonic() < deadline:
            records = consumer.consume(1000, timeout=0.02)
            for msg in records:
                if msg.error():
                    continue
                if started is None:
                    started, cpu_started = time.perf_counter(), time.process_time()
                events += len(decode_batch(msg.value() or b"").events)
                batches += 1
            if records and started is not None:
                ended, cpu_ended = time.perf_counter(), time.process_time()
        elapsed = ended - (started or ended)
        cpu = cpu_ended - cpu_started
    finally:
        consumer.close()
    return events, elapsed, cpu


class VerdictReader(threading.Thread):
    """Collects (arrival wall ms, verdict) from a topic, in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-verdicts-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic], on_assign=self._assigned)
        self.assigned = threading.Event()
        self.stop = threading.Event()
        self.received: list[tuple[float, Any]] = []

    def _assigned(self, consumer: Any, partitions: Any) -> None:
        self.assigned.set()

    def run(self) -> None:
        from streams.verdict import decode_verdict

        # poll() returns as soon as a record is there; consume(n, timeout) waits for n
        # records or the timeout, which stamped arrivals up to that timeout late.
        while not self.stop.is_set():
            msg = self.consumer.poll(0.1)
            if msg is not None and not msg.error():
                self.received.append((time.time() * 1000.0, decode_verdict(msg.value() or b"")))
        self.consumer.close()
