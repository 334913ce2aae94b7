"""Throughput and latency of one worker on a real broker: the code behind ``cadence bench pipeline``.

One run, on its own topics and consumer group, in four phases:

1. load: simulated users (:class:`collectors.simulate.Workload`) as fast as the generator
   goes, into this run's events topic (12 partitions); event times end about now;
2. ceiling: a plain confluent-kafka consumer reads and decodes the whole topic, the
   fastest any Python consumer of this wire format could go on this machine;
3. drain: one ``cadence worker`` process starts on the pre-loaded topic; its /metrics
   counters time how long it takes to consume and judge everything;
4. paced: the same accounts (a subset sized to a fraction of the measured throughput)
   keep working in real time, event times = now; the verdicts' ``window_end_ms`` against
   their emission / arrival time give the event-time -> verdict latency. Latency during
   the drain would only measure the backlog.

Nothing here is an assertion: it prints and returns figures.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.bench_kafka import (
    VerdictReader,
    create_run_topics,
    delete_run_topics,
    last_value_sizes,
    measure_ceiling,
    produce,
    produce_in_real_time,
    profile_changelog,
    read_topic,
)
from streams.bench_worker import (
    DrainWatch,
    WorkerProcess,
    cpu_seconds,
    histogram_sum_count,
    proc_status,
    running_worker,
    settle_paced,
    start_py_spy,
    verdicts_emitted,
    wait_for,
)
from streams.topics import IsolatedTopics

if TYPE_CHECKING:
    from collectors.simulate import Workload


@dataclass(frozen=True)
class BenchConfig:
    users: int
    seconds: float  # simulated seconds of activity per user in the pre-loaded backlog
    bootstrap: str
    seed: int = 0
    partitions: int = 12
    paced_seconds: float = 60.0
    paced_load: float = 0.25  # paced event rate as a share of the measured drain throughput
    paced_users: int | None = None  # overrides paced_load
    drain_timeout_s: float = 1800.0
    # After the last paced send: how long to wait for the worker to consume it all and
    # for the verdicts of what it consumed.
    paced_settle_timeout_s: float = 120.0
    work_dir: Path | None = None
    keep_topics: bool = False
    py_spy: Path | None = None  # record the worker during the drain (collapsed stacks)
    # The simulated agents' batching (None: the agent's defaults, collectors/batcher.py).
    batch_max_events: int | None = None
    batch_max_age_ms: float | None = None
    # The worker's table store (CADENCE_STORE): memory:// as in dev, rocksdb:// as in prod.
    store: str = "memory://"
    # Added to the settings of the clients that create and delete the run's topics: the
    # command's logger, which keeps librdkafka's log off the terminal (unless -v).
    admin_client: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
    users: int
    seconds: float
    store: str = "memory://"
    events: int = 0
    batches: int = 0
    batch_max_events: int = 0
    batch_max_age_ms: float = 0.0
    load_s: float = 0.0
    ceiling_events_per_s: float = 0.0
    ceiling_events_per_cpu_s: float = 0.0  # per CPU second of the consumer process
    pipeline_events_per_s: float = 0.0
    pipeline_events_per_cpu_s: float = 0.0  # per CPU second of the worker: load-independent
    drain_s: float = 0.0
    # Consumed within the timed span (first to last sample of the worker's counter): the
    # events before the first sample are outside it.
    drain_events_timed: int = 0
    # False when the drain was too short to time (MIN_DRAIN_S, MIN_DRAIN_SAMPLES): the
    # events/s and ratios are then noise.
    throughput_reliable: bool = False
    worker_cpu_s: float = 0.0
    # Including the idle flush of every user's last window, which the drain time leaves out.
    worker_cpu_with_flush_s: float = 0.0
    flush_s: float = 0.0
    ratio: float = 0.0
    ratio_cpu: float = 0.0  # the same per CPU second: what the ratio is on an idle machine
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    latency_max_s: float | None = None
    latency_p50_first_half_s: float | None = None
    latency_p50_second_half_s: float | None = None
    arrival_latency_p50_s: float | None = None
    arrival_latency_p99_s: float | None = None
    paced_users: int = 0
    paced_events_per_s: float = 0.0
    paced_verdicts: int = 0
    paced_backlog_events: int = 0  # sent in the paced phase, not yet consumed at its end
    # Verdicts the worker emitted for the paced devices, and those of them the reader did
    # not have when it stopped (0 unless the settle timeout ran out: the latency
    # percentiles then leave out the latest verdicts, the ones of a worker falling behind).
    paced_verdicts_emitted: int = 0
    paced_verdicts_missing: int = 0
    paced_events_unconsumed: int = 0  # still not consumed when the reader stopped
    paced_settle_s: float = 0.0  # from the last paced send until all was in
    rss_bytes: int = 0
    rss_after_drain_bytes: int = 0
    rss_peak_bytes: int = 0
    # Mean size of every user's last serialised state: the last record per key of the
    # profile changelog once the worker has stopped (all windows flushed).
    profile_bytes_per_user: float = 0.0
    profile_users: int = 0  # keys in the changelog
    # Means of the cadence_profile_bytes histogram: every state write in the drain (what
    # profile_bytes_per_user was before), and in the paced phase.
    profile_bytes_written_mean: float = 0.0
    profile_bytes_paced: float = 0.0
    active_users: int = 0
    windows_closed: dict[str, float] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)
    load_average_drain: list[float] = field(default_factory=list)
    load_average_paced: list[float] = field(default_factory=list)
    cpus: int = 0
    python: str = ""
    run: str = ""

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- the run -------------------------------------------------------------------


class BenchRefused(ValueError):
    """A run that cannot measure anything, refused before any broker work."""


#: Below this drain time, or this many /metrics samples (one per ~0.2 s) in it, the
#: drain's events/s are mostly the sampling's resolution: reported, but flagged.
MIN_DRAIN_S = 2.0
MIN_DRAIN_SAMPLES = 5


def drain_throughput(
    events: int, consumed_at_first: float, seconds: float, samples: int
) -> tuple[float, bool]:
    """(events/s, reliable) of a drain timed from its first sample to its last.

    The events consumed before the first sample are outside the timed span and do not
    count: counted in, a backlog consumed between two samples gave absurd rates.

    >>> drain_throughput(1_000_000, 20_000.0, 10.0, 50)
    (98000.0, True)
    >>> drain_throughput(900, 0.0, 0.0004, 1)
    (2250000.0, False)
    """
    rate = (events - consumed_at_first) / seconds if seconds > 0 else 0.0
    return rate, seconds >= MIN_DRAIN_S and samples >= MIN_DRAIN_SAMPLES


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stopping_cleans_up() -> Iterator[None]:
    """SIGTERM takes Ctrl-C's path: a KeyboardInterrupt, so every ``finally`` runs (the
    worker is stopped, the run's topics deleted).

    Once either signal has arrived, both are ignored until the block is left: a second
    one would cut the clean-up short, and bench/run.py forwards a Ctrl-C that the
    terminal may already have sent. Outside the main thread (no signal handlers there)
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        os.write(2, b"bench: stopping: the worker, then this run's topics\n")
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def run_bench(config: BenchConfig, progress: Callable[[str], None] = print) -> BenchResult:
    with stopping_cleans_up():
        return _run_bench(config, progress)


def _run_bench(config: BenchConfig, progress: Callable[[str], None]) -> BenchResult:
    from collectors.episodes import BATCH_MAX_AGE_MS, BATCH_MAX_EVENTS
    from collectors.simulate import Workload

    max_events = config.batch_max_events or BATCH_MAX_EVENTS
    max_age_ms = config.batch_max_age_ms or BATCH_MAX_AGE_MS
    new_workload = functools.partial(
        Workload, batch_max_events=max_events, batch_max_age_ms=max_age_ms
    )
    run = f"bench{uuid.uuid4().hex[:8]}"
    topics = IsolatedTopics(run)
    result = BenchResult(
        users=config.users,
        seconds=config.seconds,
        store=config.store,
        batch_max_events=max_events,
        batch_max_age_ms=max_age_ms,
        cpus=os.cpu_count() or 0,
        python=sys.version.split()[0],
        run=run,
    )
    # 1. the backlog: event time ends a little before now, like a live agent's.
    start_wall = time.time() * 1000.0 - (config.seconds + 30.0) * 1000.0
    workload = new_workload(config.users, seed=config.seed, run=run, start_wall_ms=start_wall)
    backlog = workload.batches(until_s=config.seconds)
    first_batch = next(backlog, None)
    if first_batch is None:
        raise BenchRefused(
            f"{config.users} users x {config.seconds:g} s of activity make no events: "
            "raise --seconds or --users"
        )
    work_dir = config.work_dir or Path(tempfile.mkdtemp(prefix=f"{run}-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    finished = False
    try:
        # Inside: a creation that fails half-way leaves topics to delete.
        create_run_topics(config.bootstrap, topics, config.partitions, config.admin_client)
        progress(
            f"loading {config.users} users x {config.seconds:.0f} s into {topics.events} "
            f"(batches of <= {max_age_ms:.0f} ms, <= {max_events} events)"
        )
        stats = produce(
            config.bootstrap, topics.events, itertools.chain([first_batch], backlog), math.inf
        )
        result.events, result.batches, result.load_s = stats.events, stats.batches, stats.elapsed_s
        progress(
            f"loaded {stats.batches} batches, {stats.events} events in {stats.elapsed_s:.1f} s"
        )

        # 2. the ceiling
        result.load_average = load_average()
        events, seconds, cpu = measure_ceiling(config.bootstrap, topics.events, stats.batches)
        result.ceiling_events_per_s = events / seconds if seconds > 0 else 0.0
        result.ceiling_events_per_cpu_s = events / cpu if cpu > 0 else 0.0
        progress(f"ceiling: {events} events in {seconds:.1f} s (load {result.load_average})")

        with running_worker(
            config.bootstrap,
            topics,
            config.partitions,
            work_dir,
            env_extra={"CADENCE_STORE": config.store},
        ) as worker:
            wait_for(worker.ready, 120, "the worker to be ready")
            verdicts = VerdictReader(config.bootstrap, topics.verdicts)
            verdicts.start()
            # 3. the drain
            _drain(config, worker, result, progress)
            # 4. paced, real time, the same accounts
            live = new_workload(_paced_users(config, result), seed=config.seed, run=f"{run}-live")
            paced_start, paced_end = _paced(
                config, topics, worker, verdicts, live, result, progress
            )
        # The worker has stopped, its last windows flushed: the changelog's last record
        # of each user is the state a restarted worker would load.
        sizes = last_value_sizes(read_topic(config.bootstrap, profile_changelog(topics)))
        result.profile_users = len(sizes)
        result.profile_bytes_per_user = sum(sizes.values()) / len(sizes) if sizes else 0.0
        devices = {u.device for u in live.users}
        _latencies(verdicts.received, devices, paced_start, paced_end, result)
        finished = True
    finally:
        if not config.keep_topics:
            with suppress(Exception):
                delete_run_topics(config.bootstrap, topics, config.admin_client)
        if config.work_dir is None:  # a temporary directory: the worker's data is large
            if finished:
                shutil.rmtree(work_dir, ignore_errors=True)
            else:
                progress(f"the worker's log and data are kept in {work_dir}")
    return result


def _drain(
    config: BenchConfig,
    worker: WorkerProcess,
    result: BenchResult,
    progress: Callable[[str], None],
) -> None:
    """Time the worker through the pre-loaded backlog, then wait out its idle flush."""
    first: float | None = None
    spy: subprocess.Popen[bytes] | None = None
    watch = DrainWatch(result.events, config.drain_timeout_s)
    cpu_at_first = consumed_at_first = 0.0
    samples = 0
    while True:
        now = time.monotonic()
        consumed = worker.metrics().get("cadence_events_consumed_total", 0.0)
        if first is None and consumed > 0:
            first, cpu_at_first, consumed_at_first = now, cpu_seconds(worker.pid), consumed
            if config.py_spy is not None:
                spy = start_py_spy(worker.pid, config.py_spy)
        if first is not None:
            samples += 1
        if consumed >= result.events:
            break
        watch.check(consumed, now)
        time.sleep(0.2)
    assert first is not None  # consumed >= events > 0
    result.drain_s = now - first
    result.worker_cpu_s = cpu_seconds(worker.pid) - cpu_at_first
    result.drain_events_timed = int(result.events - consumed_at_first)
    result.pipeline_events_per_s, result.throughput_reliable = drain_throughput(
        result.events, consumed_at_first, result.drain_s, samples
    )
    result.pipeline_events_per_cpu_s = result.drain_events_timed / max(result.worker_cpu_s, 1e-9)
    result.load_average_drain = load_average()
    result.ratio = result.pipeline_events_per_s / max(result.ceiling_events_per_s, 1e-9)
    result.ratio_cpu = result.pipeline_events_per_cpu_s / max(result.ceiling_events_per_cpu_s, 1e-9)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    drained = worker.metrics()
    result.rss_after_drain_bytes = proc_status(worker.pid).get("VmRSS", 0)
    total, count = histogram_sum_count(drained, "cadence_profile_bytes")
    result.profile_bytes_written_mean = total / count if count else 0.0
    progress(
        f"drain: {result.drain_events_timed} events in {result.drain_s:.1f} s = "
        f"{result.pipeline_events_per_s:.0f} events/s, worker CPU "
        f"{result.worker_cpu_s:.1f} s (load {result.load_average_drain})"
    )
    if not result.throughput_reliable:
        progress(
            f"drain: {result.drain_s:.2f} s, {samples} samples (< {MIN_DRAIN_S:g} s or "
            f"< {MIN_DRAIN_SAMPLES}): the throughput figures are unreliable; "
            "load more (--users, --seconds)"
        )

    # The drain leaves one open window per user, judged by the idle flush all at
    # once: wait for it, or the paced phase would measure that burst.
    flush_started = time.monotonic()
    wait_for(
        lambda: worker.metrics().get("cadence_open_windows", 1.0) == 0.0,
        300,
        "the idle flush of the drained users' windows",
        step=1.0,
    )
    result.flush_s = time.monotonic() - flush_started
    result.worker_cpu_with_flush_s = cpu_seconds(worker.pid) - cpu_at_first
    result.pipeline_events_per_cpu_s = result.drain_events_timed / max(
        result.worker_cpu_with_flush_s, 1e-9
    )
    result.ratio_cpu = result.pipeline_events_per_cpu_s / max(result.ceiling_events_per_cpu_s, 1e-9)


def _events_per_user_second(config: BenchConfig, result: BenchResult) -> float:
    return result.events / config.users / config.seconds


def _paced_users(config: BenchConfig, result: BenchResult) -> int:
    """How many of the accounts work in real time: a share of the drain's throughput."""
    per_user = _events_per_user_second(config, result)
    paced_users = config.paced_users or max(
        1, int(config.paced_load * result.pipeline_events_per_s / per_user)
    )
    return min(paced_users, config.users)


def _paced(
    config: BenchConfig,
    topics: IsolatedTopics,
    worker: WorkerProcess,
    verdicts: VerdictReader,
    live: Workload,
    result: BenchResult,
    progress: Callable[[str], None],
) -> tuple[float, float]:
    """Send ``live`` in real time and collect its verdicts; returns the phase's wall span (ms)."""
    per_user = _events_per_user_second(config, result)
    result.paced_users = len(live.users)
    verdicts.assigned.wait(30)
    progress(
        f"paced: {result.paced_users} users in real time for {config.paced_seconds:.0f} s "
        f"(~{result.paced_users * per_user:.0f} events/s)"
    )
    before = worker.metrics()
    stats, paced_start = produce_in_real_time(
        config.bootstrap, topics.events, live, config.paced_seconds
    )
    result.paced_events_per_s = stats.events / max(stats.elapsed_s, 1e-9)
    consumed = worker.metrics().get("cadence_events_consumed_total", 0.0)
    result.paced_backlog_events = int(
        before.get("cadence_events_consumed_total", 0.0) + stats.events - consumed
    )
    result.load_average_paced = load_average()
    paced_end = time.time() * 1000.0
    # Every verdict of what was sent, however late: stopping at a fixed time
    # dropped the latest ones, exactly when the worker fell behind.
    devices = {u.device for u in live.users}
    target = before.get("cadence_events_consumed_total", 0.0) + stats.events
    settle_started = time.monotonic()
    tail = settle_paced(
        worker.metrics,
        verdicts.received,
        devices,
        target,
        verdicts_emitted(before),
        config.paced_settle_timeout_s,
    )
    result.paced_settle_s = time.monotonic() - settle_started
    verdicts.stop.set()
    verdicts.join(timeout=30)
    result.paced_verdicts_emitted = tail.emitted
    result.paced_verdicts_missing = max(0, tail.emitted - tail.received)
    result.paced_events_unconsumed = max(0, int(target - tail.consumed))
    if not tail.complete:
        progress(
            f"paced: gave up after {config.paced_settle_timeout_s:.0f} s: "
            f"{result.paced_events_unconsumed} events not consumed, "
            f"{result.paced_verdicts_missing} verdicts not received"
        )
    after = worker.metrics()
    status = proc_status(worker.pid)
    result.rss_bytes = status.get("VmRSS", 0)
    result.rss_peak_bytes = status.get("VmHWM", 0)
    result.active_users = int(after.get('cadence_users{state="active"}', 0.0))
    result.windows_closed = {
        k.split('"')[1]: v
        for k, v in after.items()
        if k.startswith("cadence_windows_closed_total{")
    }
    s0, c0 = histogram_sum_count(before, "cadence_profile_bytes")
    s1, c1 = histogram_sum_count(after, "cadence_profile_bytes")
    result.profile_bytes_paced = (s1 - s0) / (c1 - c0) if c1 > c0 else 0.0
    return paced_start, paced_end


def _latencies(
    received: list[tuple[float, Any]],
    devices: set[str],
    paced_start: float,
    paced_end: float,
    result: BenchResult,
) -> None:
    """Event time -> verdict emitted (and arrived at the reader), for the windows of the
    paced devices that closed while they were working."""
    paced = [
        (v.window_end_ms, received_ms, v.emitted_at_ms)
        for received_ms, v in received
        if v.device in devices and paced_start <= v.window_end_ms <= paced_end
    ]
    emitted = [max(0.0, at - end) / 1000.0 for end, _, at in paced]
    arrived = [max(0.0, got - end) / 1000.0 for end, got, _ in paced]
    result.paced_verdicts = len(emitted)
    # A latency that grows from the first half of the paced phase to the second means
    # the worker is not keeping up: the load is above what it sustains.
    middle = (paced_start + paced_end) / 2.0
    halves: tuple[list[float], list[float]] = ([], [])
    for (end, _, _), latency in zip(paced, emitted, strict=True):
        halves[end > middle].append(latency)
    result.latency_p50_first_half_s = quantile(halves[0], 0.5)
    result.latency_p50_second_half_s = quantile(halves[1], 0.5)
    result.latency_p50_s = quantile(emitted, 0.5)
    result.latency_p99_s = quantile(emitted, 0.99)
    result.latency_max_s = max(emitted) if emitted else None
    result.arrival_latency_p50_s = quantile(arrived, 0.5)
    result.arrival_latency_p99_s = quantile(arrived, 0.99)


__all__ = ["BenchConfig", "BenchResult", "run_bench"]
