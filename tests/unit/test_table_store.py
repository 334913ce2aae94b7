"""The RocksDB profile table drops a partition database too old to have seen every erasure."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from streams.app import Worker, create_app
from streams.settings import WorkerSettings
from streams.table_store import (
    MAX_UNMARKED_S,
    ROCKSDB_OPTIONS,
    ErasureSafeRocksDB,
    in_step_mark,
    mark_in_step,
)

pytest.importorskip("rocksdict", reason="the RocksDB store needs rocksdict (pip install '.[dev]')")

PARTITION = 3


def rocksdb_worker(tmp_path: Path) -> tuple[Worker, ErasureSafeRocksDB]:
    worker = create_app(
        WorkerSettings(app_id="cadence-test-store", store="rocksdb://", data_dir=str(tmp_path))
    )
    store = worker.user_profiles.data
    assert isinstance(store, ErasureSafeRocksDB)
    assign(worker, actives={PARTITION})
    return worker, store


def assign(worker: Worker, actives: Iterable[int] = (), standbys: Iterable[int] = ()) -> None:
    """What the group's assignment gives this worker, of the changelog's partitions."""
    from faust.types import TP

    topic = worker.user_profiles.changelog_topic.get_topic_name()
    assignor = worker.app.assignor
    assignor.assigned_actives = lambda: {TP(topic, p) for p in actives}  # type: ignore[method-assign]
    assignor.assigned_standbys = lambda: {TP(topic, p) for p in standbys}  # type: ignore[method-assign]


def changelog_tp(worker: Worker) -> object:
    from faust.types import TP

    return TP(worker.user_profiles.changelog_topic.get_topic_name(), PARTITION)


def give_back(worker: Worker, store: ErasureSafeRocksDB) -> None:
    """What a rebalance that moves the partition away does to the store."""
    store.revoke_partitions(worker.user_profiles, {changelog_tp(worker)})  # type: ignore[arg-type]
    gc.collect()  # Faust drops the handle without closing it; RocksDB's lock goes with it


def profile_of(store: ErasureSafeRocksDB, key: bytes) -> bytes | None:
    value = store._db_for_partition(PARTITION).get(key)
    return None if value is None else bytes(value)


def stored_with_mark(worker: Worker, store: ErasureSafeRocksDB, mark_age_s: float | None) -> None:
    """A profile in the partition's database, replayed to offset 41, marked in step
    ``mark_age_s`` ago (None: never)."""
    store._db_for_partition(PARTITION).put(b"user", b"profile")
    store.set_persisted_offset(changelog_tp(worker), 41)  # type: ignore[arg-type]
    if mark_age_s is not None:
        mark_in_step(store.partition_path(PARTITION))
        then = time.time() - mark_age_s
        os.utime(in_step_mark(store.partition_path(PARTITION)), (then, then))


def assert_rebuilt(worker: Worker, store: ErasureSafeRocksDB) -> None:
    assert profile_of(store, b"user") is None
    assert store.persisted_offset(changelog_tp(worker)) is None  # replay from the start
    assert worker.metrics.stale_tables_discarded._value.get() == 1


def test_a_database_kept_in_step_is_reopened_with_its_data(tmp_path: Path) -> None:
    worker, store = rocksdb_worker(tmp_path)
    store._db_for_partition(PARTITION).put(b"user", b"profile")
    store.set_persisted_offset(changelog_tp(worker), 41)  # type: ignore[arg-type]
    store.mark_open_partitions()
    give_back(worker, store)
    assert profile_of(store, b"user") == b"profile"
    assert store.persisted_offset(changelog_tp(worker)) == 41  # type: ignore[arg-type]
    assert worker.metrics.stale_tables_discarded._value.get() == 0


@pytest.mark.parametrize("mark_age_s", [MAX_UNMARKED_S + 60.0, None], ids=["old-mark", "no-mark"])
def test_a_database_out_of_step_too_long_is_rebuilt_from_the_changelog(
    tmp_path: Path, mark_age_s: float | None
) -> None:
    # Kept, the replay would start after offset 41 and could miss a compacted-away
    # tombstone: the erased profile would be served again.
    worker, store = rocksdb_worker(tmp_path)
    stored_with_mark(worker, store, mark_age_s)
    give_back(worker, store)
    assert_rebuilt(worker, store)


def test_only_a_recovered_worker_marks_its_databases_in_step(tmp_path: Path) -> None:
    worker, store = rocksdb_worker(tmp_path)
    store._db_for_partition(PARTITION)
    mark = in_step_mark(store.partition_path(PARTITION))
    worker.mark_tables_in_step()  # never assigned
    assert not mark.exists()
    worker.app.tables.recovery.completed.set()  # type: ignore[attr-defined]
    worker.app.in_recovery = True
    worker.mark_tables_in_step()
    assert not mark.exists()
    worker.app.in_recovery = False
    worker.app.rebalancing = True  # partitions just assigned, not yet replayed
    worker.mark_tables_in_step()
    assert not mark.exists()
    worker.app.rebalancing = False
    worker.mark_tables_in_step()
    assert mark.exists()


def test_states_are_written_and_erased_outside_any_event(tmp_path: Path) -> None:
    # The worker persists from delivery reports and timers, where Faust's own
    # `table[key] = value` fails (it takes the partition from the current event).
    worker, store = rocksdb_worker(tmp_path)
    store.write(b"user", b"profile", PARTITION)
    assert store.get(b"user") == b"profile"
    assert profile_of(store, b"user") == b"profile"
    store.write(b"user", None, PARTITION)
    assert store.get(b"user") is None
    assert profile_of(store, b"user") is None


def test_rocksdb_is_sized_for_many_small_partition_databases(tmp_path: Path) -> None:
    # Faust's defaults (a 2 GiB cache and 3 x 64 MiB memtables per partition database)
    # multiplied by a worker's 24 databases would exceed the pod's memory.
    _, store = rocksdb_worker(tmp_path)
    options = store.rocksdb_options
    assert options.block_cache_size == ROCKSDB_OPTIONS["block_cache_size"]
    assert options.write_buffer_size * options.max_write_buffer_number <= 16 * 1024**2


def test_a_late_delivery_report_does_not_reopen_a_partition_given_away(tmp_path: Path) -> None:
    # Reopened, the database would be marked in step while nothing feeds it, and
    # replayed days later from its old offset: an erased profile could come back.
    worker, store = rocksdb_worker(tmp_path)
    store.write(b"user", b"profile", PARTITION)
    give_back(worker, store)
    assign(worker)  # the partition now belongs to another worker
    store.set_persisted_offset(changelog_tp(worker), 42)  # type: ignore[arg-type]
    assert not store.write(b"user", b"newer", PARTITION)
    assert store.read(b"user", PARTITION) is None
    assert PARTITION not in store._dbs


def test_only_active_partitions_are_marked_in_step(tmp_path: Path) -> None:
    # A standby may still be replaying, or have stalled: Faust does not say.
    worker, store = rocksdb_worker(tmp_path)
    assign(worker, actives={PARTITION}, standbys={PARTITION + 1})
    store._db_for_partition(PARTITION)
    store._db_for_partition(PARTITION + 1)
    store.mark_open_partitions()
    assert in_step_mark(store.partition_path(PARTITION)).exists()
    assert not in_step_mark(store.partition_path(PARTITION + 1)).exists()


class EndOffsets:
    """The broker's end offsets of the changelog partitions, as a consumer reports them."""

    def __init__(self, worker: Worker, ends: dict[int, int]) -> None:
        self.topic = worker.user_profiles.changelog_topic.get_topic_name()
        self.ends = ends

    async def highwaters(self, *tps: object) -> dict[object, int]:
        from faust.types import TP

        return {TP(self.topic, p): end for p, end in self.ends.items() if TP(self.topic, p) in tps}


def standby_replayed(
    worker: Worker, store: ErasureSafeRocksDB, offsets: dict[int, int], buffered: int = 0
) -> None:
    """The standby has written the records up to ``offsets`` to RocksDB (-1: none), and
    Faust's standby offset is ``buffered`` records further (read, not yet written)."""
    from faust.types import TP

    topic = worker.user_profiles.changelog_topic.get_topic_name()
    recovery = worker.app.tables.recovery  # type: ignore[attr-defined]
    for p, offset in offsets.items():
        if offset >= 0:
            store.set_persisted_offset(TP(topic, p), offset)
        recovery.standby_offsets[TP(topic, p)] = offset + buffered


def test_a_standby_is_marked_in_step_only_once_it_has_replayed_to_the_end(
    tmp_path: Path,
) -> None:
    import asyncio

    worker, store = rocksdb_worker(tmp_path)
    caught_up, lagging, empty = PARTITION, PARTITION + 1, PARTITION + 2
    assign(worker, standbys={caught_up, lagging, empty})
    for partition in (caught_up, lagging, empty):
        store._db_for_partition(partition)
    # Offsets are those of the last record replayed; an end is the next record's offset.
    standby_replayed(worker, store, {caught_up: 9, lagging: 5, empty: -1})
    worker.app.consumer = EndOffsets(worker, {caught_up: 10, lagging: 10, empty: 0})  # type: ignore[assignment]
    asyncio.run(store.mark_standbys_in_step())
    marked = {
        p for p in (caught_up, lagging, empty) if in_step_mark(store.partition_path(p)).exists()
    }
    assert marked == {caught_up, empty}


def test_a_standby_is_not_marked_when_the_broker_cannot_say(tmp_path: Path) -> None:
    import asyncio

    worker, store = rocksdb_worker(tmp_path)
    assign(worker, standbys={PARTITION})
    store._db_for_partition(PARTITION)
    standby_replayed(worker, store, {PARTITION: 9})
    worker.app.consumer = EndOffsets(worker, {})  # type: ignore[assignment]
    asyncio.run(store.mark_standbys_in_step())
    assert not in_step_mark(store.partition_path(PARTITION)).exists()


def promote(worker: Worker, store: ErasureSafeRocksDB) -> None:
    """The rebalance that makes this worker's standby partition its active one."""
    import asyncio

    assign(worker, actives={PARTITION})
    tp = changelog_tp(worker)
    asyncio.run(store.on_rebalance({tp}, set(), set(), 0))  # type: ignore[arg-type]


@pytest.mark.parametrize("mark_age_s", [MAX_UNMARKED_S + 60.0, None], ids=["old-mark", "no-mark"])
def test_a_standby_promoted_in_place_after_it_stopped_following_is_rebuilt(
    tmp_path: Path, mark_age_s: float | None
) -> None:
    # Faust keeps a standby's database open when the partition becomes active and
    # replays only after its offset: a tombstone compacted away meanwhile would be missed.
    worker, store = rocksdb_worker(tmp_path)
    assign(worker, standbys={PARTITION})
    stored_with_mark(worker, store, mark_age_s)
    promote(worker, store)
    assert_rebuilt(worker, store)


def test_a_standby_promoted_in_step_keeps_its_data(tmp_path: Path) -> None:
    import asyncio

    worker, store = rocksdb_worker(tmp_path)
    assign(worker, standbys={PARTITION})
    store._db_for_partition(PARTITION).put(b"user", b"profile")
    standby_replayed(worker, store, {PARTITION: 41})
    worker.app.consumer = EndOffsets(worker, {PARTITION: 42})  # type: ignore[assignment]
    asyncio.run(store.mark_standbys_in_step())
    promote(worker, store)
    assert profile_of(store, b"user") == b"profile"
    assert store.persisted_offset(changelog_tp(worker)) == 41  # type: ignore[arg-type]
    assert worker.metrics.stale_tables_discarded._value.get() == 0


def test_what_a_standby_has_buffered_is_written_before_it_is_marked(tmp_path: Path) -> None:
    # Faust's standby offset moves when a record is buffered, and the buffer reaches
    # RocksDB only when full, at a rebalance or at a clean stop. Marked on that offset,
    # a crash left a database behind its mark: a buffered tombstone was lost and the
    # erased profile came back. The buffer is written first; the mark follows RocksDB.
    import asyncio
    from types import SimpleNamespace

    worker, store = rocksdb_worker(tmp_path)
    assign(worker, standbys={PARTITION})
    stored_with_mark(worker, store, None)  # "profile" at offset 41
    tombstone = SimpleNamespace(
        message=SimpleNamespace(
            tp=changelog_tp(worker), offset=42, key=b"user", value=None, partition=PARTITION
        )
    )
    recovery = worker.app.tables.recovery  # type: ignore[attr-defined]
    recovery.buffers[worker.user_profiles].append(tombstone)
    recovery.standby_offsets[changelog_tp(worker)] = 42
    worker.app.consumer = EndOffsets(worker, {PARTITION: 43})  # type: ignore[assignment]
    asyncio.run(store.mark_standbys_in_step())
    assert profile_of(store, b"user") is None
    assert store.persisted_offset(changelog_tp(worker)) == 42  # type: ignore[arg-type]
    assert in_step_mark(store.partition_path(PARTITION)).exists()


def test_a_standby_that_fell_behind_too_long_is_not_marked_again_once_caught_up(
    tmp_path: Path,
) -> None:
    # Catching up cannot bring back tombstones compacted away meanwhile: its stale mark
    # stays, and it is rebuilt when promoted.
    import asyncio

    worker, store = rocksdb_worker(tmp_path)
    assign(worker, standbys={PARTITION})
    stored_with_mark(worker, store, MAX_UNMARKED_S + 60.0)
    standby_replayed(worker, store, {PARTITION: 41})
    worker.app.consumer = EndOffsets(worker, {PARTITION: 42})  # type: ignore[assignment]
    asyncio.run(store.mark_standbys_in_step())
    promote(worker, store)
    assert_rebuilt(worker, store)
