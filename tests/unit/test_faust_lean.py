"""The lean Faust parts are used only on the Faust whose private code they mirror."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams import faust_lean
from streams.settings import WorkerSettings


def test_the_reviewed_faust_is_recognised() -> None:
    if faust.__version__ != "0.15.3":
        pytest.skip(
            f"faust-streaming {faust.__version__}: streams.faust_lean was derived from 0.15.3; "
            "review it against this release, then update DERIVED_FROM"
        )
    assert faust_lean.faust_drift() == []
    assert faust_lean.matches_faust()


def test_a_changed_faust_source_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = faust_lean._upstream_sources()
    name = "Consumer._new_offset"
    changed = dict(sources, **{name: sources[name] + "\n# upstream edit"})
    monkeypatch.setattr(faust_lean, "_upstream_sources", lambda: changed)
    assert faust_lean.faust_drift() == [name]
    assert not faust_lean.matches_faust()


def test_unreadable_faust_sources_count_as_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> dict[str, str]:
        raise OSError("could not get source code")

    monkeypatch.setattr(faust_lean, "_upstream_sources", unreadable)
    assert faust_lean.faust_drift() == list(faust_lean.DERIVED_FROM)


@pytest.mark.parametrize("lean", [True, False])
def test_the_app_falls_back_to_fausts_own_parts(
    monkeypatch: pytest.MonkeyPatch, lean: bool
) -> None:
    from streams import app as worker_app

    monkeypatch.setattr(worker_app, "_LEAN", lean)
    worker = worker_app.create_app(WorkerSettings(app_id=f"lean-test-{lean}"))
    assert isinstance(worker.app.transport, faust_lean.Transport) is lean
    assert isinstance(worker.app.monitor, faust_lean.Monitor) is lean


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> faust_lean.Consumer:
    from streams import app as worker_app

    monkeypatch.setattr(worker_app, "_LEAN", True)
    worker = worker_app.create_app(WorkerSettings(app_id="lean-offsets"))
    made = worker.app.consumer  # built, not started: no broker involved
    assert isinstance(made, faust_lean.Consumer)
    return made


TP0 = TP("events", 0)


def _acked(consumer: faust_lean.Consumer, *offsets: int) -> None:
    consumer._acked[TP0] = list(offsets)
    consumer._acked_index[TP0] = set(offsets)


def test_commit_never_passes_the_unacked_message_at_the_committed_offset(
    consumer: faust_lean.Consumer,
) -> None:
    # Committed 31 = offset 31 is the next to process. It belongs to an open window.
    consumer._committed_offset[TP0] = 31
    _acked(consumer, 32, 33)
    assert consumer._new_offset(TP0) is None  # Faust 0.15.3 alone would commit 34
    _acked(consumer, 31, 32, 33, 35)
    assert consumer._new_offset(TP0) == 34


def test_before_the_first_commit_the_first_offset_read_is_the_start(
    consumer: faust_lean.Consumer,
) -> None:
    consumer._first_offset[TP0] = 0
    _acked(consumer, 1, 2, 3)
    assert consumer._new_offset(TP0) is None  # Faust alone: no check at all, 4
    _acked(consumer, 0, 1, 2, 3)
    assert consumer._new_offset(TP0) == 4


def test_offsets_never_delivered_do_not_hold_commits_back(
    consumer: faust_lean.Consumer,
) -> None:
    # 10-11 were never delivered (e.g. transaction markers): Faust records them as a gap.
    consumer._committed_offset[TP0] = 10
    consumer._gap[TP0].addi(10, 12)
    _acked(consumer, 12, 13)
    assert consumer._new_offset(TP0) == 14


class _Message(SimpleNamespace):
    __hash__ = object.__hash__  # the consumer keeps messages in sets
    __eq__ = object.__eq__


def _drain(consumer: faust_lean.Consumer, offsets: list[int]) -> list[Any]:
    """Run the consumer's real fetch loop over records at ``offsets``; return them."""
    delivered: list[Any] = []
    topic = TP0.topic
    consumer.app.topics._acking_topics.add(topic)
    consumer._hand_off_guard = lambda: lambda tp: True  # type: ignore[method-assign]

    async def callback(message: Any) -> None:
        delivered.append(message)

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        for offset in offsets:
            consumer._first_offset.setdefault(TP0, offset)
            yield TP0, _Message(offset=offset, topic=topic, tp=TP0, acked=False)
        fetcher._stopped.set()

    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    consumer.callback = callback  # type: ignore[method-assign]
    consumer.getmany = getmany  # type: ignore[method-assign]
    asyncio.run(consumer._drain_messages(fetcher))
    return delivered


def _seeked_to(consumer: faust_lean.Consumer, offset: int) -> None:
    """What perform_seek leaves: committed and read offsets both at the next to read."""
    consumer._committed_offset[TP0] = offset
    consumer._read_offset[TP0] = offset


def test_the_message_after_offsets_never_delivered_is_committed_only_once_acked(
    consumer: faust_lean.Consumer,
) -> None:
    # 11-12 never arrive; 13 belongs to an open window. Faust's gap step covered 13 too,
    # and commits passed it: a crash then skipped its window.
    _seeked_to(consumer, 10)
    ten, thirteen, fourteen = _drain(consumer, [10, 13, 14])
    consumer.ack(ten)
    consumer.ack(fourteen)
    assert consumer._new_offset(TP0) == 13
    consumer._committed_offset[TP0] = 13  # what the commit of that offset records
    consumer.ack(thirteen)
    assert consumer._new_offset(TP0) == 15


@pytest.mark.parametrize(("committed", "first"), [(100, 500), (31, 32)])
def test_a_committed_offset_that_no_longer_exists_does_not_stop_commits(
    consumer: faust_lean.Consumer, committed: int, first: int
) -> None:
    # Retention deleted the committed offset (a worker down longer than the events
    # topic's 6 h): the log now starts later. Commits used to stop for good.
    _seeked_to(consumer, committed)
    for message in _drain(consumer, [first, first + 1, first + 2]):
        consumer.ack(message)
    assert consumer._new_offset(TP0) == first + 3


def _fetch(
    consumer: faust_lean.Consumer, monkeypatch: pytest.MonkeyPatch, active: set[TP]
) -> list[set[TP] | None]:
    """The partitions Faust's own fetch was asked for (none: it was not called)."""
    asked: list[set[TP] | None] = []

    async def fetch(
        self: Any, active_partitions: set[TP] | None, timeout: float
    ) -> dict[TP, list[Any]]:
        asked.append(active_partitions)
        return {}

    monkeypatch.setattr(faust_aiokafka.Consumer, "_getmany", fetch, raising=False)
    monkeypatch.setattr(faust_lean, "REBALANCE_POLL_S", 0.0)
    asyncio.run(consumer._getmany(active, timeout=0.0))
    return asked


def test_no_stream_records_are_fetched_while_a_rebalance_is_under_way(
    consumer: faust_lean.Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recovery resumes the stream partitions, seeks them, then empties the stream buffers:
    # a stream record fetched in between would be lost (see Consumer._getmany).
    changelog = TP(next(iter(consumer.app.tables.changelog_topics)), 0)
    monkeypatch.setattr(consumer.app, "rebalancing", True)
    assert _fetch(consumer, monkeypatch, {TP0, changelog}) == [{changelog}]
    assert _fetch(consumer, monkeypatch, {TP0}) == []  # not asked for "everything"
    monkeypatch.setattr(consumer.app, "rebalancing", False)
    assert _fetch(consumer, monkeypatch, {TP0, changelog}) == [{TP0, changelog}]
