"""After a failed delivery, no newer batch reaches the topic before the failed one's resend.

Consumers drop a batch numbered at or below the last one they accepted as a redelivery:
a newer batch that overtakes a resend turns the resend into a silent loss. A fake
producer stands in for librdkafka: it delivers in produce order at each poll, and fails
the first attempt of the batches it is told to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError

from collectors import delivery
from collectors.delivery import BatchSender
from collectors.spool import MemorySpool
from tests.integration.collector_send_script import make_batch

Report = Callable[[KafkaError | None, Any], None]


class _FakeProducer:
    def __init__(self, fail_first: set[int], error: int) -> None:
        self.queue: list[tuple[bytes, Report]] = []
        self.topic: list[int] = []  # seqs, in the order the broker took them
        self.fail_first = set(fail_first)
        self.error = error

    def produce(
        self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Report
    ) -> None:
        self.queue.append((value, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        queue, self.queue = self.queue, []
        for value, report in queue:
            seq = orjson.loads(value)["seq"]
            if seq in self.fail_first:
                self.fail_first.discard(seq)
                report(KafkaError(self.error), None)
            else:
                self.topic.append(seq)
                report(None, None)
        return 0

    def flush(self, timeout: float = 0) -> int:
        return self.poll()

    def purge(self, **kwargs: Any) -> None:
        pass


def _sender(fake: _FakeProducer) -> BatchSender:
    sender = BatchSender(MemorySpool(), bootstrap="127.0.0.1:1", extra_config={"log_level": 0})
    sender._producer = fake  # type: ignore[assignment]
    return sender


def _drain(sender: BatchSender, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while sender.pending and time.monotonic() < deadline:
        sender.poll(0)
        time.sleep(0.005)


@pytest.mark.parametrize(
    "error", [KafkaError._MSG_TIMED_OUT, KafkaError.TOPIC_AUTHORIZATION_FAILED]
)
def test_a_failed_batch_is_resent_before_any_newer_one(
    monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    monkeypatch.setattr(delivery, "_REWIND_INTERVAL_S", 0.05)
    fake = _FakeProducer({1, 3}, error)
    sender = _sender(fake)
    for seq in range(6):
        # seq 3 fails while the rewind after seq 1's failure is still rate-limited: the
        # sends after it took send()'s fast path and reached the topic first.
        sender.send(make_batch("dev-order", seq))
        sender.poll(0)
    _drain(sender, 5.0)
    assert sender.pending == 0
    assert fake.topic == [0, 1, 2, 3, 4, 5]
    sender.close(0.05)


def test_no_fast_path_while_a_clock_retry_is_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "_CLOCK_RETRY_S", 0.1)
    monkeypatch.setattr(delivery, "_REWIND_INTERVAL_S", 0.2)
    fake = _FakeProducer({1}, KafkaError.INVALID_TIMESTAMP)
    sender = _sender(fake)
    sender.send(make_batch("dev-clock", 0))
    sender._last_rewind = time.monotonic()  # a rewind just happened: the next one waits
    sender.send(make_batch("dev-clock", 1))
    sender.poll(0)  # seq 1 refused: retry in 0.1 s, rewind in 0.2 s
    produced = sender.counters.produced
    sender.send(make_batch("dev-clock", 2))  # produced at once before, ahead of seq 1
    assert sender.counters.produced == produced
    _drain(sender, 5.0)
    assert fake.topic == [0, 1, 2]
    sender.close(0.05)


def test_the_common_path_still_produces_at_once() -> None:
    fake = _FakeProducer(set(), KafkaError._MSG_TIMED_OUT)
    sender = _sender(fake)
    sender._pump()  # the start-up read of the spool found nothing: no backlog
    for seq in range(3):
        sender.send(make_batch("dev-fast", seq))
        assert sender.counters.produced == seq + 1 and not sender._backlog
    sender.poll(0)
    assert fake.topic == [0, 1, 2] and sender.pending == 0
    sender.close(0.05)
