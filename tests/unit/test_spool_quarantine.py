"""A damaged spool loses nothing silently, keeps no raw batches for ever, never wedges delivery.

Damage is a torn page: the first 600 bytes of a 4 KiB page overwritten, as a torn write or
a bad sector leaves it. Page 1 (0-based) is the root of the ``batches`` table, so every
operation on the table fails on it. Damage under a running spool is written after its WAL
was checkpointed into the file and its page cache emptied: on a real spool (default bound
256 MiB, SQLite's cache 2 MiB) the pages are read from the file, not from memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collectors.delivery import BatchSender
from collectors.metrics import CollectorMetrics
from collectors.spool import SpoolError, SqliteSpool, open_spool
from tests.integration.collector_send_script import make_batch

BATCHES_ROOT = 1


def _tear(path: Path, page: int) -> None:
    with path.open("r+b") as f:
        f.seek(page * 4096)
        f.write(b"\xab" * 600)


def _spool_file(path: Path, batches: int) -> None:
    spool = SqliteSpool(path, fsync=False)
    for seq in range(batches):
        spool.put("dev", seq, b"k", b"v" * 3000)  # about one page per batch
    spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    spool.close()


def _damage_while_open(spool: SqliteSpool, page: int = BATCHES_ROOT) -> None:
    spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _tear(spool.path, page)
    spool._db.execute("PRAGMA shrink_memory")  # the page cache: read the file again


def _value(metrics: CollectorMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


def _copies(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("spool.db.corrupt-*"))


def _stamp(age_s: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - age_s))


DAY = 86400.0


def _refused(src: object, dst: object) -> None:
    """``os.replace`` on a file the agent may not move (a read-only directory)."""
    raise PermissionError(13, "Permission denied")


# -- the batches of a quarantined file are counted as dropped ---------------------------


def test_the_batches_of_a_quarantined_spool_are_counted_as_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # They counted in spool_quarantined_total only: a dashboard of dropped batches showed
    # nothing while a whole outage's backlog was lost.
    path = tmp_path / "spool.db"
    _spool_file(path, 300)
    _tear(path, 3)  # fails PRAGMA quick_check, but the table can still be counted
    metrics = CollectorMetrics()
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        spool = SqliteSpool(path, metrics=metrics)
    assert spool.quarantined is not None
    assert _value(metrics, "cadence_collector_spool_quarantined_total") == 1
    assert _value(metrics, "cadence_collector_dropped_batches_total") == 300
    assert spool.dropped == 300
    assert "the 300 batches it held are lost" in caplog.text
    spool.close()


def test_a_spool_readable_in_part_counts_the_batches_it_can_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    _spool_file(path, 300)
    _tear(path, 100)  # a leaf in the middle: the rows before and after it are readable
    metrics = CollectorMetrics()
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        spool = SqliteSpool(path, metrics=metrics)
    dropped = _value(metrics, "cadence_collector_dropped_batches_total")
    assert dropped is not None and 250 < dropped < 300  # a lower bound, not a guess
    assert spool.dropped == dropped
    assert f"at least {int(dropped)} batches" in caplog.text
    spool.close()


def test_an_unreadable_spool_counts_one_quarantine_and_says_the_batches_are_unknown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"not a database" * 500)
    metrics = CollectorMetrics()
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        spool = SqliteSpool(path, metrics=metrics)
    assert _value(metrics, "cadence_collector_spool_quarantined_total") == 1
    assert _value(metrics, "cadence_collector_dropped_batches_total") == 0  # not invented
    assert "how many batches it held cannot be read" in caplog.text
    spool.close()


# -- quarantined copies are kept for a bounded time -------------------------------------


def test_quarantined_copies_past_their_retention_are_deleted_at_open(tmp_path: Path) -> None:
    # They were kept for ever: raw batches (keystroke timing) on a desk long after
    # privacy.md's "until delivered".
    old, recent = f"spool.db.corrupt-{_stamp(8 * DAY)}", f"spool.db.corrupt-{_stamp(DAY)}"
    for name in (old, f"{old}-wal", f"{old}-shm", recent, "spool.db.corrupt-notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    SqliteSpool(tmp_path / "spool.db", fsync=False).close()
    # Only names the spool makes are deleted, never a file someone put beside them.
    assert _copies(tmp_path) == sorted([recent, "spool.db.corrupt-notes.txt"])


def test_the_retention_is_a_setting(tmp_path: Path) -> None:
    old = f"spool.db.corrupt-{_stamp(8 * DAY)}"
    (tmp_path / old).write_bytes(b"x")
    open_spool(tmp_path / "spool.db", fsync=False, quarantine_days=30).close()
    assert _copies(tmp_path) == [old]
    with pytest.raises(ValueError):
        SqliteSpool(tmp_path / "other.db", quarantine_days=-1)


def test_zero_days_keeps_no_copy_of_a_damaged_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    _spool_file(path, 20)
    _tear(path, BATCHES_ROOT)
    metrics = CollectorMetrics()
    spool = SqliteSpool(path, fsync=False, metrics=metrics, quarantine_days=0)
    assert _copies(tmp_path) == []
    assert _value(metrics, "cadence_collector_spool_quarantined_total") == 1
    spool.close()


def test_only_the_newest_quarantined_copies_are_kept(tmp_path: Path) -> None:
    names = [f"spool.db.corrupt-{_stamp(hours * 3600)}" for hours in range(1, 6)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    path = tmp_path / "spool.db"
    path.write_bytes(b"not a database" * 500)  # one more, now
    spool = SqliteSpool(path, fsync=False)
    assert spool.quarantined is not None
    kept = _copies(tmp_path)
    assert len(kept) == 3  # collectors.spool.MAX_QUARANTINED
    assert spool.quarantined.name in kept and names[0] in kept and names[1] in kept
    spool.close()


def test_the_copy_just_made_is_kept_when_several_are_made_in_one_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Copies of one second are told apart by a -<n> suffix. Once the first of them had
    # been deleted (more than MAX_QUARANTINED), the next copy took its freed name, which
    # sorts as the oldest of that second: deleted at once, while the log line said it was
    # kept for forensics (found by test_spool_chaos).
    second = time.gmtime()
    monkeypatch.setattr("collectors.spool.copies.time.gmtime", lambda *_: second)
    now = time.monotonic()
    monkeypatch.setattr("collectors.spool.sqlite.time.monotonic", lambda: now)
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False)
    made = []
    for n in range(5):
        spool.put("dev", n, b"k", b"v")
        _damage_while_open(spool)
        now += 61  # past the one-quarantine-a-minute limit
        spool.put("dev", 100 + n, b"k", b"v")
        assert spool.quarantined is not None and spool.quarantined.exists(), n
        made.append(spool.quarantined.name)
    assert len(set(made)) == 5  # five names, never one reused
    assert _copies(tmp_path) == sorted(made[-3:])  # the newest three
    spool.close()


def test_a_running_agent_deletes_expired_copies_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False)
    old = f"spool.db.corrupt-{_stamp(8 * DAY)}"
    (tmp_path / old).write_bytes(b"x")  # expires while the agent runs for weeks
    spool.put("dev", 1, b"k", b"v")
    assert _copies(tmp_path) == [old]  # checked at most once an hour, not at every put
    later = time.monotonic() + 3601
    monkeypatch.setattr("collectors.spool.sqlite.time.monotonic", lambda: later)
    spool.put("dev", 2, b"k", b"v")
    assert _copies(tmp_path) == []
    spool.close()


def test_an_idle_agent_deletes_expired_copies_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A desk nobody types at never puts a batch: the agent's step (sender.poll) does the
    # housekeeping, or the raw batches of a damaged file outlive their retention.
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False)
    sender = BatchSender(spool, bootstrap="127.0.0.1:1", extra_config={"log_level": 0})
    old = f"spool.db.corrupt-{_stamp(8 * DAY)}"
    (tmp_path / old).write_bytes(b"x")
    sender.poll(0)
    assert _copies(tmp_path) == [old]  # looked for at open, then at most once an hour
    later = time.monotonic() + 3601
    monkeypatch.setattr("collectors.spool.sqlite.time.monotonic", lambda: later)
    sender.poll(0)
    assert _copies(tmp_path) == []
    sender.close(0)


# -- damage found while running -----------------------------------------------------------


OPERATIONS: dict[str, Callable[[SqliteSpool], object]] = {
    "put": lambda s: s.put("dev", 1000, b"k", b"v"),
    "pending": lambda s: s.pending(0, 100),
    "remove": lambda s: s.remove([3]),
    "contains": lambda s: s.contains(3),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_damage_found_while_running_is_quarantined_and_the_spool_goes_on(
    tmp_path: Path, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Every operation failed with "database disk image is malformed" until a restart:
    # each new batch was dropped, the backlog never read again.
    metrics = CollectorMetrics()
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False, metrics=metrics)
    for seq in range(20):
        spool.put("dev", seq, b"k", b"v" * 100)
    _damage_while_open(spool)
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        OPERATIONS[operation](spool)  # raised SpoolError
    assert spool.quarantined is not None and spool.quarantined.exists()
    assert _value(metrics, "cadence_collector_spool_quarantined_total") == 1
    assert _value(metrics, "cadence_collector_dropped_batches_total") == 20
    assert "the 20 batches it held are lost" in caplog.text
    expected = 1 if operation == "put" else 0  # the batch being put is kept, in the new file
    assert spool.batches == expected
    spool.put("dev", 1001, b"k", b"v")
    assert len(spool.pending(0, 100)) == expected + 1
    assert spool._db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    spool.close()


def test_ids_and_sequence_numbers_go_on_after_a_quarantine_while_running(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = SqliteSpool(path, fsync=False)
    old = [spool.put("dev", spool.next_seq("dev"), b"k", b"v") for _ in range(5)]
    last = spool.pending(0, 10)[-1].seq
    _damage_while_open(spool)
    new = spool.put("dev", spool.next_seq("dev"), b"k", b"v")
    # An acknowledgement still in flight for an old batch must not remove a new one.
    assert new > max(old)
    spool.remove(old)
    assert [r.id for r in spool.pending(0, 10)] == [new]
    # Numbering goes on without a jump: the pipeline sees a gap of exactly the lost batches.
    assert spool.pending(0, 10)[0].seq == last + 1
    spool.close()
    again = SqliteSpool(path, fsync=False)
    assert again.next_seq("dev") == last + 2
    assert again.put("dev", last + 2, b"k", b"v") > new
    again.close()


def test_the_sender_keeps_spooling_and_delivering_after_damage_while_running(
    tmp_path: Path,
) -> None:
    metrics = CollectorMetrics()
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False, metrics=metrics)
    sender = BatchSender(
        spool, bootstrap="127.0.0.1:1", metrics=metrics, extra_config={"log_level": 0}
    )
    for _ in range(5):
        sender.send(make_batch("dev", sender.next_seq("dev")))
    old = [row.id for row in spool.pending(0, 10)]
    _damage_while_open(spool)
    for _ in range(3):
        sender.send(make_batch("dev", sender.next_seq("dev")))
    assert sender.counters.unspooled == 0  # all three were dropped before
    assert sender.pending == 3
    new = [row.id for row in spool.pending(0, 10)]
    # Reports for batches handed to the producer before the damage, then for the new ones.
    for spool_id in old + new:
        sender._on_delivery(sender._generation, spool_id, None)
    sender.poll(0)
    assert sender.pending == 0 and sender.counters.spool_errors == 0
    assert _value(metrics, "cadence_collector_dropped_batches_total") == 5
    sender.close(0.05)


def test_damage_again_right_after_a_quarantine_is_an_error_not_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that damages every file it is given: one quarantine a minute at most, the
    # failures in between are plain spool errors (counted and reported by the sender).
    metrics = CollectorMetrics()
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False, metrics=metrics)
    spool.put("dev", 1, b"k", b"v")
    _damage_while_open(spool)
    spool.put("dev", 2, b"k", b"v")
    _damage_while_open(spool)
    with pytest.raises(SpoolError, match="malformed"):
        spool.put("dev", 3, b"k", b"v")
    with pytest.raises(SpoolError, match="malformed"):
        spool.pending(0, 10)
    assert _value(metrics, "cadence_collector_spool_quarantined_total") == 1
    later = time.monotonic() + 61
    monkeypatch.setattr("collectors.spool.sqlite.time.monotonic", lambda: later)
    spool.put("dev", 4, b"k", b"v")
    assert _value(metrics, "cadence_collector_spool_quarantined_total") == 2
    assert [r.seq for r in spool.pending(0, 10)] == [4]
    assert len({p.name.split("-wal")[0] for p in tmp_path.glob("spool.db.corrupt-*")}) == 2
    spool.close()


def test_a_damaged_file_that_cannot_be_moved_aside_is_an_error_then_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = CollectorMetrics()
    spool = SqliteSpool(tmp_path / "spool.db", fsync=False, metrics=metrics)
    for seq in range(5):
        spool.put("dev", seq, b"k", b"v")
    _damage_while_open(spool)

    with monkeypatch.context() as patch:
        patch.setattr("collectors.spool.copies.os.replace", _refused)
        # A SpoolError, which the sender counts: an OSError would end the agent.
        with pytest.raises(SpoolError, match="Permission denied"):
            spool.put("dev", 5, b"k", b"v")
    with pytest.raises(SpoolError, match="Permission denied"):
        spool.pending(0, 10)  # not tried again at every operation: once a minute
    later = time.monotonic() + 61
    monkeypatch.setattr("collectors.spool.sqlite.time.monotonic", lambda: later)
    spool.put("dev", 6, b"k", b"v")
    assert [r.seq for r in spool.pending(0, 10)] == [6]
    assert _value(metrics, "cadence_collector_spool_quarantined_total") == 1
    assert _value(metrics, "cadence_collector_dropped_batches_total") == 5
    spool.close()


def test_a_file_that_reads_as_sound_again_after_a_failed_move_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The damage was a bad read (a flaky disk, a network home) and the move aside failed:
    # the reopen found the old file sound and wrote its sequence numbers into it a second
    # time, "UNIQUE constraint failed" once a minute, every batch dropped until a restart.
    path = tmp_path / "spool.db"
    spool = SqliteSpool(path, fsync=False)
    for seq in range(5):
        spool.put("dev", seq, b"k", b"v")
    spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sound = path.read_bytes()
    _damage_while_open(spool)

    with monkeypatch.context() as patch:
        patch.setattr("collectors.spool.copies.os.replace", _refused)
        with pytest.raises(SpoolError, match="Permission denied"):
            spool.put("dev", 5, b"k", b"v")
    path.write_bytes(sound)
    later = time.monotonic() + 61
    monkeypatch.setattr("collectors.spool.sqlite.time.monotonic", lambda: later)
    new = spool.put("dev", 5, b"k", b"v")
    assert [r.seq for r in spool.pending(0, 10)] == [0, 1, 2, 3, 4, 5]
    assert spool.batches == 6 and spool.dropped == 0
    spool.close()
    again = SqliteSpool(path, fsync=False)
    assert again.next_seq("dev") == 6
    assert again.put("dev", 6, b"k", b"v") > new
    again.close()
