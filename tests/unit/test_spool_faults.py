"""A spool file that cannot be written, is locked or is damaged never stops the agent.

A full disk is stood in for by ``PRAGMA max_page_count``: SQLite fails the write with
SQLITE_FULL and rolls the transaction back itself, exactly as on ENOSPC (checked on a
512 KiB tmpfs). A lock is a second connection holding a write transaction, as another
process on the same state directory would.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.agent import Agent
from collectors.batcher import Batcher
from collectors.delivery import BatchSender
from collectors.metrics import CollectorMetrics
from collectors.spool import SpoolError, SqliteSpool
from collectors.wire import KeyEvent
from tests.integration.collector_send_script import make_batch

FULL = 2  # PRAGMA synchronous value


def _fill_disk(spool: SqliteSpool) -> None:
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count={pages}")


def _free_disk(spool: SqliteSpool) -> None:
    spool._db.execute("PRAGMA max_page_count=1073741823")


@pytest.fixture
def metrics() -> CollectorMetrics:
    return CollectorMetrics()


@pytest.fixture
def sender(tmp_path: Path, metrics: CollectorMetrics) -> Iterator[BatchSender]:
    spool = SqliteSpool(tmp_path / "spool.db", fsync=True, metrics=metrics)
    spool._db.execute("PRAGMA busy_timeout=50")  # a lock fails fast instead of after 5 s
    sender = BatchSender(
        spool,
        bootstrap="127.0.0.1:1",  # nothing listens: acknowledgements are fed in by hand
        topic="cadence.events.v1",
        metrics=metrics,
        extra_config={"log_level": 0},
    )
    yield sender
    sender.close(0.05)


def _lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_full_disk_put_raises_the_real_cause_and_keeps_sizes(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False)
    spool.put("dev", 1, b"k", b"v")
    _fill_disk(spool)
    with pytest.raises(SpoolError, match="full") as caught:
        for seq in range(2, 200):
            spool.put("dev", seq, b"k", b"x" * 4000)
    assert caught.value.operation == "put"
    count = spool._db.execute("SELECT count(*) FROM batches").fetchone()[0]
    assert spool.batches == count
    _free_disk(spool)
    spool.put("dev", 500, b"k", b"v")  # usable again once space is back
    assert spool.batches == count + 1


def test_locked_remove_keeps_fsync_on(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.db", fsync=True)
    spool._db.execute("PRAGMA busy_timeout=50")
    spool_id = spool.put("dev", 1, b"k", b"v")
    other = _lock(spool.path)
    with pytest.raises(SpoolError, match="locked") as caught:
        spool.remove([spool_id])
    assert caught.value.operation == "remove"
    with pytest.raises(SpoolError, match="locked"):
        spool.put("dev", 2, b"k", b"v")
    assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == FULL
    assert spool.batches == 1
    other.execute("ROLLBACK")
    spool.remove([spool_id])
    assert spool.batches == 0


def test_sender_drops_and_counts_a_batch_the_full_spool_refuses(
    sender: BatchSender, metrics: CollectorMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    spool = sender.spool
    assert isinstance(spool, SqliteSpool)
    sender.send(make_batch("dev-full", sender.next_seq("dev-full")))
    _fill_disk(spool)
    with caplog.at_level(logging.ERROR, logger="collectors.delivery"):
        for _ in range(40):
            sender.send(make_batch("dev-full", sender.next_seq("dev-full")))
    refused = sender.counters.unspooled
    assert refused > 0
    value = metrics.registry.get_sample_value
    assert value("cadence_collector_dropped_batches_total") == refused
    assert value("cadence_collector_spool_errors_total", {"operation": "put"}) == refused
    assert sender.pending + refused == 41  # every batch is on the spool or counted
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "full" in errors[0], errors  # once a minute, not per batch
    # Space is back: the next batch takes the number the refused one never used.
    _free_disk(spool)
    seq = sender.next_seq("dev-full")
    sender.send(make_batch("dev-full", seq))
    assert spool.pending(0, 100)[-1].seq == seq
    assert spool.next_seq("dev-full") == seq + 1


def test_acknowledged_batches_on_a_locked_spool_are_removed_later(
    sender: BatchSender, metrics: CollectorMetrics
) -> None:
    for _ in range(3):
        sender.send(make_batch("dev-lock", sender.next_seq("dev-lock")))
    ids = [row.id for row in sender.spool.pending(0, 10)]
    other = _lock(sender.spool.path)  # type: ignore[attr-defined]
    for spool_id in ids:
        sender._on_delivery(sender._generation, spool_id, None)
    sender.poll(0)  # must not raise
    assert sender.pending == 3
    value = metrics.registry.get_sample_value
    assert value("cadence_collector_spool_errors_total", {"operation": "remove"}) == 1
    other.execute("ROLLBACK")
    sender.poll(0)
    assert sender.pending == 0
    assert value("cadence_collector_dropped_batches_total") == 0


def test_agent_keeps_running_when_the_spool_is_full(
    sender: BatchSender, metrics: CollectorMetrics
) -> None:
    batcher = Batcher(max_events=4, max_age_ms=10_000)
    agent = Agent(sender, device="dev-agent", user="u" * 64, metrics=metrics, batcher=batcher)
    assert isinstance(sender.spool, SqliteSpool)
    _fill_disk(sender.spool)
    for i in range(4000):
        batcher.add(KeyEvent("kd" if i % 2 == 0 else "ku", float(i), i % 13))
        if i % 400 == 399:
            agent.step(0)
    assert sender.counters.unspooled > 0
    assert metrics.registry.get_sample_value("cadence_collector_events_captured_total") == 4000


@pytest.mark.parametrize("damage", ["garbage", "page"])
def test_a_damaged_spool_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    if damage == "garbage":
        path.write_bytes(b"not a database" * 500)
    else:
        spool = SqliteSpool(path, fsync=False)
        for seq in range(300):
            spool.put("dev", seq, b"k", b"v" * 3000)
        spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        spool.close()
        raw = bytearray(path.read_bytes())
        raw[3 * 4096 : 3 * 4096 + 600] = b"\xab" * 600  # a torn page in the batches table
        path.write_bytes(bytes(raw))
    metrics = CollectorMetrics()
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        spool = SqliteSpool(path, metrics=metrics)
    assert spool.quarantined is not None and spool.quarantined.exists()
    assert spool.quarantined.name.startswith("spool.db.corrupt-")
    assert spool.batches == 0
    assert spool.next_seq("dev") > 10**12  # wall-clock ms: above anything the lost file used
    spool.put("dev", spool.next_seq("dev"), b"k", b"v")
    assert metrics.registry.get_sample_value("cadence_collector_spool_quarantined_total") == 1
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_a_locked_or_unreadable_spool_is_a_clear_error_not_a_quarantine(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.mkdir()  # a directory where the file should be: cannot be opened at all
    with pytest.raises(SpoolError) as caught:
        SqliteSpool(path)
    assert caught.value.operation == "open"
    assert path.is_dir() and not list(tmp_path.glob("*.corrupt-*"))
