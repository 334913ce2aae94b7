"""The worker's changelog records: resent after a failure, never written for a partition
that moved away (the real RecordSender code path, with librdkafka's producer replaced)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.app import Worker, create_app
from streams.settings import WorkerSettings

PARTITION = 4


class Producer:
    """What RecordSender uses of confluent_kafka.Producer."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes | None, int, Any]] = []

    def produce(self, topic: str, value: Any, key: Any, on_delivery: Any, **kw: Any) -> None:
        self.sent.append((key, value, kw.get("partition"), on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


class TimedOut:
    """What librdkafka reports after message.timeout.ms."""

    def __str__(self) -> str:
        return "Local: Message timed out"


def worker_owning(*partitions: int) -> tuple[Worker, Producer]:
    worker = create_app(WorkerSettings(app_id="cadence-test-changelog", store="memory://"))
    producer = Producer()
    worker.outbox.sender._producer = producer
    worker.owned_partitions = set(partitions)
    return worker, producer


def test_a_tombstone_that_fails_is_sent_again() -> None:
    # Reported with partition -1, it was taken for a record of a partition moved away
    # and dropped: the erased profile stayed in the compacted changelog.
    worker, producer = worker_owning(PARTITION)
    outcomes: list[bool] = []
    worker.outbox.persist(b"victim", None, PARTITION, outcomes.append)
    (key, value, partition, report) = producer.sent[-1]
    report(TimedOut(), None)
    assert [(k, v, p) for k, v, p, _ in producer.sent] == [(b"victim", None, PARTITION)] * 2
    assert outcomes == []  # not settled until Kafka has it


def test_a_failed_state_is_resent_as_it_is_now() -> None:
    worker, producer = worker_owning(PARTITION)
    worker.outbox.persist(b"u", b"old", PARTITION)
    worker.outbox.persist(b"u", b"new", PARTITION)
    producer.sent[0][3](TimedOut(), None)
    assert producer.sent[-1][:3] == (b"u", b"new", PARTITION)


def test_nothing_is_written_for_a_partition_that_moved_away() -> None:
    worker, producer = worker_owning(PARTITION)
    outcomes: list[bool] = []
    worker.outbox.persist(b"u", b"state", PARTITION + 1, outcomes.append)
    assert producer.sent == [] and b"u" not in worker.user_profiles.data
    assert outcomes == [False]
    worker.outbox.persist(b"v", b"state", PARTITION, outcomes.append)
    worker.owned_partitions.clear()  # a rebalance takes it before the report comes
    producer.sent[-1][3](TimedOut(), None)
    assert outcomes == [False, False] and len(producer.sent) == 1


def delivered_at(partition: int, offset: int) -> SimpleNamespace:
    """What librdkafka passes to a delivery report (its partition and offset)."""
    return SimpleNamespace(partition=lambda: partition, offset=lambda: offset)


def test_a_late_report_does_not_move_the_offset_of_a_partition_given_away() -> None:
    # Held as a standby, the partition's database takes its offsets from the replay of
    # the changelog; our record's offset would skip the new owner's records before it.
    worker, producer = worker_owning(PARTITION)
    offsets: list[tuple[int, int]] = []
    store = worker.user_profiles.data
    store.set_persisted_offset = lambda tp, offset: offsets.append((tp.partition, offset))
    outcomes: list[bool] = []
    worker.outbox.persist(b"u", b"state", PARTITION, outcomes.append)
    worker.outbox.persist(b"v", b"state", PARTITION, outcomes.append)
    producer.sent[0][3](None, delivered_at(PARTITION, 10))
    worker.owned_partitions.clear()  # a rebalance takes it; the second report comes late
    producer.sent[1][3](None, delivered_at(PARTITION, 17))
    assert offsets == [(PARTITION, 10)]
    assert outcomes == [True, True]  # both are in Kafka: the batches behind them are done
