"""`cadence verdicts tail` without --follow shows the verdicts there were at start, then
stops: on a busy topic too, and however long the first fetch takes."""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest

from streams.cli import main
from streams.topics import VERDICTS
from streams.verdict import Verdict, encode_verdict
from tests.kafka_fakes import FakeMessage

POLL_LIMIT = 500  # a tail still polling after this many would never have stopped


def _verdict(i: int) -> bytes:
    return encode_verdict(
        Verdict(
            verdict_id=f"{i:032x}",
            user="a" * 64,
            device="d",
            session="s",
            window_start_ms=1.7e12,
            window_end_ms=1.7e12 + 5000,
            level="trusted",
            trust=90.0,
            keyboard_score=0.1,
            mouse_score=None,
            reasons=(),
            enrollment="active",
            model_version="m",
            emitted_at_ms=1.7e12 + 5100,
            events=10,
        )
    )


class _Metadata:
    def __init__(self, partitions: int) -> None:
        topic = type("Topic", (), {"error": None, "partitions": dict.fromkeys(range(partitions))})
        self.topics = {VERDICTS.name: topic()}


class FakeConsumer:
    """Two partitions holding 3 and 2 verdicts at start; a verdict is appended to
    partition 0 at every poll once reading begins (a live topic); the first fetch comes
    after ``silent_polls`` empty polls (group join, TLS, SCRAM)."""

    silent_polls = 0
    made: list[FakeConsumer] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.logs = {0: [_verdict(i) for i in range(3)], 1: [_verdict(10 + i) for i in range(2)]}
        self.positions: dict[int, int] = {}
        self.subscribed = False
        self.polls = 0
        FakeConsumer.made.append(self)

    def list_topics(self, topic: str, timeout: float | None = None) -> _Metadata:
        return _Metadata(len(self.logs))

    def get_watermark_offsets(self, tp: Any, timeout: float | None = None) -> tuple[int, int]:
        return 0, len(self.logs[tp.partition])

    def assign(self, tps: list[Any]) -> None:
        self.positions = {tp.partition: 0 for tp in tps}

    def subscribe(self, topics: list[str], **kwargs: Any) -> None:
        # A group member gets every partition, from the earliest offset here.
        self.subscribed = True
        self.positions = dict.fromkeys(self.logs, 0)

    def poll(self, timeout: float) -> FakeMessage | None:
        self.polls += 1
        if self.polls > POLL_LIMIT:
            raise AssertionError("still polling: the tail would never stop")
        if self.polls <= self.silent_polls:
            return None
        self.logs[0].append(_verdict(100 + self.polls))  # the topic keeps growing
        # Partitions in turn, as the fetcher serves them.
        order = sorted(self.positions, key=lambda p: (p - self.polls) % len(self.logs))
        for partition in order:
            offset = self.positions[partition]
            if offset < len(self.logs[partition]):
                self.positions[partition] = offset + 1
                return FakeMessage(partition, offset, self.logs[partition][offset])
        return None

    def close(self) -> None:
        pass


@pytest.fixture
def fake_consumer(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    FakeConsumer.made = []
    FakeConsumer.silent_polls = 0
    monkeypatch.setattr(confluent_kafka, "Consumer", FakeConsumer)
    return FakeConsumer


def test_a_busy_topic_is_read_to_its_end_at_start_then_the_tail_stops(
    fake_consumer: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verdicts", "tail", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count('"verdict_id"') == 5  # the 3 + 2 there were, none of the later ones
    assert fake_consumer.made[0].config["enable.partition.eof"] is True


def test_a_partition_read_to_its_end_shows_nothing_written_since(
    fake_consumer: type[FakeConsumer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The growing partition (0) is finished first, the other still has 5 to read: the
    # verdicts appended to 0 meanwhile were printed (11 instead of 6).
    def uneven(self: FakeConsumer, config: dict[str, Any]) -> None:
        FakeConsumer.__init__(self, config)
        self.logs = {0: [_verdict(0)], 1: [_verdict(10 + i) for i in range(5)]}

    monkeypatch.setattr(
        confluent_kafka, "Consumer", type("Uneven", (FakeConsumer,), {"__init__": uneven})
    )
    assert main(["verdicts", "tail", "--json"]) == 0
    assert capsys.readouterr().out.count('"verdict_id"') == 6


def test_a_slow_first_fetch_still_shows_every_verdict(
    fake_consumer: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_consumer.silent_polls = 8  # more than the 5 empty polls the tail used to stop at
    assert main(["verdicts", "tail", "--json"]) == 0
    assert capsys.readouterr().out.count('"verdict_id"') == 5


def test_a_read_that_stalls_before_the_end_is_an_error(
    fake_consumer: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_consumer.silent_polls = POLL_LIMIT  # the broker went away
    assert main(["verdicts", "tail"]) == 1
    assert "before the end of" in capsys.readouterr().err


def test_follow_keeps_reading_new_verdicts(
    fake_consumer: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(AssertionError, match="still polling"):
        main(["verdicts", "tail", "--follow", "--json"])
    consumer = fake_consumer.made[0]
    assert consumer.subscribed and consumer.config["auto.offset.reset"] == "latest"
    assert capsys.readouterr().out.count('"verdict_id"') > 5
