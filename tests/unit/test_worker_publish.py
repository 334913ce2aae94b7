"""Worker.publish with librdkafka's producer replaced: when a window's state is written
and its batches acked, across failed and retried deliveries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from faust.types import TP

from collectors.simulate import Workload
from streams import app as app_module
from streams import outbox, pipeline
from streams.app import Worker, create_app
from streams.pipeline import Judged
from streams.privacy import ForgetRequest
from streams.sender import ProducerFailed
from streams.settings import WorkerSettings
from streams.state import UserState
from streams.topics import DEADLETTER, EVENTS, VERDICTS


class Producer:
    """What RecordSender uses of confluent_kafka.Producer; reports are run by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any]] = []
        self.full = 0  # the next produce calls that find librdkafka's queue full
        self.refuse: KafkaError | None = None  # every produce call refused with it

    def produce(self, topic: str, value: Any, key: Any, on_delivery: Any, **kw: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        if self.refuse is not None:
            raise KafkaException(self.refuse)
        self.sent.append((topic, value, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0

    def to(self, topic: str) -> list[tuple[str, Any, Any]]:
        return [s for s in self.sent if s[0] == topic]

    def changelog(self) -> list[bytes]:
        return [value for topic, value, _ in self.sent if topic.endswith("-changelog")]


class Offset:
    """The message a delivery report carries."""

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 1


class Event:
    """A consumed record, as far as the worker's dead letters read it."""

    class message:  # noqa: N801 - the attribute Faust's events have
        topic, partition, offset, key, value = "cadence.events.v1", 0, 0, b"u", b"{}"

    def __init__(self, n: int) -> None:
        self.n = n


def worker() -> tuple[Worker, Producer, list[Any]]:
    w = create_app(WorkerSettings(app_id="cadence-test-publish", store="memory://"))
    producer = Producer()
    w.outbox.sender._producer = producer
    w.owned_partitions = {0}
    acked: list[Any] = []
    w._ack_all = acked.extend  # type: ignore[method-assign]
    return w, producer, acked


def judged_windows(w: Worker, count: int) -> list[Judged[Any]]:
    judged: list[Judged[Any]] = []
    for n, (_, batch) in enumerate(Workload(users=1, seed=3).batches(until_s=60)):
        w.user_partition[batch.user] = 0
        judged += w.pipeline.add(batch, Event(n))[1]
        if len(judged) >= count:
            return judged[:count]
    raise AssertionError("the workload closed too few windows")


def test_batches_are_acked_only_once_the_state_after_them_is_in_the_changelog() -> None:
    w, producer, acked = worker()
    (window,) = judged_windows(w, 1)
    asyncio.run(w.publish(window))
    assert producer.changelog() == []  # not before the verdict is in Kafka
    producer.to(VERDICTS.name)[0][2](None, Offset())
    assert producer.changelog() == [window.state_bytes] and acked == []
    producer.sent[-1][2](None, Offset())  # the changelog record is in Kafka
    assert acked == window.window.tokens


def test_a_retried_verdict_never_writes_an_older_state_over_a_newer_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "RETRY_AFTER_S", 0.0)
    w, producer, acked = worker()
    first, second = judged_windows(w, 2)

    async def deliveries() -> None:
        await w.publish(first)
        await w.publish(second)
        one, two = producer.to(VERDICTS.name)
        one[2]("Local: Message timed out", None)  # retried
        two[2](None, Offset())
        for _ in range(5):
            await asyncio.sleep(0)
        producer.to(VERDICTS.name)[-1][2](None, Offset())  # the retry lands

    asyncio.run(deliveries())
    assert producer.changelog() == [second.state_bytes]
    stored = UserState.from_bytes(w.user_profiles.data[first.window.user.encode()])
    assert stored.windows == 2


def test_a_failed_window_is_written_only_once_its_dead_letters_are_in_kafka(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("judging failed")

    monkeypatch.setattr(pipeline, "judge_windows", fail)
    w, producer, acked = worker()
    (window,) = judged_windows(w, 1)
    assert window.error is not None
    asyncio.run(w.publish(window))
    letters = producer.to(DEADLETTER.name)
    assert len(letters) == len(window.window.tokens) > 1
    for _, _, report in letters[:-1]:
        report(None, Offset())
    # Written now, a crash would let the redelivered batches pass for duplicates.
    assert producer.changelog() == [] and acked == []
    letters[-1][2](None, Offset())
    producer.sent[-1][2](None, Offset())
    assert producer.changelog() == [window.state_bytes] and acked == window.window.tokens


def test_an_erasure_while_a_publish_waits_is_not_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    # A publish waits while librdkafka's queue is full; an erasure in that pause must not
    # be followed by the state of a window judged before it (the profile would be back).
    monkeypatch.setattr(outbox, "DELIVERY_POLL_S", 0.001)
    w, producer, acked = worker()
    events = 0
    for events, (_, batch) in enumerate(Workload(users=1, seed=3).batches(until_s=60), 1):
        w.user_partition[batch.user] = 0
        w.pipeline.close(batch, Event(events))
        if len(w.pipeline.closed) >= 2:
            break
    user = w.pipeline.closed[0].user

    async def audited(**record: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    w.audit_topic.send = audited  # type: ignore[method-assign]

    async def erase() -> None:
        await asyncio.sleep(0)  # once the publish is waiting
        request = ForgetRequest(user, "r1", "dpo", 1.0)
        erasure = asyncio.ensure_future(w.forget(request, 0))
        for _ in range(1000):
            tombstones = [r for t, v, r in producer.sent if t.endswith("-changelog") and v is None]
            if tombstones:
                tombstones[0](None, Offset())  # the tombstone is in Kafka
                break
            await asyncio.sleep(0.001)
        await asyncio.wait_for(erasure, 5.0)

    async def both() -> None:
        producer.full = 1
        await asyncio.gather(w.judge_closed(), erase())
        for topic, _, report in list(producer.sent):
            if not topic.endswith("-changelog"):
                report(None, Offset())

    asyncio.run(both())
    assert producer.changelog() == [None]
    assert user.encode() not in w.user_profiles.data
    assert len(acked) == events  # every batch acked, none written back


def test_verdict_latency_counts_only_windows_closed_by_their_own_events() -> None:
    # A window cut by the idle flush waits 30 s and more by design: observed, every user
    # who stops typing would push the p99 past the 2 s alert.
    w, producer, acked = worker()
    first, second = judged_windows(w, 2)
    assert first.window.reason == "span"
    second.window.reason = "idle_flush"

    def observed() -> float:
        count = w.metrics.registry.get_sample_value("cadence_verdict_latency_seconds_count")
        return count or 0.0

    asyncio.run(w.publish(first))
    assert observed() == 1.0
    asyncio.run(w.publish(second))
    assert observed() == 1.0


def test_a_producer_that_failed_for_good_ends_the_worker_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Retried through a producer that refuses everything, every window would wait for
    # ever with its batches unacked, and the partitions' commits would stall silently.
    exits: list[int] = []
    monkeypatch.setattr(app_module, "_exit_now", exits.append)
    w, producer, acked = worker()
    w.owns_process = True
    fatal = KafkaError(KafkaError._FATAL, "producer fenced", fatal=True)
    w.outbox.sender.config["error_cb"](fatal)  # what librdkafka calls from poll()
    assert exits == [app_module.EXIT_PRODUCER_FAILED]
    w.outbox.sender.config["error_cb"](KafkaError(KafkaError._TRANSPORT, "broker down"))
    assert exits == [app_module.EXIT_PRODUCER_FAILED]  # a passing error is not fatal


def test_an_embedded_worker_crashes_its_app_when_the_producer_fails_for_good() -> None:
    w, producer, acked = worker()
    crashed: list[BaseException] = []

    async def crash(reason: BaseException) -> None:
        crashed.append(reason)

    w.app.crash = crash  # type: ignore[method-assign]
    (window,) = judged_windows(w, 1)
    producer.refuse = KafkaError(KafkaError._FATAL, "producer fenced", fatal=True)

    async def scenario() -> None:
        with pytest.raises(ProducerFailed):
            await w.publish(window)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert [str(r) for r in crashed] == ["producer fenced"] and acked == []


def test_a_window_revoked_while_its_group_is_sent_is_left_to_the_new_owner() -> None:
    # _on_revoked does not wait for the judging lock: a rebalance while a publish waits on
    # librdkafka's queue dropped the user's partition, and the next publish of the group
    # raised KeyError, leaving every later window of the group (other users' too) unsent.
    w, producer, acked = worker()
    first, second = judged_windows(w, 2)

    async def scenario() -> None:
        await w.publish(first)
        await w._on_revoked(None, {TP(EVENTS.name, 0)})
        await w.publish(second)

    asyncio.run(scenario())
    assert len(producer.to(VERDICTS.name)) == 1  # the first only; nothing acked here
    assert acked == [] and second.window.user not in w.levels


def test_replayed_batches_do_not_hold_a_window_back_from_the_idle_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A record replayed over and over (a redelivery storm, or a collector's credentials
    # used to replay one of its batches) refreshed the idle clock: the window, and its
    # verdict, were held back for as long as the replay went on.
    now = [1000.0]
    monkeypatch.setattr(app_module.time, "monotonic", lambda: now[0])
    w, producer, acked = worker()
    batches = (batch for _, batch in Workload(users=1, seed=3).batches(until_s=60))
    first = next(batch for batch in batches if batch.events)

    async def scenario() -> None:
        await w.accept(first, Event(0))
        for n in range(1, 5):
            now[0] += 10.0
            await w.accept(first, Event(n))  # the same batch again: a duplicate
        assert acked and all(isinstance(e, Event) for e in acked)
        await w.flush_idle()

    asyncio.run(scenario())
    assert w.opened_at == {} and len(producer.to(VERDICTS.name)) == 1


def test_a_queued_state_is_not_written_once_its_partition_moved_away() -> None:
    # librdkafka's queue was full when the window's state was persisted: the record waits
    # in the outbox's backlog. Faust revokes a partition only once its batches are acked,
    # which they are not before the state is written; but a revocation that comes without
    # that wait must not let the next delivery poll write the old owner's state to a
    # changelog partition its new owner writes (after its erasure's tombstone, say).
    w, producer, acked = worker()
    (window,) = judged_windows(w, 1)
    asyncio.run(w.publish(window))
    producer.full = 1  # librdkafka's queue is full when the state is persisted
    producer.to(VERDICTS.name)[0][2](None, Offset())  # the verdict is in Kafka
    assert producer.changelog() == [] and len(w.outbox.changelog_backlog) == 1

    asyncio.run(w._on_revoked(None, {TP(EVENTS.name, 0)}))
    w.outbox.deliver_reports()  # the 20 ms timer, after the rebalance
    assert producer.changelog() == [] and not w.outbox.changelog_backlog
    assert acked == []


def test_a_dead_letter_delivered_after_its_partition_moved_away_is_not_acked() -> None:
    # Acked there, the old owner's consumer would record an offset of a partition it no
    # longer has; the new owner reads the record again and sends its own dead letter.
    w, producer, acked = worker()

    async def scenario() -> None:
        await w.dead_letter(Event(0), "malformed", "batch", "not JSON")
        await w._on_revoked(None, {TP(EVENTS.name, 0)})

    asyncio.run(scenario())
    (letter,) = producer.to(DEADLETTER.name)
    letter[2](None, Offset())
    assert acked == []


def test_a_dead_letter_is_acked_once_kafka_has_it() -> None:
    w, producer, acked = worker()
    event = Event(0)
    asyncio.run(w.dead_letter(event, "malformed", "batch", "not JSON"))
    assert acked == []
    producer.to(DEADLETTER.name)[0][2](None, Offset())
    assert acked == [event]
