"""The local spool: every batch the broker has not acknowledged yet, oldest first.

The agent puts each closed batch here before handing it to the producer, and removes it
once the broker has acknowledged it, so a broker outage or a crash loses nothing the
bound keeps. Bounded by batches and bytes: past the bound the *oldest* batches are
dropped, counted (``cadence_collector_dropped_batches_total``) and logged.

- :mod:`collectors.spool.base`: the interface the sender uses, the bound, drop reporting;
- :mod:`collectors.spool.sqlite`: the durable spool ``cadence collect`` uses (one SQLite
  file in WAL mode; why SQLite is said there);
- :mod:`collectors.spool.damage` and :mod:`collectors.spool.copies`: a damaged file or
  row found, set aside, counted, and the copies deleted after a while;
- :mod:`collectors.spool.memory`: the same interface without a disk.

>>> spool = open_spool(None, max_batches=2)
>>> [spool.put("desk-1", spool.next_seq("desk-1"), b"k", b"v") for _ in range(3)]
[1, 2, 3]
>>> [(b.id, b.seq) for b in spool.pending()], spool.dropped
([(2, 1), (3, 2)], 1)
"""

from __future__ import annotations

from pathlib import Path

from collectors.metrics import CollectorMetrics
from collectors.spool.base import (
    DEFAULT_MAX_BATCHES,
    DEFAULT_MAX_BYTES,
    Spool,
    SpooledBatch,
    SpoolError,
)
from collectors.spool.copies import DEFAULT_QUARANTINE_DAYS
from collectors.spool.memory import MemorySpool
from collectors.spool.sqlite import SqliteSpool

__all__ = [
    "DEFAULT_MAX_BATCHES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_QUARANTINE_DAYS",
    "MemorySpool",
    "Spool",
    "SpoolError",
    "SpooledBatch",
    "SqliteSpool",
    "open_spool",
]


def open_spool(
    path: str | Path | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_batches: int = DEFAULT_MAX_BATCHES,
    fsync: bool = True,
    metrics: CollectorMetrics | None = None,
    quarantine_days: float = DEFAULT_QUARANTINE_DAYS,
) -> SqliteSpool | MemorySpool:
    """A durable spool at ``path``, or a non-durable in-memory one when ``path`` is None."""
    if path is None:
        return MemorySpool(max_bytes=max_bytes, max_batches=max_batches, metrics=metrics)
    return SqliteSpool(
        path,
        max_bytes=max_bytes,
        max_batches=max_batches,
        fsync=fsync,
        metrics=metrics,
        quarantine_days=quarantine_days,
    )
