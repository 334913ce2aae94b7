"""The ledger: a user's states written in judging order, batches acked after them."""

from __future__ import annotations

from collections.abc import Callable

from streams.ledger import Ledger


class Changelog:
    """What the ledger asks of the outbox: write a state, report when Kafka has it."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.reports: list[Callable[[bool], None]] = []

    def persist(
        self, key: bytes, state: bytes, partition: int, done: Callable[[bool], None]
    ) -> None:
        self.written.append(state)
        self.reports.append(done)


def ledger() -> tuple[Ledger[str], Changelog, list[str]]:
    changelog, acked = Changelog(), []
    return Ledger(changelog.persist, acked.extend), changelog, acked


def test_a_state_waits_for_the_users_earlier_windows_and_the_newest_is_written() -> None:
    book, changelog, acked = ledger()
    first = book.judged("u", b"u", b"s1", 0, ["a"], records=1)
    second = book.judged("u", b"u", b"s2", 0, ["b"], records=2)
    other = book.judged("v", b"v", b"v1", 1, ["c"], records=1)
    second()
    second()
    other()  # another user's windows do not wait for this one's
    assert changelog.written == [b"v1"]
    first()  # a retried verdict, delivered last: the older state is never written
    assert changelog.written == [b"v1", b"s2"]
    assert acked == []  # nothing acked before the changelog has the state
    for report in changelog.reports:
        report(True)
    assert acked == ["c", "a", "b"] and len(book) == 0


def test_batches_are_not_acked_when_the_partition_moved_before_the_state_was_written() -> None:
    book, changelog, acked = ledger()
    book.judged("u", b"u", b"s1", 0, ["a"], records=1)()
    changelog.reports[0](False)
    assert acked == []


def test_a_window_with_nothing_to_emit_still_waits_for_the_earlier_ones() -> None:
    book, changelog, acked = ledger()
    verdict = book.judged("u", b"u", b"s1", 0, ["a"], records=1)
    book.judged("u", b"u", b"s2", 0, ["heartbeat"], records=0)
    assert changelog.written == []
    verdict()
    changelog.reports[0](True)
    assert (changelog.written, acked) == ([b"s2"], ["a", "heartbeat"])


def test_after_an_erasure_pending_windows_are_acked_and_never_written() -> None:
    book, changelog, acked = ledger()
    first = book.judged("u", b"u", b"s1", 0, ["a"], records=1)
    book.judged("u", b"u", b"s2", 0, ["b"], records=1)()  # in Kafka, waiting for the first
    book.forget("u", erased=True)
    assert acked == ["b"]
    first()
    assert (changelog.written, acked) == ([], ["b", "a"])


def test_after_a_revocation_pending_windows_are_neither_written_nor_acked() -> None:
    book, changelog, acked = ledger()
    first = book.judged("u", b"u", b"s1", 0, ["a"], records=1)
    book.forget("u", erased=False)
    first()
    assert (changelog.written, acked, len(book)) == ([], [], 0)
