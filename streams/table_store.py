"""The profile table, whose RocksDB store never outlives an erasure.

Faust's RocksDB store keeps each changelog partition in a local database and, when it
opens one again (a restarted pod, a partition coming back after a rebalance), replays the
changelog only *after the offset it stored*. Kafka keeps an erasure's tombstone for
``delete.retention.ms`` (``CHANGELOG_CONFIG``: one day) once compaction has reached it;
a database left unused for longer may therefore have missed a tombstone that is gone by
the time it is reopened, and would serve the erased profile again, and write it back to
the changelog with the user's next window.

So each partition database carries a mark of when it was last known to follow its
changelog (``<database>.in-step``, touched by the worker while it holds the partition
with its recovery complete, and for a standby while its replay has reached the end the
broker reports), and a database whose mark is older than half that retention, or that has
none, is deleted before Faust opens it: the partition is rebuilt from the changelog, as
the memory store always does. The same holds for a standby database promoted in place
(the worker takes over the partition it was following): Faust keeps it open and replays
from its offset, so a standby that stalled is deleted first.

>>> import os, tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> database = root / "user-profiles-3.db"
>>> database.mkdir()
>>> discard_if_stale(database, now=time.time(), max_age_s=60.0)  # no mark: unknown age
True
>>> database.exists()
False
>>> database.mkdir(); mark_in_step(database)
>>> discard_if_stale(database, now=time.time(), max_age_s=60.0)
False
>>> os.utime(in_step_mark(database), (time.time() - 61, time.time() - 61))
>>> discard_if_stale(database, now=time.time(), max_age_s=60.0)
True
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import faust
from faust.stores import by_url
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, StoreT
from yarl import URL

from streams.topics import CHANGELOG_CONFIG

log = logging.getLogger(__name__)

# Half the tombstones' retention: room for clock differences between nodes and for a
# mark refreshed only every MARK_INTERVAL_S.
MAX_UNMARKED_S = int(CHANGELOG_CONFIG["delete.retention.ms"]) / 1000.0 / 2
MARK_INTERVAL_S = 10.0

# Faust's defaults are sized for one large database: per partition database a 2 GiB
# block cache and three 64 MiB memtables, and a worker opens one per owned and standby
# partition (up to 24 here), far beyond the pod's 2 GiB. A profile is ~4 KB, a partition
# of 1 000 users ~4 MB: these bound the worst case at ~0.4 GiB of memtables, and the caches
# never outgrow the data.
ROCKSDB_OPTIONS: Final = {
    "write_buffer_size": 8 * 1024**2,
    "max_write_buffer_number": 2,
    "block_cache_size": 64 * 1024**2,
    "block_cache_compressed_size": 8 * 1024**2,
}


def in_step_mark(database: Path) -> Path:
    return database.with_name(database.name + ".in-step")


def mark_in_step(database: Path) -> None:
    """Record that ``database`` holds everything its changelog partition held until now."""
    in_step_mark(database).touch()


def mark_age(database: Path, now: float) -> float | None:
    """Seconds since ``database`` was last marked in step (None: never marked)."""
    try:
        return now - in_step_mark(database).stat().st_mtime
    except FileNotFoundError:
        return None


def refresh_mark(database: Path, *, now: float, max_age_s: float) -> bool:
    """Mark ``database`` in step again, unless its mark is already older than ``max_age_s``.

    A database that fell behind for that long may have missed tombstones compaction has
    since removed: catching up cannot bring them back, so its stale mark stays and the
    database is rebuilt before it is used. One without a mark was opened empty here (an
    unmarked database is deleted before it is opened).
    """
    age = mark_age(database, now)
    if age is not None and age > max_age_s:
        return False
    in_step_mark(database).touch()
    return True


def discard_if_stale(database: Path, *, now: float, max_age_s: float) -> bool:
    """Delete ``database`` unless its in-step mark is at most ``max_age_s`` old.

    An ``OSError`` propagates: opening a database that could not be deleted would risk
    serving an erased profile, so the worker stops instead.
    """
    if not database.exists():
        return False
    age = mark_age(database, now)
    if age is not None and age <= max_age_s:
        return False
    shutil.rmtree(database)
    in_step_mark(database).unlink(missing_ok=True)
    log.warning(
        "discarded the local table database %s (in step %s ago, at most %.0f s allowed): "
        "rebuilding it from the changelog",
        database.name,
        "never" if age is None else f"{age:.0f} s",
        max_age_s,
    )
    return True


class ErasureSafeRocksDB(RocksDBStore):
    """Faust's RocksDB store that deletes a partition database too old to trust."""

    # Called with the partition whose database was deleted (the worker counts them).
    on_discard: Callable[[int], None] | None = None

    def _open_for_partition(self, partition: int) -> Any:
        path = self.partition_path(partition)
        if discard_if_stale(path, now=time.time(), max_age_s=MAX_UNMARKED_S) and self.on_discard:
            self.on_discard(partition)
        return super()._open_for_partition(partition)

    def _held(self, partition: int) -> bool:
        """Open here, or assigned to this worker (active or standby)."""
        if partition in self._dbs:
            return True
        tp = TP(self.table.changelog_topic.get_topic_name(), partition)
        assignor = self.app.assignor
        return tp in assignor.assigned_actives() or tp in assignor.assigned_standbys()

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        # A delivery report that comes after its partition was given away would reopen
        # the database, which nothing then closes or follows: skipped.
        if self._held(tp.partition):
            super().set_persisted_offset(tp, offset)

    def write(self, key: bytes, value: bytes | None, partition: int) -> bool:
        """Store (``None``: delete) ``key`` in ``partition``'s database; False if the
        partition is no longer this worker's (its new owner holds the state now).

        Faust's own ``table[key] = value`` finds the partition from the event being
        processed and fails outside one; the worker writes states from delivery reports
        and timers, and knows the partition.
        """
        if not self._held(partition):
            return False
        db = self._db_for_partition(partition)
        if value is None:
            db.delete(key)
            self._key_index.pop(key, None)
        else:
            db.put(key, value)
            self._key_index[key] = partition
        return True

    def read(self, key: bytes, partition: int) -> bytes | None:
        """``key`` in ``partition``'s database (Faust's ``get`` looks only in the
        partition of the event being processed, if there is one)."""
        if not self._held(partition):
            return None
        value = self._db_for_partition(partition).get(key)
        return None if value is None else bytes(value)

    def _changelog_partitions(self, tps: Iterable[TP]) -> set[int]:
        changelog = self.table.changelog_topic.get_topic_name()
        return {tp.partition for tp in tps if tp.topic == changelog}

    def mark_open_partitions(self) -> None:
        """Mark the databases of this worker's active partitions as in step with their
        changelog (call only once recovery is complete: it writes both at once).

        Standbys are marked by :meth:`mark_standbys_in_step`, which asks the broker.
        """
        actives = self._changelog_partitions(self.app.assignor.assigned_actives())
        now = time.time()
        for partition in list(self._dbs):
            if partition in actives:
                refresh_mark(self.partition_path(partition), now=now, max_age_s=MAX_UNMARKED_S)

    async def mark_standbys_in_step(self) -> None:
        """Mark the open standby databases whose replay has reached the end of their
        changelog partition, as the broker reports it now.

        A standby that is still replaying, or has stalled, is not marked: if it stays
        behind for longer than ``MAX_UNMARKED_S`` it is rebuilt before it is used.
        """
        changelog = self.table.changelog_topic.get_topic_name()
        standbys = [
            tp
            for tp in self.app.assignor.assigned_standbys()
            if tp.topic == changelog and tp.partition in self._dbs
        ]
        if not standbys:
            return
        # The broker's end offsets, not the fetcher's: a stalled fetcher's last
        # high watermark is as old as its last fetch.
        ends = await self.app.consumer.highwaters(*standbys)
        # Faust buffers a standby's changelog records (1 000 per table) and writes them
        # only when the buffer is full, at a rebalance or at a clean stop: a quiet
        # partition's last changes, a tombstone among them, could wait for days, and a
        # crash lose them. Written now, so that the mark below tells what RocksDB holds.
        self.app.tables.recovery.flush_buffers()  # type: ignore[attr-defined]
        now = time.time()
        for tp in standbys:
            if tp.partition not in self._dbs:
                continue  # closed while the broker answered (a rebalance)
            # What RocksDB holds (persisted with each batch written), not Faust's standby
            # offset, which moves when a record is buffered.
            end, offset = ends.get(tp), self.persisted_offset(tp)
            # ``end`` is the offset the next record will get; the standby has applied
            # everything up to ``offset`` (None: nothing yet).
            empty_log = end == 0
            if end is not None and (empty_log or (offset is not None and offset >= end - 1)):
                refresh_mark(self.partition_path(tp.partition), now=now, max_age_s=MAX_UNMARKED_S)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        # Before Faust's recovery reads the persisted offsets of the new actives.
        self.discard_stale_open_actives()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    def discard_stale_open_actives(self) -> None:
        """Close and delete the open database of an active partition whose mark is too
        old: a standby promoted in place that had stopped following its changelog."""
        now = time.time()
        actives = self._changelog_partitions(self.app.assignor.assigned_actives())
        for partition in sorted(actives & set(self._dbs)):
            path = self.partition_path(partition)
            age = mark_age(path, now)
            if age is not None and age <= MAX_UNMARKED_S:
                continue
            db = self._dbs.pop(partition)
            for key in [k for k, p in self._key_index.items() if p == partition]:
                self._key_index.pop(key, None)
            db.close()  # RocksDB's lock on the directory goes with it
            if discard_if_stale(path, now=now, max_age_s=MAX_UNMARKED_S) and self.on_discard:
                self.on_discard(partition)


class ProfileTable(faust.Table):
    """A Faust table that uses :class:`ErasureSafeRocksDB` for ``rocksdb://``."""

    def _new_store_by_url(self, url: str | URL) -> StoreT:
        rocksdb = URL(str(url)).scheme == "rocksdb"
        store_class = ErasureSafeRocksDB if rocksdb else by_url(url)
        # A fresh dict: Faust's RocksDB store pops keys from the one it is given.
        options = {**ROCKSDB_OPTIONS, **(self.options or {})} if rocksdb else self.options
        return store_class(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=options,
        )
