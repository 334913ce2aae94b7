"""`cadence profiles export`: an answer or one clear line, never a traceback or a long
wait: partitions emptied by retention, an unreachable broker, an unreadable stored
state, a meaningless --verdict-hours."""

from __future__ import annotations

import types
from typing import Any

import confluent_kafka
import pytest

from streams.cli import main
from streams.commands import profiles_export
from streams.profile_export import describe, render
from tests.kafka_fakes import FakeMessage

USER = "a" * 64


class FakeConsumer:
    """One partition per topic; ``marks`` are its watermarks, ``records`` what it holds
    (key, value) from the low watermark on."""

    marks = (0, 0)
    records: list[tuple[bytes, bytes]] = []
    unreachable = False

    def __init__(self, config: dict[str, Any]) -> None:
        self.queue: list[FakeMessage] = []

    def list_topics(self, topic: str, timeout: float | None = None) -> Any:
        if self.unreachable:
            raise confluent_kafka.KafkaException(
                confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT)
            )
        meta = types.SimpleNamespace(error=None, partitions={0: None})
        return types.SimpleNamespace(topics={topic: meta})

    def offsets_for_times(self, tps: list[Any], timeout: float | None = None) -> list[Any]:
        return tps

    def get_watermark_offsets(self, tp: Any, timeout: float | None = None) -> tuple[int, int]:
        return self.marks

    def assign(self, tps: list[Any]) -> None:
        low = self.marks[0]
        self.queue = [FakeMessage(0, low + i, v, key=k) for i, (k, v) in enumerate(self.records)]

    def poll(self, timeout: float) -> FakeMessage | None:
        clock.now += timeout
        return self.queue.pop(0) if self.queue else None

    def close(self) -> None:
        pass


clock = types.SimpleNamespace(now=0.0)


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    FakeConsumer.marks, FakeConsumer.records, FakeConsumer.unreachable = (0, 0), [], False
    clock.now = 0.0
    monkeypatch.setattr(confluent_kafka, "Consumer", FakeConsumer)
    # The read's 120 s deadline on a clock that only the polls advance.
    fake_time = types.SimpleNamespace(monotonic=lambda: clock.now, time=profiles_export.time.time)
    monkeypatch.setattr(profiles_export, "time", fake_time)
    return FakeConsumer


def test_partitions_emptied_by_retention_are_not_waited_for(
    fake_kafka: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kafka.marks = (7, 7)  # 7 records written, every one deleted by retention
    assert main(["profiles", "export", USER]) == 0
    assert "profile: none" in capsys.readouterr().out
    assert clock.now == 0.0  # not one poll


def test_records_after_a_retention_gap_are_read(
    fake_kafka: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kafka.marks = (5, 7)
    fake_kafka.records = [(b"other", b"x"), (b"other", b"y")]
    assert main(["profiles", "export", USER]) == 0
    assert clock.now < 10


def test_an_unreachable_broker_is_one_line(
    fake_kafka: type[FakeConsumer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_kafka.unreachable = True
    # The metadata request is retried for this long before the broker is called unreachable.
    monkeypatch.setattr(profiles_export, "METADATA_TIMEOUT_S", 0.2)
    with pytest.raises(SystemExit) as done:
        main(["profiles", "export", USER])
    assert str(done.value.code).startswith("cannot reach Kafka at ")


def test_an_unreadable_stored_state_is_reported_as_such(
    fake_kafka: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kafka.marks = (0, 1)
    fake_kafka.records = [(USER.encode(), b"\x00garbage")]
    assert main(["profiles", "export", USER]) == 0
    out = capsys.readouterr().out
    assert "profile: unreadable" in out and "8 bytes" in out


def test_describe_reports_damaged_bytes_without_raising() -> None:
    report = describe(USER, b"\x00garbage", [])
    assert report["profile"]["stored_bytes"] == 8 and "unreadable" in report["profile"]
    assert "profile: unreadable" in render(report)


@pytest.mark.parametrize("hours", ["nan", "inf", "-5", "0"])
def test_verdict_hours_must_be_a_positive_number(
    hours: str, fake_kafka: type[FakeConsumer], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", "export", USER, f"--verdict-hours={hours}"]) == 2
    assert "--verdict-hours must be a positive number" in capsys.readouterr().err
