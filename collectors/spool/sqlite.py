"""The durable spool: every batch the broker has not acknowledged yet, in one SQLite file.

Why SQLite (stdlib ``sqlite3``) in WAL mode rather than hand-rolled segment files:
a committed insert survives ``kill -9`` of the agent (and, with ``fsync=True``, a
power cut), a torn write is rolled back by SQLite on reopen instead of by recovery
code of our own, and deleting acknowledged batches out of order (delivery reports
can arrive interleaved across partitions) is one indexed ``DELETE`` instead of
segment compaction. In WAL mode a commit is one sequential append to the log, so
the per-batch cost stays in the tens of microseconds (``fsync=False``) or one
fsync (``fsync=True``, what ``cadence collect`` uses: it closes ~4 batches/s). Only
puts are fsynced: a removal lost to a power cut resends a batch, it loses none.

The same file holds each device's last sequence number, so numbering continues
across restarts. :class:`collectors.spool.memory.MemorySpool` has the same interface
without a disk.

The spool is bounded by batches and bytes. Past the bound the *oldest* batches are
dropped, counted (``dropped``, ``cadence_collector_dropped_batches_total``) and
reported in a WARNING log line: losing the oldest data of a long outage is the
lesser evil compared with filling the workstation's disk.

A file that cannot be written (disk full, locked by another process) raises
:class:`SpoolError` from the failed operation with SQLite's reason, the transaction
undone and the sizes unchanged; the sender counts it and carries on. A damaged file
(not a database, malformed pages, a schema that is not ours, anything the open-time
check cannot read) is moved aside at open and a fresh spool started; so is a file an
operation finds damaged while the agent runs (SQLite's "database disk image is
malformed"), at most once a minute. The batches such a file held are counted as dropped
(as many as can still be read from it), and the moved-aside copies are deleted after
``quarantine_days``, a few kept at most (:mod:`collectors.spool.copies`): they hold raw
batches that will never be delivered. Single rows whose content is damaged in a file that is
otherwise sound (a value of the wrong type, a device name that is not UTF-8: bit rot
SQLite's page checks cannot see) are deleted where they are found, at open or by
:meth:`SqliteSpool.pending`, and counted as dropped: one bad row never wedges the
queue, and never costs the good rows around it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from collectors.metrics import CollectorMetrics
from collectors.spool.base import (
    DEFAULT_MAX_BATCHES,
    DEFAULT_MAX_BYTES,
    Bounded,
    SpooledBatch,
    SpoolError,
)
from collectors.spool.copies import (
    DEFAULT_QUARANTINE_DAYS,
    move_aside,
    prune,
    readable_batches,
)
from collectors.spool.damage import Damaged, check_rows, device_name, is_corruption, is_damage

log = logging.getLogger(__name__)

# Expired copies are looked for at open and then at most this often (a desk agent can
# run for weeks without a restart).
_PRUNE_INTERVAL_S = 3600.0
# A file found damaged while running is moved aside at most this often: a disk that
# damages every fresh file too gets plain spool errors in between (counted and
# reported by the sender), not one quarantine per operation.
_REQUARANTINE_S = 60.0

_T = TypeVar("_T")


class SqliteSpool(Bounded):
    """A durable spool in one SQLite file (WAL mode)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_batches: int = DEFAULT_MAX_BATCHES,
        fsync: bool = True,
        metrics: CollectorMetrics | None = None,
        quarantine_days: float = DEFAULT_QUARANTINE_DAYS,
    ) -> None:
        super().__init__(max_bytes, max_batches, metrics)
        if not (math.isfinite(quarantine_days) and quarantine_days >= 0):
            raise ValueError("quarantine_days must be a number of days, 0 or more")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fsync = fsync
        self.quarantine_days = quarantine_days
        self.quarantined: Path | None = None  # where a damaged spool file was last moved aside
        self.damaged_rows = 0  # rows deleted because their content was damaged (in dropped too)
        self._top_id = 0  # the highest spool id handed out: a fresh file continues above it
        self._last_quarantine: float | None = None  # time.monotonic() of the last one
        # Why there is no open file (moved aside, a fresh one failed to open), and when to
        # try again: once a minute, not at every operation.
        self._no_file: Exception | None = None
        self._reopen_at = 0.0
        self._prune_at = 0.0  # time.monotonic() of the next look for expired copies
        self._lock_fd = self._take_lock()
        try:
            self._db = self._open()
        except Exception as exc:
            # Whatever the check cannot read is damage, never an exception out of the agent
            # at every start; only "cannot use the file now" (locked, full...) keeps it.
            if not is_damage(exc):
                self._release_lock()
                raise SpoolError("open", self.path, exc) from exc
            held, exact = readable_batches(self.path)
            self.quarantined = self._quarantine(exc, held, exact, "at open")
            self._count = self._bytes = 0
            self._last_seq.clear()
            try:
                self._db = self._open()
            except Exception as again:
                self._release_lock()
                raise SpoolError("open", self.path, again) from again
        self.tidy()

    def _take_lock(self) -> int | None:
        """One agent per spool: a second one would hand out the same sequence numbers.

        An advisory ``flock`` on ``<spool>.lock``, released with the process however it
        ends. Not on Windows (no ``fcntl``): there one agent per user session is the
        installer's rule (docs/collectors.md).
        """
        try:
            import fcntl
        except ImportError:
            return None
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError("open", self.path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise SpoolError(
                    "open", self.path, OSError(f"in use by another agent ({exc.strerror})")
                ) from exc
            # No locking here at all (a network home without a lock daemon): agents ran
            # without the lock before it existed, so this one runs on, and says so.
            log.warning("cannot lock %s (%s): a second agent would not be kept out", lock_path, exc)
            return None
        return fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)

    def _open(self) -> sqlite3.Connection:
        # Raw batches: readable by this user only. New -wal and -shm files take the
        # database's mode; ones left by an agent of before this rule keep theirs.
        with contextlib.suppress(OSError):
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for part in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(self.path.with_name(self.path.name + part), 0o600)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per operation.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash; FULL also survives power loss.
            db.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS batches (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    device TEXT NOT NULL, seq INTEGER NOT NULL,
                    key BLOB NOT NULL, value BLOB NOT NULL, size INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS sequences (
                    device TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
                """
            )
            # Every page, read once at start (cost measured in docs/collectors.md): a
            # malformed page is found here, where the file can be moved aside, rather than
            # mid-run, where every read of the backlog would fail on it.
            problems = db.execute("PRAGMA quick_check").fetchall()
            if problems != [("ok",)]:
                raise Damaged("; ".join(str(p[0]) for p in problems[:3]))
            rows = check_rows(db, self.path)
            if rows.damaged:
                self._count_damaged(rows.damaged, "at open")
            (top,) = db.execute(
                "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'batches'"
            ).fetchone()
        except BaseException:
            db.close()
            raise
        self._count, self._bytes = rows.batches, rows.size
        self._last_seq.update(rows.sequences)
        self._top_id = max(self._top_id, top if type(top) is int else 0)
        return db

    def _count_damaged(self, n: int, where: str) -> None:
        self.damaged_rows += n
        self.dropped += n
        if self.metrics is not None and n:
            self.metrics.dropped_batches.inc(n)
        log.error(
            "spool %s: deleted %d batches whose stored content is damaged, found %s; the "
            "pipeline reports them as a sequence gap (%d dropped in total)",
            self.path,
            n,
            where,
            self.dropped,
        )

    def _quarantine(self, exc: Exception, held: int, exact: bool, when: str) -> Path:
        """Move a damaged spool aside (kept for forensics, for a while) so that the agent goes on.

        Its batches are lost to the pipeline, which sees a sequence gap: counted as dropped,
        ``held`` of them (``exact`` False: a lower bound, the rest cannot be read). The
        fresh spool numbers on from the sequence numbers still known, or else from
        wall-clock milliseconds (``_first_seq``), above any number the lost file handed
        out, so no new batch is taken for a duplicate of an old one.
        """
        target = move_aside(self.path)
        self._last_quarantine = time.monotonic()
        self.dropped += held
        if self.metrics is not None:
            self.metrics.spool_quarantined.inc()
            self.metrics.dropped_batches.inc(held)
        if exact:
            lost = f"the {held} batches it held are lost"
        elif held:
            lost = f"at least {held} batches it held are lost (the rest of it cannot be read)"
        else:
            lost = "how many batches it held cannot be read (none counted as dropped)"
        log.error(
            "spool %s is damaged (%s found %s: %s): moved it aside to %s (kept for forensics, "
            "deleted after %g days) and started an empty spool; %s, counted as dropped%s; the "
            "pipeline reports them as a sequence gap (%d dropped in total)",
            self.path,
            type(exc).__name__,
            when,
            exc,
            target,
            self.quarantine_days,
            lost,
            " (any already handed to the producer may still arrive)" if when != "at open" else "",
            self.dropped,
        )
        self._prune_quarantined()
        return target

    def tidy(self) -> None:
        """Housekeeping the agent runs at every step: an idle desk never puts a batch,
        and expired copies of a damaged file must go all the same (at most hourly)."""
        if time.monotonic() >= self._prune_at:
            self._prune_quarantined()

    def _prune_quarantined(self) -> None:
        self._prune_at = time.monotonic() + _PRUNE_INTERVAL_S
        prune(self.path, self.quarantine_days)

    def _first_seq(self) -> int:
        # A device id is derived from the machine, so a reinstalled agent (state lost)
        # reuses it; starting from wall-clock milliseconds puts its numbers above any
        # it used before (a desk closes ~4 batches/s, far below 1000/s), so consumers
        # deduplicating on (device, seq) never take new batches for old ones.
        return int(time.time() * 1000)

    def put(self, device: str, seq: int, key: bytes, value: bytes) -> int:
        with self._lock:
            spool_id, dropped = self._recovering("put", lambda: self._put(device, seq, key, value))
        if dropped:
            self._report_drop(dropped)
        self.tidy()
        return spool_id

    def _put(
        self, device: str, seq: int, key: bytes, value: bytes
    ) -> tuple[int, list[tuple[str, int, int]]]:
        size = len(key) + len(value)
        db = self._db
        before = self._count, self._bytes
        try:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute(
                "INSERT INTO batches (device, seq, key, value, size) VALUES (?, ?, ?, ?, ?)",
                (device, seq, key, value, size),
            )
            if seq > self._last_seq.get(device, -1):
                db.execute(
                    "INSERT INTO sequences (device, last_seq) VALUES (?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET last_seq = excluded.last_seq",
                    (device, seq),
                )
            self._count += 1
            self._bytes += size
            dropped = self._evict(cur.lastrowid) if self._over() else []
            db.execute("COMMIT")
        except BaseException as exc:
            self._abort(before)
            if isinstance(exc, sqlite3.Error):
                raise SpoolError("put", self.path, exc) from exc
            raise
        if seq > self._last_seq.get(device, -1):
            self._last_seq[device] = seq
        spool_id = cur.lastrowid
        assert spool_id is not None
        self._top_id = max(self._top_id, spool_id)
        return spool_id, dropped

    def _recovering(self, operation: str, action: Callable[[], _T]) -> _T:
        """Run one operation (lock held). If it finds the file damaged, move the file aside
        and open a fresh one, as at open, and run it once more there: damage appearing
        mid-run must not fail every put and read until the agent is restarted."""
        if self._no_file is not None:
            if time.monotonic() < self._reopen_at:
                raise SpoolError(operation, self.path, self._no_file)
            self._reopen(operation)
        try:
            return action()
        except SpoolError as exc:
            if not self._recover(exc):
                raise
        return action()  # on the fresh file: a failure now is a plain SpoolError

    def _recover(self, exc: SpoolError) -> bool:
        """Quarantine a file found damaged while running; False if this is not damage, or
        the last quarantine was under ``_REQUARANTINE_S`` ago (never one per operation)."""
        if not is_corruption(exc.cause):
            return False
        if (
            self._last_quarantine is not None
            and time.monotonic() - self._last_quarantine < _REQUARANTINE_S
        ):
            return False
        # Closed before the move: closing later would delete the fresh file's -wal by name.
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        try:
            self._set_aside(exc.cause, f"by a {exc.operation}")
        except OSError as move:
            # The damaged file stays where it is: moved aside by the next attempt to open
            # it, in a minute; each operation until then fails, counted by the sender.
            self._no_file, self._reopen_at = move, time.monotonic() + _REQUARANTINE_S
            raise SpoolError(exc.operation, self.path, move) from move
        self._reopen(exc.operation)
        return True

    def _set_aside(self, exc: Exception, when: str) -> None:
        # While running, the spool's own count of what the file held is exact.
        self.quarantined = self._quarantine(exc, self._count, True, when)
        self._count = self._bytes = 0

    def _reopen(self, operation: str) -> None:
        """Open a fresh file in place of one found damaged while running.

        Spool ids go on above the old file's: a delivery report still in flight for an old
        batch then removes nothing new. The sequence numbers known are written to it, so
        numbering goes on without a jump (the lost batches are the pipeline's only gap).
        """
        try:
            try:
                db = self._open()
            except Exception as exc:
                if not is_damage(exc):
                    raise
                # Still the damaged file: moving it aside failed at the last attempt.
                self._set_aside(exc, "on opening it again")
                db = self._open()
            try:
                db.execute("BEGIN IMMEDIATE")
                # Raised, never inserted twice: the file may be the old one after all (its
                # move failed, and it reads as sound now: the damage was a bad read).
                db.execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'batches'",
                    (self._top_id,),
                )
                db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT 'batches', ? WHERE NOT "
                    "EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'batches')",
                    (self._top_id,),
                )
                db.executemany(
                    "INSERT INTO sequences (device, last_seq) VALUES (?, ?) ON CONFLICT(device)"
                    " DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                    self._last_seq.items(),
                )
                db.execute("COMMIT")
            except BaseException:
                db.close()
                raise
        except Exception as exc:
            # Tried again in a minute; until then each operation fails, counted by the sender.
            self._no_file, self._reopen_at = exc, time.monotonic() + _REQUARANTINE_S
            raise SpoolError(operation, self.path, exc) from exc
        self._db = db
        self._no_file = None

    def _abort(self, sizes: tuple[int, int]) -> None:
        # SQLite may have rolled the transaction back itself (a full disk does): a
        # ROLLBACK then raises "no transaction is active" and would hide the real error.
        self._count, self._bytes = sizes
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _evict(self, newest: int | None) -> list[tuple[str, int, int]]:
        """Drop the oldest batches until within the bound, never ``newest`` (the one being
        put): a batch larger than the bound alone is kept, the bound exceeded by it alone,
        rather than the spool emptied and the batch reported put while already gone."""
        dropped: list[tuple[str, int, int]] = []
        last_id = 0
        while self._over():
            # Decide in Python over a fully-read chunk, then delete the prefix in one statement.
            # The device as bytes: a name damaged since open must not stop the bound.
            rows = self._db.execute(
                "SELECT id, CAST(device AS BLOB), seq, size FROM batches WHERE id > ? "
                "ORDER BY id LIMIT 256",
                (last_id,),
            ).fetchall()
            if not rows:
                break
            if rows[0][0] == newest:
                break
            for row_id, raw, seq, size in rows:
                if not self._over() or row_id == newest:
                    break
                if type(size) is not int:
                    size = 0  # damaged since open (the open-time check deletes such rows)
                device = bytes(raw or b"").decode("utf-8", "replace")  # for the log only
                dropped.append((device, seq, size))
                self._count -= 1
                self._bytes -= size
                last_id = row_id
        self._db.execute("DELETE FROM batches WHERE id <= ?", (last_id,))
        return dropped

    def remove(self, ids: Iterable[int]) -> None:
        ids = list(dict.fromkeys(ids))  # a duplicate in one call would be counted twice
        if not ids:
            return
        with self._lock:
            self._recovering("remove", lambda: self._remove(ids))

    def _remove(self, ids: list[int]) -> None:
        db = self._db
        before = self._count, self._bytes
        try:
            if self._fsync:
                # A removal lost to a power cut only resends an acknowledged batch (a
                # duplicate, which consumers drop), never loses one: so no fsync of its
                # own. The next put's FULL commit syncs the WAL, these frames included.
                # Halves the fsyncs per batch; a process crash still keeps the commit.
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            # SELECT then DELETE rather than DELETE ... RETURNING, which needs SQLite
            # 3.35 (Ubuntu 20.04 ships 3.31); chunks stay under the oldest limit of
            # 999 bound parameters.
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found, size = db.execute(
                    f"SELECT count(*), coalesce(sum(size), 0) FROM batches WHERE id IN ({marks})",
                    chunk,
                ).fetchone()
                # Ids already dropped or removed (a duplicate ack) are simply not found.
                db.execute(f"DELETE FROM batches WHERE id IN ({marks})", chunk)
                self._count -= int(found)
                self._bytes -= int(size)
            db.execute("COMMIT")
        except BaseException as exc:
            self._abort(before)
            if isinstance(exc, sqlite3.Error):
                raise SpoolError("remove", self.path, exc) from exc
            raise
        finally:
            if self._fsync:
                # Puts must stay fsynced whatever became of this removal (the pragma
                # only sets a flag on the connection, outside any transaction).
                db.execute("PRAGMA synchronous=FULL")

    def pending(self, after_id: int = 0, limit: int = 1000) -> list[SpooledBatch]:
        """Up to ``limit`` batches after spool id ``after_id``, oldest first.

        A row whose content turns out damaged (bit rot since open) is deleted, counted as
        dropped, and read past: one bad row must not fail every read of the backlog, and
        with it the delivery of every later batch.
        """
        with self._lock:
            return self._recovering("read", lambda: self._pending(after_id, limit))

    def _pending(self, after_id: int, limit: int) -> list[SpooledBatch]:
        while True:
            try:
                rows = self._db.execute(
                    "SELECT id, CAST(device AS BLOB), typeof(device), seq, key, value "
                    "FROM batches WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise SpoolError("read", self.path, exc) from exc
            out: list[SpooledBatch] = []
            bad: list[int] = []
            for i, raw, kind, seq, key, value in rows:
                device = device_name(raw) if kind == "text" else None
                if (
                    device is None
                    or type(seq) is not int
                    or type(key) is not bytes
                    or type(value) is not bytes
                ):
                    bad.append(i)
                else:
                    out.append(SpooledBatch(i, device, seq, key, value))
            if bad:
                self._discard(bad)
            if out or not rows:
                return out
            after_id = rows[-1][0]  # every row read was damaged: read on past them

    def _discard(self, ids: list[int]) -> None:
        """Delete damaged rows (lock held), counted as dropped."""
        db = self._db
        before = self._count, self._bytes
        marks = ",".join("?" * len(ids))
        try:
            db.execute("BEGIN IMMEDIATE")
            found, size = db.execute(
                f"SELECT count(*), coalesce(sum(size), 0) FROM batches WHERE id IN ({marks})", ids
            ).fetchone()
            db.execute(f"DELETE FROM batches WHERE id IN ({marks})", ids)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abort(before)
            # Skipped by this read all the same; a later read finds and deletes them.
            log.error("spool %s: could not delete %d damaged batches: %s", self.path, len(ids), exc)
            return
        self._count -= int(found)
        self._bytes -= int(size) if isinstance(size, int | float) else 0
        self._count_damaged(int(found), f"reading the backlog (spool ids {ids[0]}..{ids[-1]})")

    def contains(self, spool_id: int) -> bool:
        with self._lock:
            return self._recovering("read", lambda: self._contains(spool_id))

    def _contains(self, spool_id: int) -> bool:
        try:
            row = self._db.execute("SELECT 1 FROM batches WHERE id = ?", (spool_id,)).fetchone()
        except sqlite3.Error as exc:
            raise SpoolError("read", self.path, exc) from exc
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._release_lock()

    def __del__(self) -> None:
        self._release_lock()
