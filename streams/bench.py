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

import dataclasses
import functools
import itertools
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.children import dies_with_this_thread
from streams.topics import IsolatedTopics

if TYPE_CHECKING:
    from collectors.delivery import BatchSender
    from collectors.publish import PublishStats
    from collectors.simulate import Workload
    from collectors.wire import EventBatch

REPO = Path(__file__).resolve().parent.parent

# Low enough that profiles turn active within the run's simulated minutes.
FAST_ENROLLMENT = {
    "CADENCE_ENROLL_MIN_PRESSES": "200",
    "CADENCE_ENROLL_MIN_ACTIONS": "40",
    "CADENCE_ENROLL_MIN_SESSIONS": "1",
}


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out: dict[str, int] = {}
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    with suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- Kafka side ----------------------------------------------------------------


def create_run_topics(bootstrap: str, topics: IsolatedTopics, partitions: int) -> None:
    from streams.admin import create_topics

    create_topics({"bootstrap.servers": bootstrap}, topics.specs(partitions), timeout=30)


def delete_run_topics(bootstrap: str, topics: IsolatedTopics) -> None:
    """Drop everything this run created, the worker's changelog included: it is large."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(topics.prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with suppress(Exception):
                future.result(timeout=30)


def profile_changelog(topics: IsolatedTopics) -> str:
    """The changelog Faust creates for the worker's ``user-profiles`` table."""
    return f"{topics.app_id}-user-profiles-changelog"


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 300.0
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of ``topic`` up to its end now, in each partition's order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None:
            return
        last: dict[int, int] = {}
        for partition in found.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high > low:
                last[partition] = high - 1
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in last])
        deadline = time.monotonic() + timeout_s
        while last:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(last)} not read to their end")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            partition, error = msg.partition() or 0, msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    last.pop(partition, None)
                continue
            yield msg.key(), msg.value()
            if (msg.offset() or 0) >= last.get(partition, -1):
                last.pop(partition, None)
    finally:
        consumer.close()


def last_value_sizes(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[bytes, int]:
    """The size of each key's last value; a tombstone (None) removes the key.

    >>> last_value_sizes([(b"a", b"xx"), (b"b", b"y"), (b"a", b"xxxx"), (b"b", None)])
    {b'a': 4}
    """
    sizes: dict[bytes, int] = {}
    for key, value in records:
        if key is None:
            continue
        if value is None:
            sizes.pop(key, None)
        else:
            sizes[key] = len(value)
    return sizes


@contextmanager
def batch_sender(bootstrap: str, topic: str, *, flat_out: bool) -> Iterator[BatchSender]:
    """The agent's own delivery path (a ``BatchSender``), flushed and closed on exit."""
    from collectors.delivery import BatchSender

    sender = BatchSender(
        bootstrap=bootstrap,
        topic=topic,
        # Bigger producer batches: loading the backlog is not what is measured.
        extra_config={"linger.ms": 50, "batch.size": 1 << 20} if flat_out else None,
        window=20_000,
    )
    try:
        yield sender
    except BaseException:
        # Interrupted: the batches no longer matter, and a callback cut short can leave
        # one unacknowledged for good; 120 s spent flushing would hold up the clean-up.
        sender.close(2.0)
        raise
    remaining = sender.close(120.0)
    if remaining:
        raise RuntimeError(f"{remaining} batches not acknowledged by the broker")


def produce(
    bootstrap: str, topic: str, timed: Iterable[tuple[float, EventBatch]], speed: float
) -> PublishStats:
    """Send batches through the agent's own delivery path; returns PublishStats."""
    from collectors.publish import publish

    with batch_sender(bootstrap, topic, flat_out=math.isinf(speed)) as sender:
        return publish(timed, sender, speed=speed, max_pending=50_000)


def on_wall_clock(
    timed: Iterable[tuple[float, EventBatch]],
    origin_wall_ms: float,
    origin_clock: float,
    *,
    wait: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[float, EventBatch]]:
    """Batches generated with ``start_wall_ms=0``, each at ``origin_clock`` + its close time.

    Their wall times are moved to ``origin_wall_ms``: event time 0 is ``origin_clock``,
    the instant pacing starts, however long building the generator took before it.
    """
    from collectors.simulate import pace

    def moved(batch: EventBatch) -> EventBatch:
        return dataclasses.replace(
            batch,
            sent_at_ms=batch.sent_at_ms + origin_wall_ms,
            clock_offset_ms=batch.clock_offset_ms + origin_wall_ms,
        )

    shifted = ((t, (t, moved(batch))) for t, batch in timed)
    return pace(shifted, 1.0, wait=wait, clock=clock, start=origin_clock)


def produce_in_real_time(
    bootstrap: str, topic: str, workload: Workload, seconds: float
) -> tuple[PublishStats, float]:
    """Send ``seconds`` of ``workload`` in real time; returns (PublishStats, origin wall ms).

    The producer is connected and every device stream built (its first batch cut) before
    the clock starts, ~0.1 ms per user: started first, that time made every batch late.
    """
    from collectors.publish import publish

    with batch_sender(bootstrap, topic, flat_out=False) as sender:
        timed = workload.batches(until_s=seconds, start_wall_ms=0.0)
        first = next(timed, None)
        origin_wall_ms, origin_clock = time.time() * 1000.0, time.monotonic()
        batches = on_wall_clock(
            itertools.chain([first] if first is not None else [], timed),
            origin_wall_ms,
            origin_clock,
            wait=lambda s: sender.poll(min(s, 0.1)),
        )
        # Paced above: publish only sends (speed inf never waits).
        stats = publish(batches, sender, speed=math.inf, max_pending=50_000)
    return stats, origin_wall_ms


def measure_ceiling(bootstrap: str, topic: str, expected_batches: int) -> tuple[int, float, float]:
    """(events, wall seconds, CPU seconds) for a plain consumer to read and decode the topic."""
    from confluent_kafka import Consumer

    from collectors.wire import decode_batch

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-ceiling-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    events = batches = 0
    started: float | None = None
    cpu_started = 0.0
    # consume() returns when it has 1000 records or its timeout is up, so the last call
    # waits out the timeout for records that never come: with 1 s, a second added to
    # every drain (a short backlog's ceiling was half of what it is). 20 ms at most now.
    ended = cpu_ended = 0.0
    deadline = time.monotonic() + 600
    try:
        while batches < expected_batches and time.monotonic() < deadline:
            records = consumer.consume(1000, timeout=0.02)
            for msg in records:
                if msg.error():
                    continue
                if started is None:
                    started, cpu_started = time.perf_counter(), time.process_time()
                events += len(decode_batch(msg.value() or b"").events)
                batches += 1
            if records and started is not None:
                ended, cpu_ended = time.perf_counter(), time.process_time()
        elapsed = ended - (started or ended)
        cpu = cpu_ended - cpu_started
    finally:
        consumer.close()
    return events, elapsed, cpu


class VerdictReader(threading.Thread):
    """Collects (arrival wall ms, verdict) from a topic, in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-verdicts-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic], on_assign=self._assigned)
        self.assigned = threading.Event()
        self.stop = threading.Event()
        self.received: list[tuple[float, Any]] = []

    def _assigned(self, consumer: Any, partitions: Any) -> None:
        self.assigned.set()

    def run(self) -> None:
        from streams.verdict import decode_verdict

        # poll() returns as soon as a record is there; consume(n, timeout) waits for n
        # records or the timeout, which stamped arrivals up to that timeout late.
        while not self.stop.is_set():
            msg = self.consumer.poll(0.1)
            if msg is not None and not msg.error():
                self.received.append((time.time() * 1000.0, decode_verdict(msg.value() or b"")))
        self.consumer.close()


# -- the worker ----------------------------------------------------------------


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    web_port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics as ``{'name{labels}': value}``."""
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log}")
        try:
            url = f"http://127.0.0.1:{self.web_port}/health"
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200 and b'"ready":true' in r.read()
        except OSError:
            return False


@contextmanager
def running_worker(
    bootstrap: str,
    topics: IsolatedTopics,
    partitions: int,
    work_dir: Path,
    tree: Path = REPO,
    env_extra: dict[str, str] | None = None,
) -> Iterator[WorkerProcess]:
    """A ``cadence worker`` from the source tree ``tree`` (bench/ab.py runs other trees)."""
    port = free_port()
    log = work_dir / "worker.log"
    env = {
        **os.environ,
        "CADENCE_KAFKA_BOOTSTRAP": bootstrap,
        **topics.worker_env(partitions),
        "PYTHONUNBUFFERED": "1",
        **FAST_ENROLLMENT,
        **(env_extra or {}),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "worker",
                "--web-port",
                str(port),
                "--data-dir",
                str(work_dir / "worker-data"),
                "--loglevel",
                "warning",
            ],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dies_with_this_thread(),
        )
    worker = WorkerProcess(process, port, log)
    try:
        yield worker
    finally:
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class DrainWatch:
    """Ends a drain that cannot finish: past ``timeout_s``, or, once the worker's counter
    has moved, ``stall_s`` without it moving again."""

    def __init__(self, events: int, timeout_s: float, stall_s: float = 120.0) -> None:
        self.events = events
        self.deadline = time.monotonic() + timeout_s
        self.stall_s = stall_s
        self.last = 0.0
        self.last_change = time.monotonic()

    def check(self, consumed: float, now: float) -> None:
        if consumed != self.last:
            self.last, self.last_change = consumed, now
        if now > self.deadline or (consumed > 0 and now - self.last_change > self.stall_s):
            raise TimeoutError(f"worker stuck at {consumed:.0f}/{self.events} events")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class PacedTail:
    """Where the paced phase's tail stood when :func:`settle_paced` returned."""

    consumed: float
    emitted: int  # verdicts of the watched devices the worker emitted (counter delta)
    received: int  # ... and the reader received
    complete: bool


def verdicts_emitted(metrics: dict[str, float]) -> float:
    """``cadence_verdicts_total`` summed over its levels."""
    return sum(v for k, v in metrics.items() if k.startswith("cadence_verdicts_total{"))


def settle_paced(
    metrics: Callable[[], dict[str, float]],
    received: list[tuple[float, Any]],
    devices: set[str],
    consumed_target: float,
    emitted_before: float,
    timeout_s: float,
    *,
    quiet_s: float = 2.0,
    step_s: float = 0.2,
) -> PacedTail:
    """Wait until the worker consumed ``consumed_target`` events, the reader has every
    verdict it emitted since ``emitted_before`` and none came for ``quiet_s``.

    ``received`` is the reader's list of (arrival, verdict), read while it grows; only
    verdicts of ``devices`` count. Short of ``timeout_s``, ``complete`` is False and the
    counts say what was missing. The idle flush of each paced user's last window comes
    ``CADENCE_IDLE_FLUSH_SECONDS`` (30) after the last batch, long after ``quiet_s``.
    """
    deadline = time.monotonic() + timeout_s
    seen = count = 0
    last_arrival = time.monotonic()
    while True:
        now = time.monotonic()
        current = metrics()
        consumed = current.get("cadence_events_consumed_total", 0.0)
        emitted = int(verdicts_emitted(current) - emitted_before)
        # Counted after the scrape: every verdict the worker had emitted by then is in.
        while seen < len(received):
            if received[seen][1].device in devices:
                count, last_arrival = count + 1, now
            seen += 1
        done = consumed >= consumed_target and count >= emitted
        if (done and now - last_arrival >= quiet_s) or now >= deadline:
            return PacedTail(consumed, emitted, count, done)
        time.sleep(step_s)


def _histogram_mean(metrics: dict[str, float], name: str) -> tuple[float, float]:
    return metrics.get(f"{name}_sum", 0.0), metrics.get(f"{name}_count", 0.0)


def py_spy_path() -> Path:
    """The venv's py-spy; a clear error if it is not installed (it is not a dependency)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise FileNotFoundError(
            f"--py-spy needs py-spy in this venv ({spy} is missing): "
            f"{Path(sys.executable).with_name('pip')} install py-spy"
        )
    return spy


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (from this venv) sampling ``pid`` until interrupted, as collapsed stacks."""
    spy = py_spy_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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
        create_run_topics(config.bootstrap, topics, config.partitions)
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

        # 3. the drain
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
            result.pipeline_events_per_cpu_s = result.drain_events_timed / max(
                result.worker_cpu_s, 1e-9
            )
            result.load_average_drain = load_average()
            result.ratio = result.pipeline_events_per_s / max(result.ceiling_events_per_s, 1e-9)
            result.ratio_cpu = result.pipeline_events_per_cpu_s / max(
                result.ceiling_events_per_cpu_s, 1e-9
            )
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            drained = worker.metrics()
            result.rss_after_drain_bytes = proc_status(worker.pid).get("VmRSS", 0)
            total, count = _histogram_mean(drained, "cadence_profile_bytes")
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
            result.ratio_cpu = result.pipeline_events_per_cpu_s / max(
                result.ceiling_events_per_cpu_s, 1e-9
            )

            # 4. paced, real time, the same accounts
            per_user = result.events / config.users / config.seconds
            paced_users = config.paced_users or max(
                1, int(config.paced_load * result.pipeline_events_per_s / per_user)
            )
            paced_users = min(paced_users, config.users)
            result.paced_users = paced_users
            verdicts.assigned.wait(30)
            live = new_workload(paced_users, seed=config.seed, run=f"{run}-live")
            progress(
                f"paced: {paced_users} users in real time for {config.paced_seconds:.0f} s "
                f"(~{paced_users * per_user:.0f} events/s)"
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
            s0, c0 = _histogram_mean(before, "cadence_profile_bytes")
            s1, c1 = _histogram_mean(after, "cadence_profile_bytes")
            result.profile_bytes_paced = (s1 - s0) / (c1 - c0) if c1 > c0 else 0.0
        # The worker has stopped, its last windows flushed: the changelog's last record
        # of each user is the state a restarted worker would load.
        sizes = last_value_sizes(read_topic(config.bootstrap, profile_changelog(topics)))
        result.profile_users = len(sizes)
        result.profile_bytes_per_user = sum(sizes.values()) / len(sizes) if sizes else 0.0
        # Windows of the paced devices that closed while they were working: event time ->
        # verdict emitted (and arrived at the reader).
        paced = [
            (v.window_end_ms, received_ms, v.emitted_at_ms)
            for received_ms, v in verdicts.received
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
        finished = True
    finally:
        if not config.keep_topics:
            with suppress(Exception):
                delete_run_topics(config.bootstrap, topics)
        if config.work_dir is None:  # a temporary directory: the worker's data is large
            if finished:
                shutil.rmtree(work_dir, ignore_errors=True)
            else:
                progress(f"the worker's log and data are kept in {work_dir}")
    return result


__all__ = ["BenchConfig", "BenchResult", "run_bench"]
