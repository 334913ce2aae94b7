"""Damage SQLite's page checks cannot see (one flipped byte in a row) never stops the agent.

Each case changes one byte of a valid spool holding one batch of device ``DEVX``, seq 7:
a serial type in a row header (a BLOB read back as TEXT, an INTEGER as a BLOB) or a byte
of a device name (no longer UTF-8). Before, these escaped as TypeError or ValueError from
the spool (the sender, hence the agent, died at every start) or failed every read of the
backlog for good. Rows damaged after open are stood in for by writing them through the
spool's own connection.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from collectors.delivery import BatchSender
from collectors.metrics import CollectorMetrics
from collectors.spool import SpoolError, SqliteSpool
from collectors.spool import sqlite as spool_sqlite
from collectors.spool.damage import Rows

# Record header of the DEVX row in `batches`: size 21, then serial types of id (NULL:
# the rowid), device (TEXT 4), seq (INT8), key (BLOB 1), value (BLOB 10), size (INT8).
BATCH_ROW = b"\x00\x15\x01\x0e\x20\x01DEVX"
# The DEVX row of `sequences`: header size 3, device (TEXT 4), last_seq (INT8) = 7.
SEQUENCE_ROW = b"\x03\x15\x01DEVX\x07"


def _spool_with_one_batch(path: Path) -> None:
    spool = SqliteSpool(path, fsync=False)
    spool.put("DEVX", 7, b"k", b"v" * 10)
    spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    spool.close()


def _patch(path: Path, pattern: bytes, offset: int, new: int) -> None:
    raw = bytearray(path.read_bytes())
    at = raw.find(pattern)
    assert at >= 0 and raw.count(pattern) == 1
    raw[at + offset] = new
    path.write_bytes(bytes(raw))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "spool.db"
    _spool_with_one_batch(p)
    return p


def _sender(spool: SqliteSpool, metrics: CollectorMetrics | None = None) -> BatchSender:
    return BatchSender(
        spool,
        bootstrap="127.0.0.1:1",  # nothing listens
        metrics=metrics,
        extra_config={"log_level": 0},
    )


def test_a_row_of_the_wrong_type_is_dropped_at_open_and_the_sender_starts(path: Path) -> None:
    _patch(path, BATCH_ROW, 4, 0x21)  # value: BLOB(10) -> TEXT(10)
    metrics = CollectorMetrics()
    spool = SqliteSpool(path, metrics=metrics)
    assert spool.quarantined is None  # the file is sound: only the row is lost
    assert (spool.batches, spool.nbytes, spool.dropped, spool.damaged_rows) == (0, 0, 1, 1)
    assert metrics.registry.get_sample_value("cadence_collector_dropped_batches_total") == 1
    sender = _sender(spool, metrics)  # raised TypeError before
    assert sender.next_seq("DEVX") == 8  # numbering goes on
    sender.close(0.05)


def test_a_device_name_that_is_not_utf8_is_dropped_at_open(path: Path) -> None:
    _patch(path, BATCH_ROW, 6, 0xFF)
    spool = SqliteSpool(path, max_batches=2, fsync=False)
    assert spool.quarantined is None and spool.batches == 0 and spool.dropped == 1
    for seq in (8, 9, 10):  # the third evicts: failed on the damaged row before
        spool.put("DEVX", seq, b"k", b"v")
    assert [r.seq for r in spool.pending(0, 10)] == [9, 10]
    spool.close()


def test_a_damaged_sequence_number_is_reset_to_wall_clock_not_a_crash(path: Path) -> None:
    _patch(path, SEQUENCE_ROW, 2, 0x0E)  # last_seq: INT8 -> BLOB(1); int() raised before
    spool = SqliteSpool(path, fsync=False)
    assert spool.quarantined is None
    assert [r.seq for r in spool.pending(0, 10)] == [7]  # the batch itself is good
    assert spool.next_seq("DEVX") >= int(time.time() * 1000) - 1000  # above anything used
    spool.close()


def test_a_device_name_damaged_in_the_table_but_not_its_index_quarantines(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The sequences row no longer matches its primary-key index: real corruption, which
    # failed the open with SpoolError before (cadence collect exited 2 at every start).
    _patch(path, SEQUENCE_ROW, 3, 0xFF)
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        spool = SqliteSpool(path, fsync=False)
    assert spool.quarantined is not None and spool.quarantined.exists()
    assert spool.batches == 0
    spool.put("DEVX", spool.next_seq("DEVX"), b"k", b"v")
    spool.close()


def test_any_exception_of_the_open_time_check_is_damage(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real = spool_sqlite.check_rows

    def failing_once(db: sqlite3.Connection, where: Path) -> Rows:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TypeError("string argument without an encoding")
        return real(db, where)

    monkeypatch.setattr(spool_sqlite, "check_rows", failing_once)
    spool = SqliteSpool(path, fsync=False)
    assert spool.quarantined is not None and spool.batches == 0
    spool.close()


def test_a_busy_file_is_still_an_error_not_damage(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect = sqlite3.connect
    monkeypatch.setattr(  # fail fast instead of after the default 5 s busy wait
        "collectors.spool.sqlite.sqlite3.connect",
        lambda *a, **kw: connect(*a, **kw, timeout=0.05),
    )
    other = connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SpoolError) as caught:
            SqliteSpool(path, fsync=False)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert caught.value.operation == "open"
    assert not list(path.parent.glob("*.corrupt-*"))


def test_rows_damaged_after_open_are_dropped_by_pending_not_a_wedged_queue(
    tmp_path: Path,
) -> None:
    metrics = CollectorMetrics()
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False, max_batches=6, metrics=metrics)
    spool.put("d", 1, b"k", b"v")
    # Bit rot since open: a device name that is not UTF-8, a value read back as TEXT.
    for device, value in (("CAST(x'ff4556' AS TEXT)", "x'76'"), ("'d'", "'text'")):
        spool._db.execute(
            "INSERT INTO batches (device, seq, key, value, size) "
            f"VALUES ({device}, 2, x'6b', {value}, 2)"
        )
        spool._count += 1
        spool._bytes += 2
    spool.put("d", 3, b"k", b"v")
    assert [r.seq for r in spool.pending(0, 10)] == [1, 3]  # raised SpoolError / TypeError
    assert (spool.batches, spool.dropped, spool.damaged_rows) == (2, 2, 2)
    assert metrics.registry.get_sample_value("cadence_collector_dropped_batches_total") == 2
    # A chunk of nothing but damaged rows is read past, not taken for the end.
    last_good = spool.pending(0, 10)[-1].id
    spool._db.execute(
        "INSERT INTO batches (device, seq, key, value, size) VALUES ('d', 'x', x'6b', x'76', 2)"
    )
    spool._count += 1
    spool._bytes += 2
    spool.put("d", 5, b"k", b"v")
    assert [r.seq for r in spool.pending(last_good, 1)] == [5]
    # The bound still evicts past a damaged name (it raised on every evicting put before).
    spool._db.execute(
        "INSERT INTO batches (device, seq, key, value, size) "
        "VALUES (CAST(x'ff' AS TEXT), 6, x'6b', x'76', 2)"
    )
    spool._count += 1
    spool._bytes += 2
    for seq in range(7, 14):
        spool.put("d", seq, b"k", b"v")
    assert [r.seq for r in spool.pending(0, 10)] == list(range(8, 14))
    spool.close()
