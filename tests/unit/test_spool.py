"""The spool: order, bound and drop counting, crash safety, persistent sequence numbers."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors.metrics import CollectorMetrics
from collectors.spool import MemorySpool, SqliteSpool, open_spool


@pytest.fixture(params=["sqlite", "memory"])
def spool(request: pytest.FixtureRequest, tmp_path: Path) -> SqliteSpool | MemorySpool:
    if request.param == "sqlite":
        return SqliteSpool(tmp_path / "spool.db", fsync=False, max_batches=10, max_bytes=10_000)
    return MemorySpool(max_batches=10, max_bytes=10_000)


def test_pending_is_oldest_first_and_resumes_after_cursor(spool: SqliteSpool | MemorySpool) -> None:
    ids = [spool.put("d", seq, b"k", f"v{seq}".encode()) for seq in range(5)]
    assert ids == sorted(ids)
    assert [r.seq for r in spool.pending()] == [0, 1, 2, 3, 4]
    assert [r.seq for r in spool.pending(after_id=ids[1], limit=2)] == [2, 3]
    spool.remove([ids[2], ids[0]])
    assert [r.seq for r in spool.pending()] == [1, 3, 4]
    assert spool.batches == 3
    assert spool.nbytes == 3 * 3


def test_duplicate_remove_is_harmless(spool: SqliteSpool | MemorySpool) -> None:
    i = spool.put("d", 0, b"k", b"v")
    spool.remove([i])
    spool.remove([i])
    assert (spool.batches, spool.nbytes) == (0, 0)


def test_bound_drops_oldest_and_counts(
    spool: SqliteSpool | MemorySpool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="collectors.spool"):
        for seq in range(15):
            spool.put("d", seq, b"k", b"v")
    assert spool.batches == 10
    assert spool.dropped == 5
    assert [r.seq for r in spool.pending()] == list(range(5, 15))
    assert "spool full" in caplog.text and "dropped" in caplog.text


def test_byte_bound(tmp_path: Path) -> None:
    metrics = CollectorMetrics()
    spool = SqliteSpool(tmp_path / "s.db", fsync=False, max_bytes=1000, metrics=metrics)
    for seq in range(10):
        spool.put("d", seq, b"", b"x" * 300)
    assert spool.nbytes <= 1000 and spool.batches == 3
    assert [r.seq for r in spool.pending()] == [7, 8, 9]
    assert metrics.registry.get_sample_value("cadence_collector_dropped_batches_total") == 7
    assert metrics.registry.get_sample_value("cadence_collector_spool_batches") == 3
    assert metrics.registry.get_sample_value("cadence_collector_spool_bytes") == 900


def test_a_batch_larger_than_the_bound_is_kept_alone(spool: SqliteSpool | MemorySpool) -> None:
    # It used to evict everything, itself included: put() returned the id of a row
    # already deleted, and the sender delivered a batch the spool had reported dropped.
    spool.put("d", 0, b"k", b"v" * 10)
    big = spool.put("d", 1, b"k", b"v" * 20_000)
    assert spool.contains(big) and [r.seq for r in spool.pending()] == [1]
    assert (spool.batches, spool.dropped) == (1, 1)
    spool.put("d", 2, b"k", b"v")  # the next put brings the spool back within its bound
    assert [r.seq for r in spool.pending()] == [2] and spool.nbytes <= 10_000


def test_reopen_keeps_batches_sizes_and_sequences(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = SqliteSpool(path)
    a0 = spool.next_seq("dev-a")
    for _seq in range(4):
        spool.put("dev-a", spool.next_seq("dev-a"), b"k", b"vv")
    b0 = spool.next_seq("dev-b")  # a first number is time-based: take it when used
    spool.put("dev-b", b0, b"k", b"vv")
    spool.remove([r.id for r in spool.pending(limit=2)])
    spool.close()

    again = SqliteSpool(path)
    assert [(r.device, r.seq) for r in again.pending()] == [
        ("dev-a", a0 + 2),
        ("dev-a", a0 + 3),
        ("dev-b", b0),
    ]
    assert (again.batches, again.nbytes) == (3, 9)
    # Numbering continues where it stopped, also for batches already acknowledged.
    assert again.next_seq("dev-a") == a0 + 4
    assert again.next_seq("dev-b") == b0 + 1
    # A device never seen here starts above any number it could have used before.
    assert again.next_seq("dev-new") >= int(time.time() * 1000) - 1000


def test_sequence_survives_removal_of_every_batch(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.db")
    first = spool.next_seq("d")
    for _ in range(3):
        spool.put("d", spool.next_seq("d"), b"", b"v")
    spool.remove([r.id for r in spool.pending()])
    spool.close()
    assert SqliteSpool(tmp_path / "s.db").next_seq("d") == first + 3


_WRITER = """
import os, sys
from collectors.spool import SqliteSpool
spool = SqliteSpool(sys.argv[1], fsync=False)
for seq in range(200):
    spool.put("d", spool.next_seq("d"), b"k", b"v" * 100)
    if seq == 149:
        print("ready", flush=True)
        os.kill(os.getpid(), 9)  # no close, no atexit: what kill -9 leaves behind
"""


def test_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(path)], capture_output=True, text=True
    )
    assert proc.returncode == -9 and "ready" in proc.stdout
    spool = SqliteSpool(path)
    seqs = [r.seq for r in spool.pending(limit=1000)]
    assert seqs == list(range(seqs[0], seqs[0] + 150))
    assert spool.next_seq("d") == seqs[0] + 150


def test_open_spool_without_path_is_in_memory() -> None:
    assert isinstance(open_spool(None), MemorySpool)


def test_bounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MemorySpool(max_batches=0)


def test_next_seq_is_stable_until_used(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.db")
    first = spool.next_seq("d")
    time.sleep(0.01)
    assert spool.next_seq("d") == first
    spool.put("d", first, b"", b"v")
    assert spool.next_seq("d") == first + 1
    assert MemorySpool().next_seq("d") == 0


def test_remove_of_many_ids_with_repeats_and_unknowns(spool: SqliteSpool | MemorySpool) -> None:
    spool.max_batches, spool.max_bytes = 5000, 10_000_000
    ids = [spool.put("dev", seq, b"k", b"vv") for seq in range(1200)]
    # More ids than one statement binds, an id twice, an id the spool never held.
    spool.remove(ids[:1100] + ids[:3] + [10**9])
    assert spool.batches == 100 and spool.nbytes == 300
    assert [row.id for row in spool.pending(0, 1000)] == ids[1100:]


def test_a_second_agent_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    # Two `cadence collect` of one user on one desk (an autostart entry next to the
    # systemd user unit; a console and an xrdp session) shared the state dir and both
    # continued the device's sequence from the same number: different batches under one
    # (device, seq), dead-lettered or dropped by the worker, counted nowhere.
    from collectors.spool import SpoolError

    path = tmp_path / "spool.db"
    first = SqliteSpool(path, fsync=False)
    first.put("dev-1", first.next_seq("dev-1"), b"u", b"batch")
    with pytest.raises(SpoolError, match="in use by another agent"):
        SqliteSpool(path, fsync=False)
    first.close()
    again = SqliteSpool(path, fsync=False)  # the lock goes with the agent
    assert again.batches == 1
    again.close()


def test_the_spool_is_readable_by_its_user_only(tmp_path: Path) -> None:
    # The spool holds raw batches (key classes and pointer positions; key hashes in the
    # key-identity mode) for as long as the broker is unreachable: days of typing, which
    # another local user could copy under the usual umask.
    import os
    import stat

    old = os.umask(0o022)
    try:
        state = tmp_path / "state" / "cadence"
        spool = SqliteSpool(state / "spool.db", fsync=False)
        spool.put("dev-1", 1, b"u", b"raw batch")
        spool.close()
    finally:
        os.umask(old)
    for p in [state, *state.iterdir()]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p.name} is {oct(mode)}"


def test_an_existing_spool_file_is_made_private_when_opened(tmp_path: Path) -> None:
    import os
    import sqlite3
    import stat

    path = tmp_path / "spool.db"
    SqliteSpool(path, fsync=False).close()
    # An agent of before this rule, killed: its write-ahead log holds the latest batches.
    old_agent = sqlite3.connect(path)
    old_agent.execute("PRAGMA journal_mode=WAL")
    old_agent.execute("INSERT OR REPLACE INTO sequences VALUES ('dev-1', 7)")
    old_agent.commit()
    wal = tmp_path / "spool.db-wal"
    for p in (path, wal):
        os.chmod(p, 0o644)
    spool = SqliteSpool(path, fsync=False)
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600  # while the agent runs, too
    spool.close()
    old_agent.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_filesystem_without_locks_does_not_stop_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # flock fails with ENOLCK on a network home without a lock daemon: that is not
    # "in use by another agent", and agents ran there before the lock existed.
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="collectors.spool"):
        spool = SqliteSpool(tmp_path / "spool.db", fsync=False)
    spool.put("dev-1", 1, b"u", b"batch")
    assert spool.batches == 1
    spool.close()
    assert "would not be kept out" in caplog.text
