"""Telling a damaged spool file from one that cannot be used now, and damaged rows.

A file SQLite cannot read as ours is *damage*: :class:`collectors.spool.sqlite.SqliteSpool`
moves it aside and starts a fresh one. A file that is locked, full or unreadable for the
moment is *unavailable*: kept, and the error reported. Sound pages can still hold a row
whose content is wrong (a flipped bit in a serial type or a device name); such rows are
found here and deleted alone, as the bound would drop them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

# Primary SQLite result codes that say the file is there but cannot be used *now*
# (SQLITE_PERM, BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL, AUTH):
# not damage, so the file is kept and the error reported. Any other failure of the
# open-time check (SQLITE_CORRUPT 11, SQLITE_NOTADB 26, SQLITE_ERROR 1 from a schema that
# is not ours, a decode or type error on the content) means the content is not what
# this module wrote: damage, so the file is moved aside.
UNAVAILABLE = frozenset({3, 5, 6, 7, 8, 10, 13, 14, 15, 23})
# While running only SQLite's own verdict on the file counts as damage (SQLITE_CORRUPT,
# SQLITE_NOTADB): anything else (locked, full, a bug of ours) keeps the file and is
# reported, since moving it aside loses every batch it holds.
CORRUPT = frozenset({11, 26})

# A row as the spool writes it; anything else is bit rot in the row (a flipped serial
# type, a size that no longer matches). typeof() and length() read record headers only.
ROW_DAMAGED = (
    "typeof(device) != 'text' OR typeof(seq) != 'integer' OR typeof(key) != 'blob'"
    " OR typeof(value) != 'blob' OR typeof(size) != 'integer'"
    " OR size != length(key) + length(value)"
)


class Damaged(Exception):
    """The open-time check found content this module cannot have written."""


def is_damage(exc: Exception) -> bool:
    """Whether a failure of the open-time check means a damaged file (see ``UNAVAILABLE``)."""
    if isinstance(exc, MemoryError):
        return False  # the machine, not the file
    if not isinstance(exc, sqlite3.Error):
        return True  # TypeError, ValueError, UnicodeDecodeError, Damaged: the content
    code = getattr(exc, "sqlite_errorcode", None)
    # No code: raised by the sqlite3 module converting a value (text that is not UTF-8).
    return code is None or (code & 0xFF) not in UNAVAILABLE


def is_corruption(exc: BaseException | None) -> bool:
    """Whether a failure while running is damage to the file (see ``CORRUPT``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and (code & 0xFF) in CORRUPT


def device_name(raw: object) -> str | None:
    """A device column read as ``CAST(device AS BLOB)``: its text, or None if not UTF-8."""
    if type(raw) is not bytes:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Rows(NamedTuple):
    """What the open-time check found in the tables."""

    batches: int  # batches held (damaged rows deleted)
    size: int  # their bytes
    sequences: dict[str, int]  # each device's last sequence number
    damaged: int  # batch rows deleted because their content was damaged


def check_rows(db: sqlite3.Connection, path: Path) -> Rows:
    """Count the batches, deleting rows whose content is damaged.

    Sound pages can still hold a row SQLite cannot know is wrong: a flipped bit in a
    serial type or in a device name. Each such row is dropped alone, as the bound
    would drop it, rather than the whole file: the other batches are good.
    """
    # Two passes rather than one GROUP BY device: grouping would copy every key and
    # value into SQLite's sorter (4x the time on a full spool, measured).
    count, size, damaged = db.execute(
        f"SELECT count(*), coalesce(sum(size), 0), coalesce(sum({ROW_DAMAGED}), 0) FROM batches"
    ).fetchone()
    bad_devices = [
        raw
        for (raw,) in db.execute("SELECT DISTINCT CAST(device AS BLOB) FROM batches")
        if device_name(raw) is None
    ]
    sequences: dict[str, int] = {}
    bad_sequences: list[int] = []
    for rowid, raw, kind, last in db.execute(
        "SELECT rowid, CAST(device AS BLOB), typeof(device), last_seq FROM sequences"
    ).fetchall():
        name = device_name(raw) if kind == "text" else None
        if name is None or type(last) is not int:
            bad_sequences.append(int(rowid))
        else:
            sequences[name] = last
    deleted = 0
    if bad_devices or damaged or bad_sequences:
        deleted = _delete_damaged(db, path, bad_devices, bad_sequences)
        count, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM batches").fetchone()
    return Rows(int(count), int(size), sequences, deleted)


def _delete_damaged(
    db: sqlite3.Connection, path: Path, bad_devices: list[bytes], bad_sequences: list[int]
) -> int:
    # A device whose sequences row is lost is numbered from wall-clock milliseconds
    # again (SqliteSpool._first_seq), above anything it handed out before: no number
    # is reused.
    where = ROW_DAMAGED
    if bad_devices:
        where += f" OR CAST(device AS BLOB) IN ({','.join('?' * len(bad_devices))})"
    db.execute("BEGIN IMMEDIATE")
    try:
        n = db.execute(f"DELETE FROM batches WHERE {where}", bad_devices).rowcount
        for rowid in bad_sequences:
            db.execute("DELETE FROM sequences WHERE rowid = ?", (rowid,))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    if bad_sequences:
        log.error(
            "spool %s: %d damaged sequence-number rows deleted at open; those devices "
            "number on from wall-clock milliseconds",
            path,
            len(bad_sequences),
        )
    return int(n)
