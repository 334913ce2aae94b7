"""What every spool is: the interface the sender uses, the bound, and drop reporting.

:class:`Bounded` keeps the sizes, the bound and each device's last sequence number for
both spools (:mod:`collectors.spool.sqlite` on disk, :mod:`collectors.spool.memory`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, Protocol

from collectors.metrics import CollectorMetrics

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_BATCHES = 1_000_000


class SpoolError(Exception):
    """The spool file could not be opened, read or written (disk full, locked, unreadable).

    The sender catches it and keeps running: a batch it could not put is dropped and
    counted; acknowledged ids it could not remove are removed at a later attempt.
    """

    def __init__(self, operation: str, path: Path, cause: Exception) -> None:
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
    def tidy(self) -> None: ...
    @property
    def batches(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def close(self) -> None: ...


class Bounded:
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
