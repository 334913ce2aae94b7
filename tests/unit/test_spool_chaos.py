"""Randomized faults against the sender's promise: nothing lost silently, nothing crashes.

A :class:`BatchSender` over a :class:`SqliteSpool` sends a few thousand batches while a
fake producer (as in ``test_delivery_order``) acknowledges some at once, fails some,
writes some and still reports them failed (an ambiguous timeout), and holds others back
so that their reports arrive after the spool file was moved aside; pages of the spool
file are torn under it at random moments (as in ``test_spool_quarantine``), now and then
one cannot be moved aside, the monotonic clock jumps past rewinds and past the
one-quarantine-a-minute limit, the bound evicts old batches, and the producer dies and is
recreated. Then the faults stop, every report is served, the sender flushed and closed,
the spool opened again (damage torn in last is found there), and:

* no exception left ``send``, ``poll``, ``flush``, ``close`` or ``next_seq``;
* every batch sent reached the topic byte for byte, or is counted in
  ``cadence_collector_dropped_batches_total``, and by name: refused by the spool (then it
  never reaches the topic), evicted, or in a file moved aside; the spool's own count
  matches the batches it holds after every operation;
* no ``(device, seq)`` reached the topic with two different contents;
* the spool is empty; at most ``MAX_QUARANTINED`` copies of damaged files are kept, the
  one just made always among them.

Each seed is one reproducible run:
``pytest 'tests/unit/test_spool_chaos.py::test_chaos_loses_nothing_silently[7]'``.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from collectors import delivery
from collectors.delivery import BatchSender
from collectors.metrics import CollectorMetrics
from collectors.spool import SqliteSpool
from collectors.spool.copies import MAX_QUARANTINED
from collectors.wire import EventBatch, KeyEvent, encode_batch

SEEDS = range(20)
BATCHES = 2000
SURE_DAMAGE = (BATCHES // 3, 2 * BATCHES // 3)
DEVICES = ("dev-a", "dev-b", "dev-c")
PAGE = 4096

Report = Callable[[KafkaError | None, Any], None]


class _Clock:
    """``time.monotonic`` for the run: creeps on at every call (so that ``flush`` ends),
    and jumps when the run says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 0.0005
        return self.now


@dataclass
class _Broker:
    rng: random.Random
    topic: list[bytes] = field(default_factory=list)  # values, in the order written
    healthy: bool = False  # no more failures or delays: every report arrives at the next poll
    files: int = 0  # spool files moved aside so far
    late: int = 0  # reports that arrived after the file their batch was in was moved aside


@dataclass
class _Message:
    value: bytes
    report: Report
    due: int  # the poll that serves its report
    files: int  # spool files moved aside when it was produced


class _FakeProducer:
    """Stands in for librdkafka's Producer: reports fired from ``poll``, some of them many
    polls late, some failed (some of those written all the same: an ambiguous timeout)."""

    def __init__(self, broker: _Broker) -> None:
        self.broker = broker
        self.polls = 0
        self.inflight: list[_Message] = []

    def produce(
        self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Report
    ) -> None:
        rng = self.broker.rng
        delay = rng.randrange(3) if rng.random() < 0.9 else rng.randrange(10, 300)
        self.inflight.append(_Message(value, on_delivery, self.polls + delay, self.broker.files))

    def poll(self, timeout: float = 0) -> int:
        broker = self.broker
        self.polls += 1
        due = [m for m in self.inflight if broker.healthy or m.due <= self.polls]
        self.inflight = [m for m in self.inflight if not (broker.healthy or m.due <= self.polls)]
        for m in due:
            broker.late += m.files < broker.files
            r = 1.0 if broker.healthy else broker.rng.random()
            if r >= 0.15:
                broker.topic.append(m.value)
                m.report(None, None)
            else:
                if r >= 0.12:
                    broker.topic.append(m.value)  # written, but the report says it failed
                m.report(KafkaError(KafkaError._MSG_TIMED_OUT), None)
        return len(due)

    def flush(self, timeout: float = 0) -> int:
        self.poll(timeout)
        return len(self.inflight)

    def purge(self, in_queue: bool = True, in_flight: bool = True) -> None:
        # What was already on the wire may have been written; its report never arrives.
        for m in self.inflight:
            if self.broker.rng.random() < 0.5:
                self.broker.topic.append(m.value)
        self.inflight = []


def _tear(spool: SqliteSpool, rng: random.Random, page: int | None = None) -> None:
    """A torn page under the running spool (``_damage_while_open`` of test_spool_quarantine)."""
    if spool._no_file is not None:
        return  # no open file to damage
    db = spool._db
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (pages,) = db.execute("PRAGMA page_count").fetchone()
    except Exception:
        return  # already damaged beyond a checkpoint: the next operation finds it
    if page is None:  # 1: the root of the batches table, which every operation reads
        page = 1 if rng.random() < 0.5 else rng.randrange(pages)
    with spool.path.open("r+b") as f:
        f.seek(page * PAGE)
        f.write(b"\xab" * 600)
    db.execute("PRAGMA shrink_memory")


def _copies(directory: Path) -> set[str]:
    return {
        p.name.removesuffix("-wal").removesuffix("-shm")
        for p in directory.glob("spool.db.corrupt-*")
    }


@dataclass
class _Outcome:
    sent: list[EventBatch] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    unspooled: set[int] = field(default_factory=set)  # indexes of sends the spool refused
    errors: list[str] = field(default_factory=list)
    most_copies: int = 0
    copies_deleted_at_once: list[str] = field(default_factory=list)


class _Ledger:
    """Which batch is in the spool file, followed through the spool's public methods, and
    why each one that left it undelivered did: moved aside in a damaged file, or evicted.

    The spool's own count must match it after every operation (a quarantine counts that
    count as dropped), and every drop it counts must be one of these batches."""

    def __init__(self, spool: SqliteSpool, broker: _Broker) -> None:
        self.spool = spool
        self.broker = broker
        self.held: dict[int, int] = {}  # spool id -> send index, oldest first
        self.gone: dict[int, str] = {}  # send index -> quarantined | evicted
        self.putting = -1  # the send index being put
        self.mismatches: list[str] = []
        for name in ("put", "remove", "pending"):
            setattr(spool, name, self._watch(name, getattr(spool, name)))

    def _watch(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any) -> Any:
            # A new path object at each move aside (even when the copy's name repeats).
            quarantined, dropped = self.spool.quarantined, self.spool.dropped
            damaged = self.spool.damaged_rows
            counted, result, done = 0, None, False
            try:
                result = method(*args)
                done = True
            finally:
                if self.spool.quarantined is not quarantined:
                    # Before the operation's retry on the fresh file: all it held is gone.
                    counted += len(self.held)
                    self.gone.update(dict.fromkeys(self.held.values(), "quarantined"))
                    self.held.clear()
                    self.broker.files += 1
                if name == "put" and done:
                    assert isinstance(result, int)
                    self.held[result] = self.putting
                    while len(self.held) > self.spool.batches:  # the bound: oldest first
                        oldest = next(iter(self.held))
                        self.gone[self.held.pop(oldest)] = "evicted"
                        counted += 1
                if name == "remove" and done:
                    for spool_id in args[0]:
                        self.held.pop(spool_id, None)
                counted += self.spool.damaged_rows - damaged
                if (len(self.held), counted) != (self.spool.batches, self.spool.dropped - dropped):
                    self.mismatches.append(
                        f"{name}: ledger holds {len(self.held)}, spool {self.spool.batches};"
                        f" dropped {counted} by the ledger, {self.spool.dropped - dropped} counted"
                    )
            return result

        return watched


def _run(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    clock = _Clock()
    monkeypatch.setattr("collectors.spool.sqlite.time.monotonic", clock)  # the time module's
    broker = _Broker(rng)
    monkeypatch.setattr(delivery, "Producer", lambda config: _FakeProducer(broker))
    metrics = CollectorMetrics()
    spool = SqliteSpool(
        tmp_path / "spool.db",
        fsync=False,
        metrics=metrics,
        max_batches=rng.choice([50, 400, 1_000_000]),
    )
    sender = BatchSender(
        spool, bootstrap="127.0.0.1:1", metrics=metrics, window=rng.choice([20, 200, 2000])
    )
    out = _Outcome()
    ledger = _Ledger(spool, broker)
    refusals = [0]  # os.replace calls still to refuse (a damaged file that cannot be moved)
    replace = os.replace

    def refusing(src: Any, dst: Any) -> None:
        if refusals[0] > 0:
            refusals[0] -= 1
            raise PermissionError(13, "Permission denied")
        replace(src, dst)

    monkeypatch.setattr("collectors.spool.copies.os.replace", refusing)

    def call(method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception:
            out.errors.append(traceback.format_exc())
            return None

    p_damage = rng.choice([0.003, 0.006, 0.012])
    seen = spool.quarantined
    for i in range(BATCHES):
        device = rng.choice(DEVICES)
        seq = call(sender.next_seq, device)
        now = time.time() * 1000.0
        events = tuple(KeyEvent("kd", float(j), j % 13) for j in range(rng.randrange(1, 40)))
        batch = EventBatch(device, "u" * 64, f"s-{seed}-{i}", seq, now, now - 1000.0, events)
        out.sent.append(batch)
        out.values.append(encode_batch(batch))
        refused, ledger.putting = sender.counters.unspooled, i
        call(sender.send, batch)
        if sender.counters.unspooled > refused:
            out.unspooled.add(i)
        r = rng.random()
        if r < 0.4:
            call(sender.poll, 0)
        if i in SURE_DAMAGE:  # besides the random damage, so that every seed has some
            clock.now += 61.0
            _tear(spool, rng, page=1)
        elif rng.random() < p_damage:
            _tear(spool, rng)
            if rng.random() < 0.2:
                refusals[0] = 1
        r = rng.random()
        if r < 0.02:
            clock.now += 61.0  # past the one-quarantine-a-minute limit
        elif r < 0.06:
            clock.now += 1.5  # past a rewind's pause
        if rng.random() < 0.002:
            sender._on_error(KafkaError(KafkaError._FATAL, "chaos", fatal=True))
        if spool.quarantined is not seen and spool.quarantined is not None:
            seen = spool.quarantined
            out.most_copies = max(out.most_copies, len(_copies(tmp_path)))
            if not seen.exists():  # kept for forensics, as the log line says
                out.copies_deleted_at_once.append(seen.name)

    # Healing: no more damage, every report arrives; a damaged file still there is found
    # by the next operation and moved aside (the clock is past the limit).
    broker.healthy = True
    refusals[0] = 0
    clock.now += 61.0
    for _ in range(200):
        call(sender.poll, 0)
        if not spool.batches and not sender._producer.inflight:  # type: ignore[attr-defined]
            break
        clock.now += 1.5
    left = call(sender.flush, 5.0)
    tracked = spool.batches
    call(sender.close, 0)
    dropped = metrics.registry.get_sample_value("cadence_collector_dropped_batches_total")
    # A restart: damage torn in after the last operation is found by the open-time check.
    again = SqliteSpool(tmp_path / "spool.db", fsync=False, metrics=metrics)
    found = again.batches
    again.close()
    out.most_copies = max(out.most_copies, len(_copies(tmp_path)))

    context = f"seed {seed}"
    # (a) nothing escaped the sender.
    assert not out.errors, f"{context}: {len(out.errors)} exceptions, first:\n{out.errors[0]}"
    # (b) delivered byte for byte, or counted as dropped; the spool is empty.
    assert left == 0 and tracked == 0, f"{context}: {left} / {tracked} left"
    assert found == 0, f"{context}: the spool said empty, its file held {found}"
    assert metrics.registry.get_sample_value("cadence_collector_dropped_batches_total") == (
        dropped
    ), f"{context}: the spool said empty, its damaged file held batches"
    sent = set(out.values)
    assert set(broker.topic) <= sent, f"{context}: content changed on the way"
    delivered = set(broker.topic)
    lost = [i for i, v in enumerate(out.values) if v not in delivered]
    assert dropped is not None
    assert len(lost) <= dropped, f"{context}: {len(lost)} not delivered, {dropped} dropped"
    assert len(delivered) + dropped >= len(out.values)
    refused_but_delivered = [i for i in out.unspooled if out.values[i] in delivered]
    assert not refused_but_delivered, f"{context}: counted dropped yet delivered"
    # Sharper than the sums: each batch missing is one the spool refused, evicted or moved
    # aside in a damaged file, and each of those was counted once, when it happened.
    assert not ledger.mismatches, f"{context}: {ledger.mismatches[:3]}"
    unexplained = [i for i in lost if i not in out.unspooled and i not in ledger.gone]
    allowed = spool.damaged_rows  # bit rot in a row: deleted by id, which batch not followed
    assert len(unexplained) <= allowed, f"{context}: lost without a reason: {unexplained[:5]}"
    assert dropped == len(out.unspooled) + len(ledger.gone) + spool.damaged_rows, context
    # (c) one content per (device, seq) on the topic.
    contents: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    by_value = {v: b for v, b in zip(out.values, out.sent, strict=True)}
    for value in delivered:
        contents[(by_value[value].device, by_value[value].seq)].add(value)
    reused = {k: len(v) for k, v in contents.items() if len(v) > 1}
    assert not reused, f"{context}: (device, seq) delivered with different contents: {reused}"
    # (d) copies of damaged files stay bounded.
    assert out.most_copies <= MAX_QUARANTINED, f"{context}: {out.most_copies} copies kept"
    assert not out.copies_deleted_at_once, f"{context}: the newest copy deleted at once"
    # The run did what it says: files were moved aside under the sender, and reports for
    # their batches arrived afterwards. (Duplicates on the topic are at-least-once resends
    # after failed or ambiguous reports, rewinds and producer restarts: about 4-11% here.)
    quarantined = metrics.registry.get_sample_value("cadence_collector_spool_quarantined_total")
    assert quarantined and quarantined >= 2, context
    assert broker.late > 0, context


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_loses_nothing_silently(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(seed, tmp_path, monkeypatch)
