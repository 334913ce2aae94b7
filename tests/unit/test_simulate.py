"""The synthetic workload: determinism, agent-like batches, takeovers, distinguishable personas."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from statistics import median

import numpy as np
import pytest

from collectors.episodes import (
    BATCH_MAX_AGE_MS,
    BATCH_MAX_EVENTS,
    KD,
    KU,
    MD,
    MM,
    MU,
    Episode,
    cut_at,
)
from collectors.persona import Persona
from collectors.publish import publish
from collectors.simulate import Takeover, Workload, pace, persona_seed
from collectors.wire import EventBatch, KeyEvent, MouseEvent, decode_batch, encode_batch

WALL = 1.75e12


def _batches(wl: Workload, until_s: float) -> list[tuple[float, EventBatch]]:
    return list(wl.batches(until_s))


def _sim_s(batch: EventBatch, t_ms: float) -> float:
    """Workload time (s) of a wire event time."""
    return (t_ms + batch.clock_offset_ms - WALL) / 1000.0


def _dwells(batches: Iterable[EventBatch]) -> list[float]:
    """Letter-key hold times, pairing each key up with the oldest open down of its class."""
    open_downs: dict[int, list[float]] = defaultdict(list)
    dwells: list[float] = []
    for b in batches:
        for e in b.events:
            if not isinstance(e, KeyEvent) or e.key_class > 5:
                continue
            if e.kind == "kd":
                open_downs[e.key_class].append(e.t_ms)
            elif open_downs[e.key_class]:
                dwells.append(e.t_ms - open_downs[e.key_class].pop(0))
    return dwells


def _speeds(batches: Iterable[EventBatch]) -> list[float]:
    """Pointer speeds (px/ms) between consecutive moves less than 50 ms apart."""
    speeds: list[float] = []
    last: MouseEvent | None = None
    for b in batches:
        for e in b.events:
            if isinstance(e, MouseEvent) and e.kind == "mm":
                if last is not None and 0 < e.t_ms - last.t_ms < 50:
                    speeds.append(math.hypot(e.x - last.x, e.y - last.y) / (e.t_ms - last.t_ms))
                last = e
    return speeds


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    a = _batches(Workload(users=4, seed=11, start_wall_ms=WALL), 20.0)
    b = _batches(Workload(users=4, seed=11, start_wall_ms=WALL), 20.0)
    c = _batches(Workload(users=4, seed=12, start_wall_ms=WALL), 20.0)
    assert a == b
    assert [x[1].events for x in a] != [x[1].events for x in c]


def test_iterating_twice_gives_the_same_batches() -> None:
    wl = Workload(users=3, seed=5, start_wall_ms=WALL)
    assert _batches(wl, 10.0) == _batches(wl, 10.0)


def test_run_renames_devices_not_behaviour() -> None:
    a = _batches(Workload(users=2, seed=1, run="a", start_wall_ms=WALL), 10.0)
    b = _batches(Workload(users=2, seed=1, run="b", start_wall_ms=WALL), 10.0)
    assert {x[1].device for x in a}.isdisjoint({x[1].device for x in b})
    assert [x[1].user for x in a] == [x[1].user for x in b]
    assert [x[1].events for x in a] == [x[1].events for x in b]


def test_run_users_renames_the_accounts_too() -> None:
    # The demo's: a second demo on the same topics must not continue the first one's
    # profiles (its new worker group reads the earlier events too).
    a = _batches(Workload(users=2, seed=1, run="a", run_users=True, start_wall_ms=WALL), 10.0)
    b = _batches(Workload(users=2, seed=1, run="b", run_users=True, start_wall_ms=WALL), 10.0)
    assert {x[1].user for x in a}.isdisjoint({x[1].user for x in b})
    assert [x[1].events for x in a] == [x[1].events for x in b]


def test_batches_are_agent_like_and_round_trip() -> None:
    wl = Workload(users=6, seed=2, start_wall_ms=WALL)
    timed = _batches(wl, 60.0)
    assert timed, "no batches at all"
    seqs: dict[str, list[int]] = defaultdict(list)
    kinds: set[str] = set()
    previous = -math.inf
    for close_s, batch in timed:
        assert close_s >= previous, "not in close-time order"
        previous = close_s
        assert decode_batch(encode_batch(batch)) == batch
        seqs[batch.device].append(batch.seq)
        assert 1 <= len(batch.events) <= BATCH_MAX_EVENTS
        times = [e.t_ms for e in batch.events]
        assert times == sorted(times)
        assert times[-1] - times[0] < BATCH_MAX_AGE_MS
        first_wall = times[0] + batch.clock_offset_ms
        last_wall = times[-1] + batch.clock_offset_ms
        assert last_wall <= batch.sent_at_ms <= first_wall + BATCH_MAX_AGE_MS + 1e-3
        assert batch.sent_at_ms == pytest.approx(WALL + close_s * 1000.0, abs=1e-3)
        assert not batch.key_identity
        kinds.update(e.kind for e in batch.events)
    for device, numbers in seqs.items():
        assert numbers == list(range(len(numbers))), device
    assert {"kd", "ku", "mm", "md", "mu"} <= kinds
    assert len(seqs) == 6
    assert all(len(b.user) == 64 and int(b.user, 16) >= 0 for _, b in timed)


@pytest.mark.parametrize(
    ("max_events", "max_age_ms"), [(128, 250.0), (16, 500.0), (4096, 2 * BATCH_MAX_AGE_MS)]
)
def test_batching_limits_are_a_parameter(max_events: int, max_age_ms: float) -> None:
    """Other batch limits cut the same events differently (benchmarks of the batch age)."""
    default = _batches(Workload(users=4, seed=9, start_wall_ms=WALL), 30.0)
    other = _batches(
        Workload(
            users=4,
            seed=9,
            start_wall_ms=WALL,
            batch_max_events=max_events,
            batch_max_age_ms=max_age_ms,
        ),
        30.0,
    )

    def events(timed: list[tuple[float, EventBatch]]) -> dict[str, list[object]]:
        by_device: dict[str, list[object]] = defaultdict(list)
        for _, b in timed:
            by_device[b.device].extend(b.events)
        return by_device

    assert events(other) == events(default)
    assert len(other) != len(default)
    for close_s, batch in other:
        assert 1 <= len(batch.events) <= max_events
        times = [e.t_ms for e in batch.events]
        assert times[-1] - times[0] < max_age_ms
        assert batch.sent_at_ms == pytest.approx(WALL + close_s * 1000.0, abs=1e-3)
    if max_events == 16:
        assert any(len(b.events) == 16 for _, b in other)
    if max_age_ms > BATCH_MAX_AGE_MS:
        assert max(t[1] - t[0] for t in _spans(other)) > BATCH_MAX_AGE_MS
    with pytest.raises(ValueError):
        Workload(users=1, batch_max_age_ms=0.0)


def _spans(timed: list[tuple[float, EventBatch]]) -> list[tuple[float, float]]:
    return [(b.events[0].t_ms, b.events[-1].t_ms) for _, b in timed]


def test_keys_are_released_and_buttons_balanced() -> None:
    timed = _batches(Workload(users=3, seed=4, start_wall_ms=WALL), 40.0)
    downs: dict[tuple[str, str], int] = defaultdict(int)
    for _, b in timed:
        for e in b.events:
            if e.kind in ("kd", "md"):
                downs[(b.device, e.kind)] += 1
            elif e.kind in ("ku", "mu"):
                downs[(b.device, "kd" if e.kind == "ku" else "md")] -= 1
    assert all(v == 0 for v in downs.values()), downs


def test_batches_end_at_until() -> None:
    timed = _batches(Workload(users=3, seed=3, start_wall_ms=WALL), 15.0)
    assert all(_sim_s(b, b.events[-1].t_ms) < 15.0 for _, b in timed)
    assert max(t for t, _ in timed) <= 15.0 + BATCH_MAX_AGE_MS / 1000.0


def _distinct_impostor(owner: Persona) -> int:
    """An impostor seed whose typing is clearly slower or faster than the owner's."""
    for seed in range(1000, 2000):
        other = Persona.from_seed(seed)
        ratio = other.median_dwell_ms / owner.median_dwell_ms
        if ratio > 1.4 or ratio < 1 / 1.4:
            return seed
    raise AssertionError("no distinct impostor found")


def test_takeover_switches_persona_at_the_scheduled_time() -> None:
    seed, victim, at_s, until_s = 21, 1, 150.0, 300.0
    owner = Persona.from_seed(persona_seed(seed, victim))
    impostor_seed = _distinct_impostor(owner)
    takeover = Takeover(user_index=victim, at_s=at_s, impostor_seed=impostor_seed)
    wl = Workload(users=3, seed=seed, takeovers=[takeover], start_wall_ms=WALL)
    plain = Workload(users=3, seed=seed, start_wall_ms=WALL)
    device = wl.users[victim].device

    mine = [b for _, b in _batches(wl, until_s) if b.device == device]
    ref = [b for _, b in _batches(plain, until_s) if b.device == device]
    before = [b for b in mine if _sim_s(b, b.events[-1].t_ms) < at_s]
    after = [b for b in mine if _sim_s(b, b.events[0].t_ms) > at_s]
    assert len(before) + len(after) == len(mine), "a batch straddles the takeover"
    # Up to the takeover the account behaves exactly as without it (the last batch
    # before it may close early: without the takeover the owner's batch runs on).
    assert [b.events for b in before[:-1]] == [b.events for b in ref[: len(before) - 1]]
    owner_tail = [e for e in ref[len(before) - 1].events if _sim_s(ref[0], e.t_ms) < at_s]
    assert list(before[-1].events) == owner_tail
    assert all(b.user == wl.users[victim].user for b in mine)
    assert all(b.session == wl.users[victim].session for b in mine)  # same session by default
    assert [b.seq for b in mine] == list(range(len(mine)))

    owner_dwell, impostor_dwell = median(_dwells(before)), median(_dwells(after))
    assert abs(math.log(owner_dwell / owner.median_dwell_ms)) < 0.2
    assert abs(math.log(impostor_dwell / Persona.from_seed(impostor_seed).median_dwell_ms)) < 0.2

    [truth] = wl.truth
    assert (truth.user, truth.device, truth.at_s) == (wl.users[victim].user, device, at_s)
    assert truth.at_wall_ms == WALL + at_s * 1000.0
    assert (truth.owner_seed, truth.impostor_seed) == (owner.seed, impostor_seed)
    assert wl.persona_at(victim, at_s - 1) == owner
    assert wl.persona_at(victim, at_s + 1) == Persona.from_seed(impostor_seed)
    assert wl.persona_at(0, at_s + 1) == wl.users[0].persona


def test_takeover_in_a_new_session_and_on_a_new_device() -> None:
    takeovers = [
        Takeover(user_index=0, at_s=10.0, new_session=True),
        Takeover(user_index=1, at_s=10.0, new_device=True, impostor_user=2),
    ]
    wl = Workload(users=3, seed=8, takeovers=takeovers, start_wall_ms=WALL)
    timed = _batches(wl, 25.0)
    sessions = {b.session for _, b in timed if b.device == wl.users[0].device}
    assert sessions == {wl.users[0].session, wl.truth[0].session}
    new_device = [b for _, b in timed if b.device == wl.truth[1].device]
    assert new_device and all(b.user == wl.users[1].user for b in new_device)
    assert all(_sim_s(b, b.events[0].t_ms) > 10.0 for b in new_device)
    assert [b.seq for b in new_device] == list(range(len(new_device)))
    owner_after = [
        b for _, b in timed if b.device == wl.users[1].device and _sim_s(b, b.events[0].t_ms) > 10.0
    ]
    assert owner_after, "the owner keeps working on their own device"
    assert wl.persona_at(1, 11.0, device=wl.truth[1].device) == wl.users[2].persona
    assert wl.persona_at(1, 11.0) == wl.users[1].persona


def test_invalid_takeovers_are_rejected() -> None:
    with pytest.raises(ValueError):
        Workload(users=2, takeovers=[Takeover(user_index=2, at_s=1.0)])
    with pytest.raises(ValueError):
        Takeover.parse("3")
    assert Takeover.parse("3@60") == Takeover(user_index=3, at_s=60.0)


def test_personas_differ_measurably_but_overlap() -> None:
    wl = Workload(users=8, seed=31, start_wall_ms=WALL)
    timed = _batches(wl, 240.0)
    dwell_medians, speed_medians = [], []
    for u in wl.users:
        mine = [b for _, b in timed if b.device == u.device]
        dwell_medians.append(median(_dwells(mine)))
        speed_medians.append(median(_speeds(mine)))
        # Measured behaviour follows the persona's parameters.
        assert abs(math.log(dwell_medians[-1] / u.persona.median_dwell_ms)) < 0.2
    assert max(dwell_medians) / min(dwell_medians) > 1.3
    assert max(speed_medians) / min(speed_medians) > 1.3
    # ... yet no single statistic separates everyone: some pair is within 10 %.
    gaps = np.diff(np.sort(np.log(dwell_medians)))
    assert gaps.min() < math.log(1.1)


def test_pace_waits_for_each_close_time() -> None:
    now = [100.0]
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    items = list(pace([(0.5, "a"), (1.5, "b"), (1.5, "c")], 2.0, wait=wait, clock=lambda: now[0]))
    assert items == ["a", "b", "c"]
    assert waits == pytest.approx([0.25, 0.5])
    assert list(pace([(1e9, "x")], math.inf, wait=lambda s: pytest.fail("waited"))) == ["x"]


class _SlowSender:
    """Acknowledges one batch per poll: lets the test see publish's backpressure."""

    def __init__(self) -> None:
        self.sent: list[EventBatch] = []
        self.pending = 0
        self.max_pending = 0

    def send(self, batch: EventBatch) -> None:
        self.sent.append(batch)
        self.pending += 1
        self.max_pending = max(self.max_pending, self.pending)

    def poll(self, timeout: float = 0) -> None:
        self.pending = max(0, self.pending - 1)


def test_publish_sends_everything_and_holds_back() -> None:
    wl = Workload(users=3, seed=1, start_wall_ms=WALL)
    sender = _SlowSender()
    stats = publish(wl.batches(10.0), sender, speed=math.inf, max_pending=5)
    assert [b for _, b in wl.batches(10.0)] == sender.sent
    assert stats.batches == len(sender.sent)
    assert stats.events == sum(len(b.events) for b in sender.sent)
    assert sender.max_pending <= 5


def test_cut_releases_a_held_button_where_the_pointer_was_not_at_a_key_class() -> None:
    # Button pressed at (400, 300), pointer moved to (420, 310), a key pressed: cut while
    # both are held, so both are released.
    ep = Episode(
        np.array([0.0, 10.0, 20.0, 30.0]),
        np.array([MD, MM, KD, KU], np.int8),
        np.array([400, 420, 7, 7]),
        np.array([300, 310, 0, 0]),
        np.array([1, 0, 0, 0]),
    )
    cut = cut_at(ep, 25.0)
    assert cut.kind.tolist() == [MD, MM, KD, KU, MU]
    assert (int(cut.a[-1]), int(cut.b[-1]), int(cut.c[-1])) == (420, 310, 1)


@pytest.mark.parametrize(
    "extra",
    [["--seconds", "0"], ["--seconds", "-5"], ["--rate", "nan"], ["--takeover", "1@nan"]],
)
def test_simulate_rejects_arguments_before_sending(extra: list[str]) -> None:
    from streams.cli import main

    assert main(["simulate", "--users", "3", "--bootstrap", "127.0.0.1:1", *extra]) == 2


def test_simulate_truth_into_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    from streams.cli import main

    args = ["simulate", "--users", "2", "--seconds", "5", "--bootstrap", "127.0.0.1:1"]
    assert main([*args, "--truth", str(tmp_path / "no" / "truth.json")]) == 2


@pytest.mark.parametrize("extra", [["--fast"], ["--rate", "4"]])
def test_simulate_faster_than_real_time_needs_an_end(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Run ahead of the clock for ever, its batches would soon be stamped more than
    # 5 minutes in the future: every one dead-lettered by the worker. Refused at once.
    from streams.cli import main

    assert main(["simulate", "--users", "2", "--bootstrap", "127.0.0.1:1", *extra]) == 2
    assert "need --seconds" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--fast"], ["--rate", "4"]])
def test_a_run_faster_than_real_time_ends_now_not_in_the_future(
    tmp_path: Path, extra: list[str]
) -> None:
    # `--seconds 600 --fast` (docs/workloads.md) used to stamp its last batches 10 minutes
    # ahead: the worker refused half the run as absurd timestamps.
    from streams.cli import main

    truth = tmp_path / "truth.json"
    args = ["simulate", "--users", "2", "--seconds", "8", "--bootstrap", "127.0.0.1:1"]
    args += ["--truth", str(truth), "--flush-timeout", "0.1", "--quiet", *extra]
    before_ms = time.time() * 1000.0
    main(args)  # the broker is unreachable: what matters is where the run was placed
    start_ms = json.loads(truth.read_text())["start_wall_ms"]
    speed = 4.0 if "--rate" in extra else math.inf
    # Event time 8 s is sent 8 / speed s after the start: no later than its own time.
    assert start_ms <= before_ms - 8_000.0 * (1.0 - 1.0 / speed) + 500.0
    assert start_ms >= before_ms - 8_000.0 - 1000.0


class _CPoller:
    """A sender whose ``poll`` behaves as librdkafka's does when Ctrl-C lands inside it:
    the KeyboardInterrupt is lost and ``SystemError: ... returned NULL`` comes out."""

    def __init__(self, interrupt_at: int) -> None:
        self.polls = 0
        self.interrupt_at = interrupt_at
        self.sent = 0

    @property
    def pending(self) -> int:
        return 0

    def send(self, batch: object) -> None:
        self.sent += 1
        self.poll(0)

    def poll(self, timeout: float = 0) -> None:
        import signal

        self.polls += 1
        if self.polls == self.interrupt_at:
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                raise SystemError("<method 'poll'> returned NULL without an exception") from None

    def close(self, timeout: float) -> int:
        return 0


@pytest.mark.parametrize("speed", [50.0, math.inf])
def test_ctrl_c_inside_the_producers_poll_stops_with_status_130(
    speed: float, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "stopped: <method 'poll' of 'cimpl.Producer' objects> returned NULL without
    # setting an exception" and exited 1.
    from streams.commands._replay import send_and_close

    sender = _CPoller(interrupt_at=5)
    timed = Workload(users=2, seed=1, start_wall_ms=WALL).batches(10**6)
    status = send_and_close(timed, sender, speed, lambda stats: None, 1.0, "simulate")  # type: ignore[arg-type]
    assert status == 130, capsys.readouterr().err
    assert sender.sent < 10  # stopped there, not at the end of the workload
    assert "returned NULL" not in capsys.readouterr().err


def test_simulate_runs_until_interrupted_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # No --seconds is the documented "until Ctrl-C"; it was refused as not positive (inf).
    from streams.cli import main
    from streams.commands import _replay

    taken: list[float] = []
    batches: list[EventBatch] = []

    def capture(timed, sender, speed, *args: object) -> int:  # type: ignore[no-untyped-def]
        for t, batch in timed:
            taken.append(t)
            batches.append(batch)
            if len(taken) == 50:
                break
        sender.close(0)
        return 0 if speed == 1.0 else 1

    monkeypatch.setattr(_replay, "send_and_close", capture)
    started_ms = time.time() * 1000.0
    assert main(["simulate", "--users", "2", "--bootstrap", "127.0.0.1:1", "--quiet"]) == 0
    assert len(taken) == 50
    # Stamped from now on: an endless run placed "to end now" was NaN (inf x 0), and the
    # worker dead-lettered every batch as malformed.
    for batch in batches:
        assert decode_batch(encode_batch(batch)) == batch
        assert started_ms <= batch.sent_at_ms <= time.time() * 1000.0 + 60_000.0


@pytest.mark.parametrize("extra", [["--fast"], ["--rate", "4"]])
def test_simulate_placed_more_than_30_days_back_is_refused(
    extra: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Placed to end now, a run of more than 30 days (45 x (1 - 1/4) > 30 too) would start
    # so long ago that the worker dead-letters its first batches as absurd_timestamp.
    from streams.cli import main
    from streams.commands import _replay

    def send(timed, sender, *args: object) -> int:  # type: ignore[no-untyped-def]
        sender.close(0)
        return 0

    monkeypatch.setattr(_replay, "send_and_close", send)
    args = ["simulate", "--users", "2", "--bootstrap", "127.0.0.1:1", "--quiet"]
    assert main([*args, "--seconds", str(45 * 86_400), *extra]) == 2
    assert "30 days" in capsys.readouterr().err
