"""The worker's outbox: announcements retried until Kafka has them, acks only then
(the real RecordSender code path, with librdkafka's producer replaced)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams import outbox as outbox_module
from streams.outbox import Outbox
from streams.sender import ProducerFailed, RecordSender


class Producer:
    """What RecordSender uses of confluent_kafka.Producer; refuses the first ``full`` sends."""

    def __init__(self, full: int = 0, refuse: list[KafkaError] | None = None) -> None:
        self.full = full
        self.refuse = refuse or []  # raised (as librdkafka's KafkaException) one per call
        self.sent: list[tuple[str, Any, Any]] = []  # (topic, value, on_delivery)

    def produce(self, topic: str, value: Any, key: Any, on_delivery: Any, **kw: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        if self.refuse:
            raise KafkaException(self.refuse.pop(0))
        self.sent.append((topic, value, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


class Delivered:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def outbox_with(producer: Producer) -> tuple[Outbox, list[str]]:
    sender = RecordSender({}, 0.01, 1024)
    sender._producer = producer
    failures: list[str] = []
    return Outbox(
        sender, table=None, owns=lambda p: True, on_failure=lambda: failures.append("x")
    ), failures


def test_an_announcement_that_fails_is_sent_again_and_acked_once_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_module, "RETRY_AFTER_S", 0.0)
    producer = Producer()
    box, failures = outbox_with(producer)
    acked: list[str] = []

    async def scenario() -> None:
        await box.emit("cadence.verdicts.v1", b"u", b"verdict", lambda: acked.append("v"))
        assert box.in_flight == 1 and acked == []
        producer.sent[-1][2]("Local: Message timed out", None)  # librdkafka's failure report
        assert box.in_flight == 0 and failures == ["x"] and acked == []
        for _ in range(10):  # the retry runs on the loop
            await asyncio.sleep(0)
        assert [s[:2] for s in producer.sent] == [("cadence.verdicts.v1", b"verdict")] * 2
        producer.sent[-1][2](None, Delivered(3, 41))
        assert acked == ["v"] and box.in_flight == 0

    asyncio.run(scenario())


def test_a_full_producer_queue_delays_an_announcement_but_does_not_lose_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_module, "DELIVERY_POLL_S", 0.0)
    producer = Producer(full=3)
    box, _ = outbox_with(producer)
    acked: list[str] = []
    asyncio.run(box.emit("cadence.deadletter.v1", None, b"bad", lambda: acked.append("d")))
    assert [s[:2] for s in producer.sent] == [("cadence.deadletter.v1", b"bad")]
    producer.sent[0][2](None, Delivered(0, 7))
    assert acked == ["d"]


def test_an_announcement_refused_outright_is_sent_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A KafkaException from produce() (not a full queue, not fatal) escaped emit(): the
    # window it belonged to waited for ever, its batches unacked.
    monkeypatch.setattr(outbox_module, "RETRY_AFTER_S", 0.0)
    producer = Producer(refuse=[KafkaError(KafkaError._UNKNOWN_PARTITION, "no partition")])
    box, failures = outbox_with(producer)
    acked: list[str] = []

    async def scenario() -> None:
        await box.emit("cadence.verdicts.v1", b"u", b"verdict", lambda: acked.append("v"))
        assert failures == ["x"] and producer.sent == []
        for _ in range(10):
            await asyncio.sleep(0)
        assert [s[:2] for s in producer.sent] == [("cadence.verdicts.v1", b"verdict")]
        producer.sent[-1][2](None, Delivered(0, 3))
        assert acked == ["v"] and box.in_flight == 0

    asyncio.run(scenario())


class Table:
    """The profile table as the outbox uses it: its store and changelog topic's name."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "user-profiles-changelog")


def test_a_changelog_record_refused_outright_stays_first_and_is_retried_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = Producer(refuse=[KafkaError(KafkaError._UNKNOWN_PARTITION, "no partition")])
    sender = RecordSender({}, 0.01, 1024)
    sender._producer = producer
    failures: list[str] = []
    box = Outbox(sender, Table(), owns=lambda p: True, on_failure=lambda: failures.append("x"))
    now = [100.0]
    monkeypatch.setattr(outbox_module.time, "monotonic", lambda: now[0])
    box.persist(b"u", b"state 1", 0)
    box.persist(b"u", b"state 2", 0)
    assert producer.sent == [] and failures == ["x"] and len(box.changelog_backlog) == 2
    box.deliver_reports()  # at once: not yet (it would be refused as fast as it is polled)
    assert producer.sent == []
    now[0] += outbox_module.RETRY_AFTER_S
    box.deliver_reports()
    assert [value for _, value, _ in producer.sent] == [b"state 1", b"state 2"]


def test_a_fatal_refusal_stops_the_sender_for_good_and_says_so_once() -> None:
    fatal = KafkaError(KafkaError._FATAL, "idempotence broken", fatal=True)
    producer = Producer(refuse=[fatal, fatal])
    box, failures = outbox_with(producer)
    told: list[str] = []
    box.sender.on_fatal = told.append

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(ProducerFailed):
                await box.emit("cadence.verdicts.v1", b"u", b"verdict", lambda: None)

    asyncio.run(scenario())
    assert told == ["idempotence broken"] and box.sender.failed == "idempotence broken"
    # librdkafka's own report of it (error_cb, run from poll) is not told twice
    box.sender.config["error_cb"](fatal)
    assert told == ["idempotence broken"]
