"""The local spool: every batch the broker has not acknowledged yet, oldest first.

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
across restarts. :class:`MemorySpool` has the same interface without a disk, for
replayers and benchmarks that re-create their input anyway.

The spool is bounded by batches and bytes. Past the bound the *oldest* batches are
dropped, counted (``dropped``, ``cadence_collector_dropped_batches_total``) and
reported in a WARNING log line: losing the oldest data of a long outage is the
lesser evil compared with filling the workstation's disk.

A file that cannot be written (disk full, locked by another process) raises
:class:`SpoolError` from the failed operation with SQLite's reason, the transaction
undone and the sizes unchanged; the sender counts it and carries on. A damaged file
(not a database, malformed pages) is moved aside at open and a fresh spool started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, Protocol

from collectors.metrics import CollectorMetrics

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_BATCHES = 1_000_000
# SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged, not merely busy or unwritable.
_DAMAGED = (11, 26)


class SpoolError(Exception):
    """The spool file could not be opened, read or written (disk full, locked, unreadable).

    The sender catches it and keeps running: a batch it could not put is dropped and
    counted; acknowledged ids it could not remove are removed at a later attempt.
    """

    def __init__(self, operation: str, path: Path, cause: sqlite3.Error) -> None:
        super().__init__(f"spool {operation} failed on {path}: {cause}")
        self.operation = operation  # open | put | remove | read
        self.cause = cause


class SpooledBatch(NamedTuple):
    id: int  # spool position: increasing in the order batches were put
    device: str
    seq: int
    key: bytes
    value: bytes


class Spool(Protocol):
    """What :class:`collectors.delivery.BatchSender` needs from a spool."""

    dropped: int

    def put(self, device: str, seq: int, key: bytes, value: bytes) -> int: ...
    def remove(self, ids: Iterable[int]) -> None: ...
    def pending(self, after_id: int = 0, limit: int = 1000) -> list[SpooledBatch]: ...
    def contains(self, spool_id: int) -> bool: ...
    def next_seq(self, device: str) -> int: ...
    @property
    def batches(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def close(self) -> None: ...


class _Bounded:
    """Shared bookkeeping: sizes, the bound and drop reporting."""

    def __init__(self, max_bytes: int, max_batches: int, metrics: CollectorMetrics | None) -> None:
        if max_bytes <= 0 or max_batches <= 0:
            raise ValueError("spool bounds must be positive")
        self.max_bytes = max_bytes
        self.max_batches = max_batches
        self.metrics = metrics
        self.dropped = 0
        self._count = 0
        self._bytes = 0
        self._last_seq: dict[str, int] = {}
        self._lock = threading.Lock()
        if metrics is not None:
            metrics.track_spool(lambda: self._count, lambda: self._bytes)

    @property
    def batches(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _over(self) -> bool:
        return self._count > self.max_batches or self._bytes > self.max_bytes

    def next_seq(self, device: str) -> int:
        """The next sequence number for ``device``: one more than the last one put.

        Numbers are persisted together with the batch that uses them, so a number
        handed out but never put (a crash in between) is simply handed out again.
        """
        with self._lock:
            last = self._last_seq.get(device)
            if last is None:
                # Fixed on first ask, so asking twice before a put gives the same number.
                last = self._last_seq[device] = self._first_seq() - 1
            return last + 1

    def _first_seq(self) -> int:
        return 0

    def _report_drop(self, dropped: list[tuple[str, int, int]]) -> None:
        n = len(dropped)
        self.dropped += n
        if self.metrics is not None:
            self.metrics.dropped_batches.inc(n)
        first, last = dropped[0], dropped[-1]
        log.warning(
            "spool full (bound %d batches / %d bytes): dropped %d oldest unsent batches "
            "(%d bytes; from device %s seq %d to device %s seq %d); %d dropped in total",
            self.max_batches,
            self.max_bytes,
            n,
            sum(size for _, _, size in dropped),
            first[0],
            first[1],
            last[0],
            last[1],
            self.dropped,
        )


class SqliteSpool(_Bounded):
    """A durable spool in one SQLite file (WAL mode)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_batches: int = DEFAULT_MAX_BATCHES,
        fsync: bool = True,
        metrics: CollectorMetrics | None = None,
    ) -> None:
        super().__init__(max_bytes, max_batches, metrics)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self.quarantined: Path | None = None  # where a damaged spool file was moved aside
        try:
            self._db = self._open()
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) not in _DAMAGED:
                raise SpoolError("open", self.path, exc) from exc
            self.quarantined = self._quarantine(exc)
            try:
                self._db = self._open()
            except sqlite3.Error as again:
                raise SpoolError("open", self.path, again) from again

    def _open(self) -> sqlite3.Connection:
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
            # Reads every row's size: a damaged page is found here, at start, not mid-run.
            count, size = db.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM batches"
            ).fetchone()
            sequences = db.execute("SELECT device, last_seq FROM sequences").fetchall()
        except BaseException:
            db.close()
            raise
        self._count, self._bytes = int(count), int(size)
        self._last_seq.update((str(device), int(last)) for device, last in sequences)
        return db

    def _quarantine(self, exc: sqlite3.Error) -> Path:
        """Move a damaged spool aside (kept for forensics) so that the agent can start.

        Its batches are lost to the pipeline, which sees a sequence gap. The fresh spool
        numbers from wall-clock milliseconds (``_first_seq``), above any number the lost
        file handed out, so no new batch is taken for a duplicate of an old one.
        """
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                os.replace(part, target.with_name(target.name + suffix))
        if self.metrics is not None:
            self.metrics.spool_quarantined.inc()
        log.error(
            "spool %s is damaged (%s): moved it aside to %s and started an empty spool; the "
            "batches it held are lost (the pipeline reports them as a sequence gap)",
            self.path,
            exc,
            target,
        )
        return target

    def _first_seq(self) -> int:
        # A device id is derived from the machine, so a reinstalled agent (state lost)
        # reuses it; starting from wall-clock milliseconds puts its numbers above any
        # it used before (a desk closes ~4 batches/s, far below 1000/s), so consumers
        # deduplicating on (device, seq) never take new batches for old ones.
        return int(time.time() * 1000)

    def put(self, device: str, seq: int, key: bytes, value: bytes) -> int:
        size = len(key) + len(value)
        with self._lock:
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
                dropped = self._evict() if self._over() else []
                db.execute("COMMIT")
            except BaseException as exc:
                self._abort(before)
                if isinstance(exc, sqlite3.Error):
                    raise SpoolError("put", self.path, exc) from exc
                raise
            if seq > self._last_seq.get(device, -1):
                self._last_seq[device] = seq
        if dropped:
            self._report_drop(dropped)
        spool_id = cur.lastrowid
        assert spool_id is not None
        return spool_id

    def _abort(self, sizes: tuple[int, int]) -> None:
        # SQLite may have rolled the transaction back itself (a full disk does): a
        # ROLLBACK then raises "no transaction is active" and would hide the real error.
        self._count, self._bytes = sizes
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _evict(self) -> list[tuple[str, int, int]]:
        dropped: list[tuple[str, int, int]] = []
        last_id = 0
        while self._over():
            # Decide in Python over a fully-read chunk, then delete the prefix in one statement.
            rows = self._db.execute(
                "SELECT id, device, seq, size FROM batches WHERE id > ? ORDER BY id LIMIT 256",
                (last_id,),
            ).fetchall()
            if not rows:
                break
            for row_id, device, seq, size in rows:
                if not self._over():
                    break
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
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, device, seq, key, value FROM batches WHERE id > ? "
                    "ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise SpoolError("read", self.path, exc) from exc
        return [SpooledBatch(int(i), d, int(s), bytes(k), bytes(v)) for i, d, s, k, v in rows]

    def contains(self, spool_id: int) -> bool:
        with self._lock:
            try:
                row = self._db.execute("SELECT 1 FROM batches WHERE id = ?", (spool_id,)).fetchone()
            except sqlite3.Error as exc:
                raise SpoolError("read", self.path, exc) from exc
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MemorySpool(_Bounded):
    """The same interface without a disk: for replay and benchmarks, not for ``collect``."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_batches: int = DEFAULT_MAX_BATCHES,
        metrics: CollectorMetrics | None = None,
    ) -> None:
        super().__init__(max_bytes, max_batches, metrics)
        self._rows: OrderedDict[int, SpooledBatch] = OrderedDict()
        self._next_id = 1

    def put(self, device: str, seq: int, key: bytes, value: bytes) -> int:
        dropped: list[tuple[str, int, int]] = []
        with self._lock:
            spool_id = self._next_id
            self._next_id += 1
            self._rows[spool_id] = SpooledBatch(spool_id, device, seq, key, value)
            self._count += 1
            self._bytes += len(key) + len(value)
            if seq > self._last_seq.get(device, -1):
                self._last_seq[device] = seq
            while self._over() and self._rows:
                _, old = self._rows.popitem(last=False)
                size = len(old.key) + len(old.value)
                self._count -= 1
                self._bytes -= size
                dropped.append((old.device, old.seq, size))
        if dropped:
            self._report_drop(dropped)
        return spool_id

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            for i in ids:
                old = self._rows.pop(i, None)
                if old is not None:
                    self._count -= 1
                    self._bytes -= len(old.key) + len(old.value)

    def pending(self, after_id: int = 0, limit: int = 1000) -> list[SpooledBatch]:
        with self._lock:
            out: list[SpooledBatch] = []
            # Ids are increasing in insertion order, so skip the (usually short) acked prefix.
            for spool_id, row in self._rows.items():
                if spool_id > after_id:
                    out.append(row)
                    if len(out) >= limit:
                        break
            return out

    def contains(self, spool_id: int) -> bool:
        return spool_id in self._rows

    def close(self) -> None:
        pass


def open_spool(
    path: str | Path | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_batches: int = DEFAULT_MAX_BATCHES,
    fsync: bool = True,
    metrics: CollectorMetrics | None = None,
) -> SqliteSpool | MemorySpool:
    """A durable spool at ``path``, or a non-durable in-memory one when ``path`` is None."""
    if path is None:
        return MemorySpool(max_bytes=max_bytes, max_batches=max_batches, metrics=metrics)
    return SqliteSpool(
        path, max_bytes=max_bytes, max_batches=max_batches, fsync=fsync, metrics=metrics
    )
