"""The copies of a damaged spool, moved aside for forensics and deleted after a while.

A spool file SQLite finds damaged is moved aside as ``<spool>.corrupt-<UTC stamp>``
(with its ``-wal`` and ``-shm``), so that the agent can start a fresh one. The copy
holds raw batches (key-class timings) that will never be delivered, and the privacy
rules keep those only as long as needed (docs/privacy.md): copies are deleted after
``days`` and at most :data:`MAX_QUARANTINED` are kept, however recent. Only names this
module makes are ever deleted.

>>> import tempfile
>>> spool = Path(tempfile.mkdtemp()) / "spool.db"
>>> _ = spool.write_bytes(b"not a database")
>>> copy = move_aside(spool)
>>> copy.name.startswith("spool.db.corrupt-"), spool.exists()
(True, False)
>>> readable_batches(copy)
(0, False)
>>> prune(spool, days=0.0)
>>> copy.exists()
False
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

log = logging.getLogger(__name__)

# A damaged spool moved aside is kept this long for forensics, then deleted: it holds raw
# batches that will never be delivered (docs/privacy.md). The same as dead letters.
DEFAULT_QUARANTINE_DAYS = 7.0
# At most this many moved-aside copies are kept, however recent: a disk that damages
# file after file must not fill up with them.
MAX_QUARANTINED = 3
_STAMP = "%Y%m%dT%H%M%SZ"
# <spool>.corrupt-<stamp>[-<n>][-wal|-shm], after the spool's own name.
_COPY = re.compile(r"\.corrupt-(\d{8}T\d{6}Z)(?:-(\d+))?(?:-wal|-shm)?")
_PARTS = ("", "-wal", "-shm")


def move_aside(path: Path) -> Path:
    """Move the spool file (and its -wal, -shm) to a fresh copy name; return that name."""
    target = _copy_name(path)
    for suffix in _PARTS:
        part = path.with_name(path.name + suffix)
        if part.exists():
            os.replace(part, target.with_name(target.name + suffix))
    return target


def _copy_name(path: Path) -> Path:
    # Two in one second (a damaged fresh file at the next start) must not overwrite, and
    # the later one must sort as the newer, as prune() keeps the newest: the number after
    # the highest of this second, never a lower one freed by prune() (the copy just made
    # was then deleted at once as the oldest).
    stamp = time.strftime(_STAMP, time.gmtime())
    base = f"{path.name}.corrupt-{stamp}"
    n = 1 + max((n for made, n, _ in _parts(path) if made == stamp), default=0)
    return path.with_name(base if n == 1 else f"{base}-{n}")


def _parts(path: Path) -> list[tuple[str, int, Path]]:
    """Each file named as a part of a moved-aside copy of the spool: (stamp, n, file)."""
    name, parts = path.name, []
    for entry in path.parent.iterdir():
        found = _COPY.fullmatch(entry.name, len(name)) if entry.name.startswith(name) else None
        if found is not None:
            parts.append((found[1], int(found[2] or 1), entry))
    return parts


def readable_batches(path: Path) -> tuple[int, bool]:
    """How many batches a damaged spool file holds: ``(n, True)`` if it can be counted,
    else ``(lower bound, False)``: the rows readable before and after the damage.

    Opened read-only, so that the copy kept for forensics is as it was found (no WAL
    recovery written into it, no checkpoint on close).
    """
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except (sqlite3.Error, ValueError):
        return 0, False
    try:
        try:
            (count,) = db.execute("SELECT count(*) FROM batches").fetchone()
            return int(count), True
        except sqlite3.Error:
            pass
        head, last = _scan(db, "SELECT id FROM batches WHERE id > ? ORDER BY id", 0)
        # From the end back to the damage; only ids past the head, so none counts twice.
        tail, _ = _scan(db, "SELECT id FROM batches WHERE id > ? ORDER BY id DESC", last)
        return head + tail, False
    finally:
        db.close()


def _scan(db: sqlite3.Connection, query: str, after: int) -> tuple[int, int]:
    """Rows read until the first error, and the id of the last one read."""
    n = last = 0
    with contextlib.suppress(sqlite3.Error):
        for (row_id,) in db.execute(query, (after,)):
            n += 1
            last = row_id
    return n, last


def prune(path: Path, days: float) -> None:
    """Delete the spool's moved-aside copies past ``days``, and all but the newest few."""
    try:
        copies = _copies(path)
    except OSError as exc:
        log.warning("cannot list quarantined spool copies in %s: %s", path.parent, exc)
        return
    expired = time.time() - days * 86400.0
    for i, (made, parts) in enumerate(copies):
        if i < MAX_QUARANTINED and made > expired:
            continue
        try:
            for part in parts:
                part.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete quarantined spool copy %s: %s", parts[0], exc)
            continue
        log.info(
            "deleted quarantined spool copy %s (kept %g days, at most %d copies)",
            parts[0],
            days,
            MAX_QUARANTINED,
        )


def _copies(path: Path) -> list[tuple[float, list[Path]]]:
    """Each moved-aside copy (with its -wal and -shm) and when it was made, newest first."""
    groups: dict[tuple[str, int], list[Path]] = {}
    for stamp, n, entry in _parts(path):
        groups.setdefault((stamp, n), []).append(entry)
    copies: list[tuple[float, list[Path]]] = []
    for (stamp, _), parts in sorted(groups.items(), reverse=True):
        try:
            made = float(calendar.timegm(time.strptime(stamp, _STAMP)))
        except ValueError:
            continue  # not a time: not a name this module made
        copies.append((made, sorted(parts)))
    return copies
