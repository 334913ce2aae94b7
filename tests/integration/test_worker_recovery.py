"""Workers die and join mid-stream: profiles come back from the changelog, no verdict is lost,
and a verdict seen twice is the same verdict."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from collectors.simulate import Workload
from streams.verdict import Verdict
from tests.integration.worker_support import (
    Deployment,
    TopicReader,
    WorkerProcess,
    comparable,
    offline_verdicts,
    read_verdicts,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.slow

USERS = 6
SECONDS = 200.0


def workload(seed: int, users: int = USERS, seconds: float = SECONDS) -> list:
    start = time.time() * 1000.0 - (seconds + 30) * 1000.0
    wl = Workload(users=users, seed=seed, run=f"rec{seed}", start_wall_ms=start)
    return [b for _, b in wl.batches(until_s=seconds)]


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Deployment:
    d = Deployment(kafka_bootstrap, tmp_path)
    d.create_topics()
    return d


def check_against_offline(verdicts: list[Verdict], offline: list[Verdict]) -> None:
    copies: dict[str, set[tuple[object, ...]]] = defaultdict(set)
    for v in verdicts:
        copies[v.verdict_id].add(comparable(v))
    # A verdict delivered twice (redelivery) is the same verdict...
    assert all(len(c) == 1 for c in copies.values()), "one id, two different verdicts"
    # ...and together they are exactly the offline verdicts: none lost, none invented, same
    # scores and enrollment states, so the profiles the new worker restored are the right ones.
    assert {next(iter(c)) for c in copies.values()} == {comparable(v) for v in offline}


def check_each_event_judged_once(verdicts: list[Verdict], total_events: int) -> None:
    """Redelivered verdicts are identical, every event is in exactly one verdict, and no
    stretch of a session is judged twice (a user's state lives on one worker at a time).
    A rebalance or a stop may close a window early, so boundaries can differ from an
    undisturbed run; the content may not."""
    copies: dict[str, set[tuple[object, ...]]] = defaultdict(set)
    for v in verdicts:
        copies[v.verdict_id].add(comparable(v))
    assert all(len(c) == 1 for c in copies.values()), "one id, two different verdicts"
    unique = {v.verdict_id: v for v in verdicts}
    assert sum(v.events for v in unique.values()) == total_events
    by_session: dict[tuple[str, str], list[Verdict]] = defaultdict(list)
    for v in unique.values():
        by_session[(v.user, v.session)].append(v)
    for windows in by_session.values():
        windows.sort(key=lambda v: v.window_start_ms)
        for earlier, later in zip(windows, windows[1:], strict=False):
            assert earlier.window_end_ms < later.window_start_ms, "overlapping windows"


def judged_all(reader: TopicReader, offline: list[Verdict]) -> bool:
    reader.poll(1.0)
    return len({v.verdict_id for v in read_verdicts(reader)}) >= len(offline)


def kill_9_after_a_third(worker: WorkerProcess, reader: TopicReader, offline: list) -> None:
    wait_until(
        lambda: reader.poll(0.5) >= 0 and len(reader.records) >= len(offline) // 3,
        timeout=120,
        what="a third of the verdicts",
    )
    worker.kill(signal.SIGKILL)
    assert len(reader.records) < len(offline), "the worker finished before it could be killed"


def test_kill_9_mid_stream_loses_nothing_and_restores_profiles(deployment: Deployment) -> None:
    batches = workload(seed=21)
    offline = offline_verdicts(batches)
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)
    deployment.send(batches)
    with running_worker(deployment, "first") as first:
        kill_9_after_a_third(first, reader, offline)
    # A new process, with no local state: everything comes from Kafka.
    with running_worker(deployment, "second"):
        wait_until(lambda: judged_all(reader, offline), timeout=180, what="every window judged")
    reader.poll(2.0)
    check_against_offline(read_verdicts(reader), offline)
    reader.close()


def test_a_second_worker_takes_half_the_partitions_without_losing_or_changing_verdicts(
    deployment: Deployment,
) -> None:
    # Enough users that every partition carries some, so both workers have work.
    batches = workload(seed=22, users=16, seconds=120.0)
    total_events = sum(len(b.events) for b in batches)
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)

    def judged_events() -> int:
        reader.poll(1.0)
        unique = {v.verdict_id: v for v in read_verdicts(reader)}
        return sum(v.events for v in unique.values())

    half = len(batches) // 2
    deployment.send(batches[:half])
    with running_worker(deployment, "a") as a:
        wait_until(lambda: judged_events() > 0, timeout=120, what="first verdicts")
        with running_worker(deployment, "b") as b:
            deployment.send(batches[half:])
            wait_until(lambda: judged_events() >= total_events, timeout=180, what="every event")
            owned_a = a.metrics().get("cadence_batches_consumed_total", 0)
            owned_b = b.metrics().get("cadence_batches_consumed_total", 0)
    assert owned_a > 0 and owned_b > 0, "the second worker was never assigned partitions"
    reader.poll(2.0)
    verdicts = read_verdicts(reader)
    reader.close()
    check_each_event_judged_once(verdicts, total_events)


def test_kill_9_with_the_rocksdb_store_reopens_its_databases_and_loses_nothing(
    deployment: Deployment,
) -> None:
    # The prod overlay's store: the restarted worker reopens its local databases (kept in
    # step, so not discarded) and replays only the changelog written since.
    rocksdb = {"CADENCE_STORE": "rocksdb://"}
    batches = workload(seed=23)
    offline = offline_verdicts(batches)
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)
    data_dir = deployment.tmp / "desk-data"
    with running_worker(deployment, "desk", **rocksdb) as first:
        # Partitions are opened at assignment; marked in step within MARK_INTERVAL_S.
        wait_until(
            lambda: len(list(data_dir.rglob("*.db.in-step"))) == deployment.partitions,
            timeout=60,
            what="every partition database marked in step",
        )
        deployment.send(batches)
        kill_9_after_a_third(first, reader, offline)
    with running_worker(deployment, "desk", **rocksdb) as second:
        wait_until(lambda: judged_all(reader, offline), timeout=180, what="every window judged")
        assert second.metrics()["cadence_table_stale_partitions_discarded_total"] == 0
    reader.poll(2.0)
    check_against_offline(read_verdicts(reader), offline)
    reader.close()


def test_rocksdb_standbys_are_marked_in_step_once_they_follow_their_changelog(
    deployment: Deployment,
) -> None:
    # With two workers each partition has an active and a standby database. A standby
    # unmarked for MAX_UNMARKED_S would be rebuilt from the whole changelog before use,
    # so a standby that follows must be marked like an active one.
    rocksdb = {"CADENCE_STORE": "rocksdb://"}
    deployment.send(workload(seed=24, users=16, seconds=60.0))

    def marked(name: str) -> int:
        return len(list((deployment.tmp / f"{name}-data").rglob("*.db.in-step")))

    with running_worker(deployment, "a", **rocksdb):
        wait_until(lambda: marked("a") == deployment.partitions, timeout=120, what="a's marks")
        with running_worker(deployment, "b", **rocksdb) as b:
            # b never was the only worker: what it holds beyond its actives is standbys.
            wait_until(
                lambda: marked("b") == deployment.partitions,
                timeout=120,
                what="b's active and standby databases marked in step",
            )
            assert b.metrics()["cadence_table_stale_partitions_discarded_total"] == 0
