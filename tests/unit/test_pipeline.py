"""The Kafka-free worker core: profiles that cannot be read are replaced, not fatal."""

from __future__ import annotations

import dataclasses
import math

from collectors.simulate import Workload
from streams.pipeline import Pipeline
from streams.state import UserState


def test_an_unreadable_stored_profile_makes_the_user_enroll_again() -> None:
    batches = [b for _, b in Workload(users=1, seed=3).batches(until_s=30)]
    # What an older model version (or a damaged record) would leave in the table.
    stored = UserState(profile=b"CUP0" + bytes(64))
    pipeline: Pipeline[None] = Pipeline(lambda user: stored)
    judged = [j for b in batches for j in pipeline.add(b, None)[1]]
    assert judged, "30 s of activity closes windows"
    first = judged[0]
    assert first.verdict is not None and first.error is None
    assert first.profile_reset and first.verdict.enrollment == "enrolling"
    # From then on the user has a readable profile again.
    assert not any(j.profile_reset for j in judged[1:])


def test_each_judged_window_carries_the_state_right_after_it() -> None:
    from collectors.wire import EventBatch, KeyEvent

    def batch(seq: int, t0: float, session: str) -> EventBatch:
        return EventBatch(
            device="d",
            user="u",
            session=session,
            seq=seq,
            sent_at_ms=1.7e12,
            clock_offset_ms=1.7e12 - 1e7,
            events=(KeyEvent("kd", t0, 1), KeyEvent("ku", t0 + 80.0, 1)),
        )

    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    pipeline.add(batch(0, 0.0, "s"), None)
    # One batch closes two windows: the open one (session change) and its own (span).
    pipeline.add(batch(1, 0.0, "t"), None)
    _, judged = pipeline.add(batch(2, 6000.0, "t"), None)
    assert [j.window.reason for j in judged] == ["span"]
    _, judged = pipeline.add(batch(3, 0.0, "u"), None)
    pipeline.windower.window_ms = 0.0
    _, both = pipeline.add(batch(4, 10.0, "v"), None)
    assert [j.window.reason for j in both] == ["session_change", "span"]
    first, second = (UserState.from_bytes(j.state_bytes) for j in both)
    # What is persisted for the first window must not already contain the second.
    assert first.cursors["d"].last_seq == 3 and first.windows == second.windows - 1
    assert second.cursors["d"].last_seq == 4


def test_a_user_state_keeps_one_copy_of_its_profile_bytes() -> None:
    # The table keeps each window's state record; the state in memory refers into that
    # record for its profile's bytes instead of holding a second copy (~4.5 KB a user).
    batches = [b for _, b in Workload(users=1, seed=3).batches(until_s=60)]
    table: dict[str, bytes] = {}
    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    for b in batches:
        for j in pipeline.add(b, None)[1]:
            table[j.window.user] = j.state_bytes
    (user,) = table
    state = pipeline.states[user]
    assert isinstance(state.profile, memoryview) and state.profile.obj is table[user]
    assert len(state.profile) > 1000 and bytes(state.profile) == table[user][-len(state.profile) :]
    # The record stays what it was: a state read back from it equals the one in memory,
    # and a worker restarted from it reads the same profile from it, without copying.
    again = UserState.from_bytes(table[user])
    assert again == state and isinstance(again.profile, memoryview)
    assert again.profile.obj is table[user]
    restarted: Pipeline[None] = Pipeline(lambda u: UserState.from_bytes(table[u]))
    later = [dataclasses.replace(b, seq=b.seq + 10_000) for b in batches[:20]]
    first = [j for b in later for j in restarted.add(b, None)[1]]
    assert first and not first[0].profile_reset and first[0].verdict is not None


class DecodingPipeline(Pipeline[None]):
    """The worker as it was: the profile decoded from its bytes for every window."""

    def judge_many(self, windows):  # type: ignore[no-untyped-def]
        for window in windows:
            self.state_of(window.user).decoded = None
        return super().judge_many(windows)


def _judged(pipeline: Pipeline[None], batches: list) -> list:
    return [j for b in batches for j in pipeline.add(b, None)[1]]


def test_profiles_kept_in_memory_judge_as_profiles_decoded_for_every_window(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from collectors.simulate import Takeover
    from profiles.user import EnrollmentPolicy
    from streams import judge

    # The demo's short enrolment, so that profiles judge (and the victim is flagged).
    fast = EnrollmentPolicy(min_presses=200, min_actions=40, min_sessions=1)
    monkeypatch.setattr(judge, "enrollment_policy", lambda: fast)
    wl = Workload(users=5, seed=7, takeovers=[Takeover(user_index=4, at_s=150.0)])
    batches = [b for _, b in wl.batches(until_s=420)]
    kept = _judged(Pipeline(lambda user: None, clock_ms=lambda: 0.0), batches)
    decoded = _judged(DecodingPipeline(lambda user: None, clock_ms=lambda: 0.0), batches)
    assert len(kept) == len(decoded) > 50
    assert [j.verdict for j in kept] == [j.verdict for j in decoded]
    assert [j.state_bytes for j in kept] == [j.state_bytes for j in decoded]
    assert {"trusted", "impostor"} <= {j.verdict.level for j in kept if j.verdict}


def test_a_window_that_fails_leaves_the_profile_as_last_persisted(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from profiles.user import UserProfile

    batches = [b for _, b in Workload(users=1, seed=3).batches(until_s=60)]
    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    judged = _judged(pipeline, batches[: len(batches) // 2])
    state = pipeline.states[batches[0].user]
    persisted = judged[-1].state_bytes
    assert state.decoded is not None

    def fail(self, *args):  # type: ignore[no-untyped-def]
        raise RuntimeError("learning failed after the evidence was taken")

    monkeypatch.setattr(UserProfile, "_learn", fail)
    failed = _judged(pipeline, batches[len(batches) // 2 :])
    assert failed and all(j.error is not None for j in failed)
    # The half-updated profile is dropped; the state is the last one persisted.
    assert state.decoded is None
    assert (
        UserState.from_bytes(failed[-1].state_bytes).profile
        == UserState.from_bytes(persisted).profile
    )


def _fast_enrolment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from profiles.user import EnrollmentPolicy
    from streams import judge

    fast = EnrollmentPolicy(min_presses=200, min_actions=40, min_sessions=1)
    monkeypatch.setattr(judge, "enrollment_policy", lambda: fast)


def test_windows_judged_together_get_the_verdicts_and_states_of_one_by_one(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The worker closes windows as batches arrive and judges them in groups (many users
    # per call, a user's windows in order); nothing may differ from judging each at once.
    from collectors.simulate import Takeover

    _fast_enrolment(monkeypatch)
    wl = Workload(users=5, seed=7, takeovers=[Takeover(user_index=4, at_s=150.0)])
    batches = [b for _, b in wl.batches(until_s=420)]
    one_by_one = _judged(Pipeline(lambda user: None, clock_ms=lambda: 0.0), batches)
    grouped: Pipeline[None] = Pipeline(lambda user: None, clock_ms=lambda: 0.0)
    together = []
    for i, b in enumerate(batches):
        grouped.close(b, None)
        if i % 97 == 0:  # long groups: several windows of one user wait together
            together += grouped.judge_closed()
    together += grouped.judge_closed()
    assert len({j.window.user for j in together}) == 5
    key = lambda j: (j.window.user, j.window.first_seq)  # noqa: E731
    assert sorted(map(key, together)) == sorted(map(key, one_by_one))
    assert len(together) > 100
    by_window = {key(j): j for j in one_by_one}
    for j in together:
        assert j.verdict == by_window[key(j)].verdict
        assert j.state_bytes == by_window[key(j)].state_bytes
    assert {"trusted", "impostor"} <= {j.verdict.level for j in together if j.verdict}


def test_a_window_that_fails_in_a_group_fails_alone(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from profiles.modalities import session_key
    from profiles.user import UserProfile

    batches = [b for _, b in Workload(users=4, seed=5).batches(until_s=60)]
    victim = batches[0].user
    sessions = {session_key(b.session) for b in batches if b.user == victim}
    original = UserProfile._typing_window

    def fail_for_victim(self, fresh, session):  # type: ignore[no-untyped-def]
        if session in sessions:
            raise RuntimeError("this user's window cannot be judged")
        return original(self, fresh, session)

    monkeypatch.setattr(UserProfile, "_typing_window", fail_for_victim)
    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    for b in batches:
        pipeline.close(b, None)
    judged = pipeline.judge_closed()
    assert len({j.window.user for j in judged}) == 4
    assert {j.window.user for j in judged if j.error is not None} == {victim}
    assert all(j.verdict is not None for j in judged if j.window.user != victim)


def test_a_window_of_heartbeats_only_is_not_judged_but_moves_the_cursor() -> None:
    # Empty batches carry no behaviour and no event time: a verdict on them would have
    # infinite window times (and an OCSF finding could not be encoded).
    import dataclasses

    (first, *rest) = [b for _, b in Workload(users=1, seed=3).batches(until_s=30)]
    heartbeats = [dataclasses.replace(first, seq=s, events=()) for s in range(3)]
    pipeline: Pipeline[int] = Pipeline(lambda user: None)
    for i, b in enumerate(heartbeats):
        pipeline.close(b, i)
    (judged,) = pipeline.flush(first.user)
    assert (judged.verdict, judged.error, judged.window.tokens) == (None, None, [0, 1, 2])
    stored = UserState.from_bytes(judged.state_bytes)
    assert stored.cursors[first.device].last_seq == 2 and stored.profile == b""
    # The user's real activity afterwards is judged as usual, with finite times.
    later = [dataclasses.replace(b, seq=b.seq + 3) for b in (first, *rest)]
    verdicts = [j.verdict for b in later for j in pipeline.add(b, 0)[1]]
    assert verdicts and all(v is not None for v in verdicts)
    assert all(math.isfinite(v.window_start_ms) for v in verdicts if v is not None)


def test_a_stored_profile_with_non_finite_numbers_is_replaced_not_failed_window_by_window() -> None:
    import numpy as np

    from streams.judge import load_profile

    batches = [b for _, b in Workload(users=1, seed=3).batches(until_s=60)]
    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    for b in batches:
        pipeline.add(b, None)
    state = pipeline.states[batches[0].user]
    profile, _ = load_profile(state.profile)
    assert profile.keyboard.cells.size, "60 s of typing fills some cell scores"
    profile.keyboard.cells[0] = np.nan  # what damaged bytes could hold
    reloaded, reset = load_profile(profile.to_bytes())
    assert reset and reloaded.keyboard.presses == 0
    assert load_profile(state.profile)[1] is False


def test_synthetic_input_is_judged_and_said_but_never_learned() -> None:
    # A script or remote-control tool the OS flags must not become the owner's profile.
    import dataclasses

    from profiles.user import UserProfile
    from streams.judge import background, enrollment_policy, machine_input

    batches = [b for _, b in Workload(users=1, seed=5).batches(until_s=120)]
    injected = [
        dataclasses.replace(b, events=tuple(e._replace(flags=1) for e in b.events)) for b in batches
    ]
    for stream, synthetic in ((batches, False), (injected, True)):
        pipeline: Pipeline[None] = Pipeline(lambda user: None)
        judged = [j for b in stream for j in pipeline.add(b, None)[1]]
        verdicts = [j.verdict for j in judged if j.verdict is not None]
        assert verdicts
        noted = [
            v for v in verdicts if v.reasons and v.reasons[0].startswith("input marked synthetic")
        ]
        assert len(noted) == (len(verdicts) if synthetic else 0)
        assert [machine_input(v) for v in noted] == ["os_synthetic"] * len(noted)
        last = UserState.from_bytes(judged[-1].state_bytes)
        profile = UserProfile.from_bytes(last.profile, background(), enrollment_policy())
        learned = profile.keyboard.presses + profile.mouse.actions
        assert (learned == 0) is synthetic


def test_typing_with_a_machines_regularity_is_judged_and_said_but_never_learned() -> None:
    # A script holding every key for the owner's usual time would look like the owner
    # press by press; its metronome must not become the owner's profile.
    import numpy as np

    from collectors.wire import EventBatch, KeyEvent
    from profiles.user import UserProfile
    from streams.judge import background, enrollment_policy, machine_input

    rng = np.random.default_rng(3)
    n = 1200  # 3 minutes of typing, one batch a second
    steady_down = np.arange(n) * 150.0
    steady_hold = np.full(n, 85.0)
    human_down = np.cumsum(rng.lognormal(np.log(130), 0.45, n))
    human_hold = rng.lognormal(np.log(85), 0.25, n)
    classes = rng.integers(0, 6, n)

    def stream(down: np.ndarray, hold: np.ndarray) -> list[EventBatch]:
        events = sorted(
            [KeyEvent("kd", float(t), int(c)) for t, c in zip(down, classes, strict=True)]
            + [
                KeyEvent("ku", float(t + h), int(c))
                for t, h, c in zip(down, hold, classes, strict=True)
            ],
            key=lambda e: e.t_ms,
        )
        per_second: dict[int, list[KeyEvent]] = {}
        for e in events:
            per_second.setdefault(int(e.t_ms // 1000), []).append(e)
        return [
            EventBatch("dev", "u", "s", seq, 1.7e12, 1.7e12 - 1e6, tuple(per_second[k]))
            for seq, k in enumerate(sorted(per_second), start=1)
        ]

    for batches, mechanical in (
        (stream(human_down, human_hold), False),
        (stream(steady_down, steady_hold), True),
        (stream(human_down, steady_hold), True),  # human rhythm, a machine's key holds
    ):
        pipeline: Pipeline[None] = Pipeline(lambda user: None)
        judged = [j for b in batches for j in pipeline.add(b, None)[1]]
        verdicts = [j.verdict for j in judged if j.verdict is not None]
        assert len(verdicts) > 10
        noted = [v for v in verdicts if machine_input(v) == "too_regular"]
        assert len(noted) == (len(verdicts) if mechanical else 0)
        last = UserState.from_bytes(judged[-1].state_bytes)
        profile = UserProfile.from_bytes(last.profile, background(), enrollment_policy())
        assert (profile.keyboard.presses == 0) is mechanical


def test_synthetic_pointer_events_are_not_carried_into_the_next_window() -> None:
    # An unfinished injected action used to be carried and learned with the next window.
    from collectors.wire import FLAG_INJECTED, MouseEvent
    from profiles.user import UserProfile
    from streams.judge import background, enrollment_policy, mouse_events

    p = UserProfile(background(), enrollment_policy())
    injected = [
        MouseEvent("mm", 1000.0 + 7 * i, 3 * i, 2 * i, flags=FLAG_INJECTED) for i in range(60)
    ]
    p.assess(None, mouse_events(injected), session="s", learn=False)
    assert len(p.mouse.tail) == 0
    own = [MouseEvent("md", 1500.0, 180, 120, 1), MouseEvent("mu", 1580.0, 180, 120, 1)]
    p.assess(None, mouse_events(own), session="s")
    # A click with no movement of its own is no action; with the carried moves it was one.
    assert p.mouse.actions == 0


def test_an_injected_windows_scores_do_not_reach_the_owners_calibration() -> None:
    # Not learned, an injected window's cell scores still stayed in the rolling context,
    # whose mean the owner's next window put in the calibration ring: a script could
    # widen what counts as the owner.
    import numpy as np

    from profiles.keystrokes import KeystrokeEvents
    from profiles.user import UserProfile
    from streams.judge import background, enrollment_policy

    def typing(seed: int, t0: float, hold_ms: float, gap_ms: float) -> KeystrokeEvents:
        rng = np.random.default_rng(seed)
        down = t0 + np.cumsum(rng.lognormal(np.log(gap_ms), 0.45, 35))
        t = np.r_[down, down + rng.lognormal(np.log(hold_ms), 0.3, 35)]
        order = np.argsort(t, kind="stable")
        classes = rng.integers(0, 6, 35)
        is_down = np.r_[np.ones(35, bool), np.zeros(35, bool)]
        return KeystrokeEvents(t[order], is_down[order], np.r_[classes, classes][order])

    owner = UserProfile(background(), enrollment_policy())
    for i in range(12):
        owner.assess(typing(i, 6000.0 * i, 85.0, 140.0), None, "s")
    before = owner.to_bytes()

    def ring_after(script: bool) -> list[float]:
        p = UserProfile.from_bytes(before, background(), enrollment_policy())
        if script:
            p.assess(typing(99, 72_000.0, 300.0, 400.0), None, "s", learn=False)
        for i in range(2):
            p.assess(typing(50 + i, 78_000.0 + 6000.0 * i, 85.0, 140.0), None, "s")
        ring = p.keyboard.calibration
        return ring.scores[: ring.filled].tolist()

    assert ring_after(script=True) == ring_after(script=False)


def test_a_drag_whose_press_closed_the_previous_window_is_still_a_drag() -> None:
    # The held button was not carried into the next window: the drag's moves read as
    # plain moves, and the profile joined them into one click with the drag as its hold.
    from collectors.wire import MouseEvent
    from profiles.carryover import concat_mouse
    from profiles.mouse import ActionType, State, pointer_events, segment_actions
    from profiles.user import UserProfile
    from streams.judge import background, enrollment_policy, held_button, mouse_events

    approach = [MouseEvent("mm", 4800.0 + 10 * i, 150 + 10 * i, 0) for i in range(15)]
    press = [MouseEvent("md", 5000.0, 300, 0, 1)]
    drag = [MouseEvent("mm", 5010.0 + 10 * i, 300 + 5 * i, 0) for i in range(30)]
    release = [MouseEvent("mu", 5320.0, 450, 0, 1)]
    p = UserProfile(background(), enrollment_policy())
    p.assess(None, mouse_events(approach + press), session="s")
    held = held_button(p, "s")
    assert held == 1 and held_button(p, "another session") == 0
    second = mouse_events(drag + release, held)
    assert set(second.state[:-1].tolist()) == {int(State.DRAG)}
    joined = pointer_events(concat_mouse(p.mouse.tail, second))  # what the profile joins
    assert [ActionType(a.kind).name for a in segment_actions(joined)] == ["MM", "DD"]


def test_a_user_record_stays_within_16_kb_whatever_ids_the_wire_accepts() -> None:
    # The changelog record (cursors + profile) is what cadence_profile_bytes observes.
    # Its cursors keep each device id three times and a session id once, for up to
    # MAX_CURSORS_PER_USER devices: 128-character ids of four-byte characters, which the
    # wire took, made a forged user's record 20 KB (docs/evaluation.md, "Hard 16 KB bound").
    from collectors.wire import MAX_ID_LENGTH, EventBatch, KeyEvent, decode_batch, encode_batch
    from streams.windows import MAX_CURSORS_PER_USER

    batches = [b for _, b in Workload(users=1, seed=3).batches(until_s=60)]
    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    for b in batches:
        pipeline.add(b, None)
    user, last = batches[-1].user, batches[-1]
    t = max(e.t_ms for b in batches for e in b.events) + 1000.0
    wide = "\U0001f600"  # printable, four bytes in UTF-8
    records: list[bytes] = []
    for d in range(MAX_CURSORS_PER_USER + 1):
        # The longest ids the wire takes: four-byte characters if it takes them, else ASCII.
        for char in (wide, "x"):
            forged = EventBatch(
                device=char * (MAX_ID_LENGTH - 1) + f"{d:x}",
                user=user,
                session=char * MAX_ID_LENGTH,
                seq=2**63,
                sent_at_ms=last.clock_offset_ms + t + 10.0,
                clock_offset_ms=last.clock_offset_ms,
                events=(KeyEvent("kd", t, 1), KeyEvent("ku", t + 80.0, 1)),
            )
            try:
                forged = decode_batch(encode_batch(forged))
            except ValueError:
                continue  # refused by the wire: it cannot reach the state
            records += [j.state_bytes for j in pipeline.add(forged, None)[1]]
            t += 10.0
            break
    assert len(pipeline.states[user].cursors) == MAX_CURSORS_PER_USER
    records += [j.state_bytes for j in pipeline.flush(user)]
    assert max(len(r) for r in records) <= 16 * 1024
