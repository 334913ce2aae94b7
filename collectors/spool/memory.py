"""A spool without a disk: for replayers and benchmarks, which re-create their input anyway."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from collectors.metrics import CollectorMetrics
from collectors.spool.base import DEFAULT_MAX_BATCHES, DEFAULT_MAX_BYTES, Bounded, SpooledBatch


class MemorySpool(Bounded):
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
            while self._over() and len(self._rows) > 1:  # never the batch being put
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

    def tidy(self) -> None:
        pass  # nothing on disk

    def close(self) -> None:
        pass
