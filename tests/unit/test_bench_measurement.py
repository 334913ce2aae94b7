"""What `cadence bench pipeline` measures, checked offline (no broker, no worker)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import streams.bench_kafka as bench_kafka
import streams.bench_worker as bench_worker
from collectors.simulate import Workload, pace
from collectors.wire import EventBatch


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_pace_counts_from_the_given_start_not_from_its_first_call() -> None:
    clock = FakeClock(10.3)  # first called 0.3 s after the start it is given
    items = list(pace([(0.1, "a"), (0.5, "b")], 1.0, wait=clock.wait, clock=clock, start=10.0))
    assert items == ["a", "b"]
    assert clock.waits == pytest.approx([0.2])  # "a" was already due; "b" at 10.5


def test_paced_batches_leave_at_origin_plus_close_time_with_wall_times_from_origin() -> None:
    origin_clock, origin_wall_ms = 100.0, 1.7e12
    clock = FakeClock(origin_clock)
    timed = Workload(users=3, seed=4, start_wall_ms=0.0).batches(until_s=3.0)
    sent = [
        (clock.now, t, batch)
        for t, batch in bench_kafka.on_wall_clock(
            timed, origin_wall_ms, origin_clock, wait=clock.wait, clock=clock
        )
    ]
    assert len(sent) > 3
    assert all(at == pytest.approx(origin_clock + t) for at, t, _ in sent)
    # The same batches, wall times included, as a workload whose event time 0 is the origin.
    reference = list(Workload(users=3, seed=4, start_wall_ms=origin_wall_ms).batches(3.0))
    assert [t for _, t, _ in sent] == [t for t, _ in reference]
    for (_, _, got), (_, want) in zip(sent, reference, strict=True):
        assert got.events == want.events
        assert got.sent_at_ms == pytest.approx(want.sent_at_ms, abs=1e-3)
        assert got.clock_offset_ms == pytest.approx(want.clock_offset_ms, abs=1e-3)


class RecordingSender:
    pending = 0

    def __init__(self) -> None:
        self.sent: list[tuple[float, EventBatch]] = []

    def send(self, batch: EventBatch) -> None:
        self.sent.append((time.time() * 1000.0, batch))

    def poll(self, timeout: float = 0) -> None:
        time.sleep(timeout)


class SlowToBuild(Workload):
    """Records when its generator has built every device stream and cut the first batch."""

    built_at_ms: float = 0.0

    def batches(
        self, until_s: float = float("inf"), *, start_wall_ms: float | None = None
    ) -> Iterator[tuple[float, EventBatch]]:
        timed = super().batches(until_s, start_wall_ms=start_wall_ms)
        first = next(timed)
        time.sleep(0.05)
        self.built_at_ms = time.time() * 1000.0
        yield first
        yield from timed


def test_the_paced_origin_is_taken_once_the_generator_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender = RecordingSender()

    @contextmanager
    def fake_sender(*args: object, **kwargs: object) -> Iterator[RecordingSender]:
        yield sender

    monkeypatch.setattr(bench_kafka, "batch_sender", fake_sender)
    workload = SlowToBuild(users=2, seed=1)
    stats, origin_ms = bench_kafka.produce_in_real_time("unused:1", "events", workload, 0.6)
    assert stats.batches == len(sender.sent) > 0
    # Event time 0 is after the build: no batch's due time passed while it was going on.
    assert origin_ms >= workload.built_at_ms
    # Wall times count from the origin: no event happened before it.
    assert all(b.events[0].t_ms + b.clock_offset_ms >= origin_ms for _, b in sender.sent)


class Verdict:
    def __init__(self, device: str) -> None:
        self.device = device


class ScriptedWorker:
    """/metrics that move on by one step per scrape, the last step repeated."""

    def __init__(self, steps: list[tuple[float, float]], received: list[tuple[float, Any]]):
        self.steps = steps
        self.received = received
        self.arrivals: dict[int, list[Verdict]] = {}
        self.scrapes = 0

    def metrics(self) -> dict[str, float]:
        consumed, emitted = self.steps[min(self.scrapes, len(self.steps) - 1)]
        for v in self.arrivals.get(self.scrapes, []):
            self.received.append((0.0, v))
        self.scrapes += 1
        return {
            "cadence_events_consumed_total": consumed,
            'cadence_verdicts_total{level="normal"}': emitted - 1,
            'cadence_verdicts_total{level="suspicious"}': 1.0,
            'cadence_verdicts_created{level="normal"}': 1e9,  # not a count
        }


def test_the_paced_tail_waits_for_late_verdicts_of_a_worker_behind() -> None:
    received: list[tuple[float, Any]] = [(0.0, Verdict("drained-device"))]  # before: ignored
    # Consumption completes at the 4th scrape; the 3 verdicts arrive up to the 6th.
    worker = ScriptedWorker([(100, 1), (140, 1), (180, 2), (200, 3)], received)
    worker.arrivals = {2: [Verdict("paced")], 4: [Verdict("paced")], 6: [Verdict("paced")]}
    tail = bench_worker.settle_paced(
        worker.metrics, received, {"paced"}, 200, 0, 30.0, quiet_s=0.05, step_s=0.001
    )
    assert tail == bench_worker.PacedTail(consumed=200, emitted=3, received=3, complete=True)
    assert worker.scrapes >= 7  # a fixed wait of a few scrapes would have stopped earlier


def test_the_paced_tail_reports_what_never_came_when_time_runs_out() -> None:
    received: list[tuple[float, Any]] = []
    worker = ScriptedWorker([(150, 5)], received)  # stuck: 50 events, 5 verdicts behind
    worker.arrivals = {0: [Verdict("paced"), Verdict("other")]}
    tail = bench_worker.settle_paced(
        worker.metrics, received, {"paced"}, 200, 0, 0.05, quiet_s=0.01, step_s=0.001
    )
    assert tail == bench_worker.PacedTail(consumed=150, emitted=5, received=1, complete=False)


def test_profile_size_per_user_is_each_users_last_state_not_the_mean_write() -> None:
    # u1's state grows window by window; u2 was erased and enrolled again.
    records = [
        (b"u1", b"x" * 100),
        (b"u2", b"y" * 500),
        (b"u1", b"x" * 200),
        (b"u2", None),
        (b"u1", b"x" * 300),
        (b"u2", b"y" * 50),
        (None, b"z"),  # not a user's state
    ]
    sizes = bench_kafka.last_value_sizes(records)
    assert sizes == {b"u1": 300, b"u2": 50}
    # The histogram's mean over the writes (what the bench reported before) differs.
    writes = [len(v) for k, v in records if k and v]
    assert sum(writes) / len(writes) == 230 != sum(sizes.values()) / len(sizes)


def test_a_drain_that_stops_moving_or_overruns_is_ended() -> None:
    t0 = time.monotonic()
    watch = bench_worker.DrainWatch(events=1000, timeout_s=600.0, stall_s=120.0)
    watch.check(0.0, t0 + 300)  # a worker slow to start: only the deadline applies
    watch.check(10.0, t0 + 301)
    watch.check(500.0, t0 + 400)
    watch.check(500.0, t0 + 519)
    with pytest.raises(TimeoutError, match="stuck at 500/1000"):
        watch.check(500.0, t0 + 521)  # 121 s without progress
    moving = bench_worker.DrainWatch(events=1000, timeout_s=600.0)
    with pytest.raises(TimeoutError):
        moving.check(999.0, t0 + 601)  # moving, but past the deadline
