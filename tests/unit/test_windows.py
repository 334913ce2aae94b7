"""Per-user windows: closing rules, sequence tracking, determinism across redelivery."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.wire import EventBatch, KeyEvent, MouseEvent
from streams.state import UserState
from streams.verdict import verdict_id
from streams.windows import MAX_CLOCK_STEP_BACK_MS, Cursor, Windower, advance

NOW = 1.7e12


def batch(
    seq: int, t0: float, *, session: str = "s", device: str = "d", n: int = 2, sent: float = NOW
) -> EventBatch:
    events = tuple(KeyEvent("kd" if i % 2 == 0 else "ku", t0 + 40.0 * i, 1) for i in range(n))
    return EventBatch(
        device=device,
        user="u",
        session=session,
        seq=seq,
        sent_at_ms=sent,
        clock_offset_ms=NOW - 1e7,
        events=events,
    )


def run(windower: Windower[int], cursors: dict[str, Cursor], batches: list[EventBatch]) -> list:
    closed = []
    for i, b in enumerate(batches):
        for w in windower.add(b, cursors, token=i).closed:
            advance(cursors, w)
            windower.judged(w)
            closed.append(w)
    return closed


def test_window_closes_when_event_time_spans_the_window() -> None:
    w: Windower[int] = Windower(window_ms=5000)
    closed = run(w, {}, [batch(i, i * 1000.0) for i in range(12)])
    assert [(c.first_seq, c.last_seq, c.reason) for c in closed] == [
        (0, 5, "span"),
        (6, 11, "span"),
    ]
    assert closed[0].tokens == [0, 1, 2, 3, 4, 5]


def test_duplicates_are_dropped_and_gaps_counted() -> None:
    w: Windower[int] = Windower(window_ms=5000)
    cursors: dict[str, Cursor] = {}
    assert w.add(batch(0, 0.0), cursors, 0).status == "accepted"
    assert w.add(batch(0, 0.0), cursors, 1).status == "duplicate"
    result = w.add(batch(4, 100.0), cursors, 2)
    assert (result.status, result.gap) == ("accepted", 3)


def test_redelivery_after_a_closed_window_is_recognised_from_the_persisted_cursor() -> None:
    cursors: dict[str, Cursor] = {}
    first: Windower[int] = Windower(window_ms=5000)
    run(first, cursors, [batch(i, i * 1000.0) for i in range(7)])
    assert (cursors["d"].session, cursors["d"].last_seq) == ("s", 5)
    # A new worker (after a crash) gets batches 0..6 again: 0..5 were judged.
    restarted: Windower[int] = Windower(window_ms=5000)
    statuses = [restarted.add(batch(i, i * 1000.0), cursors, i).status for i in range(7)]
    assert statuses == ["duplicate"] * 6 + ["accepted"]


def test_a_number_taken_by_other_events_is_a_conflict_not_a_duplicate() -> None:
    w: Windower[int] = Windower(window_ms=5000)
    cursors: dict[str, Cursor] = {}
    for seq in range(3):
        assert w.add(batch(seq, seq * 1000.0), cursors, seq).status == "accepted"
    assert w.add(batch(1, 1000.0), cursors, 9).status == "duplicate"
    assert w.add(batch(1, 1200.0), cursors, 9).status == "conflict"  # other times
    assert w.add(batch(1, 1000.0, n=3), cursors, 9).status == "conflict"  # one more event
    assert w.add(batch(2, 2000.0, n=0), cursors, 9).status == "conflict"  # a heartbeat
    # Neither joined the window: it holds the three batches, once each.
    assert w.open["u"].tokens == [0, 1, 2] and len(w.open["u"].key_events) == 6


def test_a_conflict_with_a_closed_window_is_recognised_after_a_restart() -> None:
    cursors: dict[str, Cursor] = {}
    first: Windower[int] = Windower(window_ms=5000)
    run(first, cursors, [batch(i, i * 1000.0 + 0.1) for i in range(7)])
    # The cursor goes through the changelog's bytes, as after a crash.
    cursors = UserState.from_bytes(UserState(cursors=cursors).to_bytes()).cursors
    restarted: Windower[int] = Windower(window_ms=5000)
    assert restarted.add(batch(5, 5000.1), cursors, 0).status == "duplicate"
    assert restarted.add(batch(5, 5300.0), cursors, 1).status == "conflict"
    # Older numbers are no longer known in detail: closed no later than the session's
    # latest batch, they are taken for duplicates.
    assert restarted.add(batch(3, 9999.0), cursors, 2).status == "duplicate"


def test_an_older_number_closed_after_the_sessions_latest_batch_is_a_conflict() -> None:
    # A desk restored from a memory snapshot numbers its batches from where the snapshot
    # was: numbers long past, closed now. Dropped as duplicates, they were never judged.
    cursors: dict[str, Cursor] = {}
    sent = [NOW + 1000.25 * i for i in range(13)]
    run(Windower(window_ms=5000), cursors, [batch(i, i * 1000.0, sent=sent[i]) for i in range(13)])
    assert cursors["d"].last_seq == 11 and cursors["d"].last_sent_ms == math.floor(sent[11])
    cursors = UserState.from_bytes(UserState(cursors=cursors).to_bytes()).cursors
    w: Windower[int] = Windower(window_ms=5000)
    hour = 3_600_000.0
    assert w.add(batch(2, 77.0, sent=sent[11] + hour), cursors, 0).status == "conflict"
    # A redelivery is the record as it was, closed when it was: a duplicate.
    assert w.add(batch(2, 2000.0, sent=sent[2]), cursors, 1).status == "duplicate"
    # A wall clock stepped back a little while the agent ran is not a conflict.
    late = math.floor(sent[11]) + MAX_CLOCK_STEP_BACK_MS
    assert w.add(batch(2, 77.0, sent=late), cursors, 2).status == "duplicate"
    # A state written before these times were kept takes older numbers for duplicates...
    old = {"d": dataclasses.replace(cursors["d"], last_sent_ms=None)}
    fresh: Windower[int] = Windower(window_ms=5000)
    assert fresh.add(batch(2, 77.0, sent=NOW + hour), old, 3).status == "duplicate"
    # ... until the open window holds a batch of the session (12, not yet in the cursor).
    assert fresh.add(batch(12, 12_000.0, sent=sent[12]), old, 4).status == "accepted"
    assert fresh.add(batch(2, 77.0, sent=sent[12] + hour), old, 5).status == "conflict"


def test_cursors_written_before_shapes_were_kept_still_read_and_drop_duplicates() -> None:
    old = b'{"c":[["d","s",5]],"w":2}'
    state = UserState.from_bytes(b"CUS1" + len(old).to_bytes(4, "little") + old + b"xyz")
    assert state.cursors == {"d": Cursor("s", 5)} and state.profile == b"xyz"
    assert Windower[int]().add(batch(5, 123.0), state.cursors, 0).status == "duplicate"


def test_cursors_that_stored_the_shape_itself_are_read_as_its_digest() -> None:
    row = b'{"c":[["d","s",5,[2,5000.1,5040.1]]],"w":2}'
    state = UserState.from_bytes(b"CUS1" + len(row).to_bytes(4, "little") + row)
    w: Windower[int] = Windower()
    assert w.add(batch(5, 5000.1), state.cursors, 0).status == "duplicate"
    assert w.add(batch(5, 5000.2), state.cursors, 1).status == "conflict"


def test_a_new_session_with_a_lower_sequence_is_a_counter_reset_not_a_duplicate() -> None:
    cursors = {"d": Cursor("old", 500)}
    result = Windower[int]().add(batch(0, 0.0, session="new"), cursors, 0)
    assert result.status == "accepted" and result.reset


def test_an_earlier_sessions_batch_redelivered_is_a_duplicate_not_a_reset() -> None:
    # The counter runs on across sessions (each unlock is one): after a crash, batches
    # of the session before the cursor's come back with lower numbers. Closed before
    # the device's latest batch, they are redeliveries; a restarted counter's are not.
    cursors = {"d": Cursor("s2", 12, None, NOW + 12_000.0)}
    w: Windower[int] = Windower(window_ms=5000)
    redelivered = w.add(batch(3, 0.0, session="s1", sent=NOW + 3_000.4), cursors, 0)
    assert (redelivered.status, redelivered.reset) == ("duplicate", False)
    assert w.add(batch(12, 0.0, session="s1", sent=NOW + 12_000.9), cursors, 1).status == (
        "duplicate"  # closed within the cursor's (whole) millisecond
    )
    reinstalled = w.add(batch(0, 0.0, session="s3", sent=NOW + 60_000.0), cursors, 2)
    assert (reinstalled.status, reinstalled.reset) == ("accepted", True)


def test_a_window_closed_but_not_judged_yet_is_what_the_next_batch_follows() -> None:
    # The worker judges closed windows in groups, later; a resend arriving in between
    # is checked against the closed window, not the older persisted cursor.
    w: Windower[int] = Windower(window_ms=5000)
    cursors: dict[str, Cursor] = {"d": Cursor("s", 4, None, NOW)}
    assert w.add(batch(5, 0.0), cursors, 5).closed == []
    (closed,) = w.add(batch(6, 6000.0), cursors, 6).closed
    assert [w.add(batch(n, 0.0 if n == 5 else 6000.0), cursors, n).status for n in (5, 6)] == [
        "duplicate",
        "duplicate",
    ]
    assert w.add(batch(6, 9.0), cursors, 6).status == "conflict"  # other events, same number
    following = w.add(batch(7, 7000.0), cursors, 7)
    assert (following.status, following.gap) == ("accepted", 0)  # not a gap of 2
    advance(cursors, closed)
    w.judged(closed)
    assert w.closing == {} and cursors["d"].last_seq == 6
    assert w.add(batch(8, 7100.0), cursors, 8).gap == 0


def test_a_window_of_empty_batches_closes_at_its_batch_bound() -> None:
    # Empty batches add no span and no events; each holds its record unacked.
    w: Windower[int] = Windower(window_ms=5000, max_batches=100)
    closed = run(w, {}, [batch(i, 0.0, n=0) for i in range(250)])
    assert [(c.first_seq, c.last_seq, c.reason, len(c.tokens)) for c in closed] == [
        (0, 99, "size", 100),
        (100, 199, "size", 100),
    ]


def test_session_change_and_idle_gap_close_the_open_window() -> None:
    w: Windower[int] = Windower(window_ms=5000, idle_gap_ms=60_000)
    closed = run(
        w,
        {},
        [
            batch(0, 0.0),
            batch(1, 100.0, session="t"),
            batch(2, 200.0, session="t"),
            batch(3, 90_000.0, session="t"),
        ],
    )
    assert [c.reason for c in closed] == ["session_change", "idle_gap"]


def test_mouse_and_key_events_are_split_and_sorted() -> None:
    b = EventBatch(
        device="d",
        user="u",
        session="s",
        seq=0,
        sent_at_ms=NOW,
        clock_offset_ms=NOW - 1e7,
        events=(MouseEvent("mm", 30.0, 1, 1), KeyEvent("ku", 20.0, 3), KeyEvent("kd", 10.0, 3)),
    )
    w: Windower[int] = Windower()
    w.add(b, {}, 0)
    window = w.flush("u")
    assert window is not None
    assert [e.t_ms for e in window.key_events] == [10.0, 20.0]
    assert len(window.mouse_events) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=50.0, max_value=3000.0), min_size=5, max_size=40), st.data())
def test_redelivered_batches_close_into_the_same_windows(
    gaps: list[float], data: st.DataObject
) -> None:
    times = [sum(gaps[:i]) for i in range(len(gaps))]
    batches = [batch(i, t) for i, t in enumerate(times)]
    reference = run(Windower(window_ms=5000), {}, batches)
    # Crash after a random number of closed windows: the cursors survive (they are in
    # the table), the open window does not; everything after the last commit comes back.
    crash_after = data.draw(st.integers(min_value=0, max_value=len(reference)))
    cursors: dict[str, Cursor] = {}
    for w in reference[:crash_after]:
        advance(cursors, w)
    resume_from = reference[crash_after - 1].last_seq + 1 if crash_after else 0
    redelivered_from = data.draw(st.integers(min_value=0, max_value=resume_from))
    replayed = run(Windower(window_ms=5000), cursors, batches[redelivered_from:])
    ids = [verdict_id("u", w.device, w.session, w.first_seq, w.last_seq) for w in reference]
    again = [verdict_id("u", w.device, w.session, w.first_seq, w.last_seq) for w in replayed]
    assert again == ids[crash_after:]


def test_user_state_round_trip() -> None:
    state = UserState(
        cursors={"d1": Cursor("s", 3), "d2": Cursor("t", 9, 4_000_000_000, NOW + 0.0)},
        windows=4,
        profile=b"xyz",
    )
    assert UserState.from_bytes(state.to_bytes()) == state


def test_heartbeats_alone_never_close_a_window_by_idle_gap() -> None:
    # A window of empty batches has no event time (start +inf, end -inf); the next data
    # batch must join it, not close it as "idle" against minus infinity.
    w: Windower[int] = Windower(window_ms=5000)
    cursors: dict[str, Cursor] = {}
    assert w.add(batch(0, 0.0, n=0), cursors, 0).status == "empty"
    result = w.add(batch(1, 1_000_000.0), cursors, 1)
    assert result.closed == []
    (window,) = w.open.values()
    assert (window.first_seq, window.events, window.start_ms) == (0, 2, 1_000_000.0)


def test_a_window_whose_events_never_span_it_closes_at_its_size_bound() -> None:
    # A flood inside one instant of event time must not be held (unacked) for ever.
    w: Windower[int] = Windower(window_ms=5000, max_events=1000)
    instant = (KeyEvent("kd", 0.0, 1), KeyEvent("ku", 0.0, 1)) * 150
    flood = [dataclasses.replace(batch(i, 0.0), events=instant) for i in range(10)]
    closed = run(w, {}, flood)
    assert [(c.first_seq, c.last_seq, c.reason, c.events) for c in closed] == [
        (0, 3, "size", 1200),
        (4, 7, "size", 1200),
    ]


def test_wall_times_take_each_batchs_own_clock_offset() -> None:
    # A suspend stops the monotonic clock the events are timed on: the agent's offset
    # jumps by the time asleep. With the first batch's offset, the verdict said 8 h early.
    w: Windower[int] = Windower(window_ms=5000)
    asleep_ms = 8 * 3600 * 1000.0
    w.add(batch(0, 0.0), {}, 0)
    later = dataclasses.replace(batch(1, 1000.0), clock_offset_ms=NOW - 1e7 + asleep_ms)
    w.add(later, {}, 1)
    (window,) = w.open.values()
    assert window.wall_start_ms == NOW - 1e7
    assert window.wall_end_ms == NOW - 1e7 + asleep_ms + 1040.0


def test_open_windows_of_many_users_are_bounded_together() -> None:
    # Each window is bounded, not how many users send: made-up user keys, each filling
    # a window, grew the worker until it was killed (~2.8 MB per full window), and its
    # replacement, reading the same records, with it. The largest windows close first.
    w: Windower[int] = Windower(window_ms=5000, max_events=1000, max_open_events=2500)
    person = dataclasses.replace(batch(0, 0.0), user="person")
    w.add(person, {}, 0)
    instant = (KeyEvent("kd", 0.0, 1), KeyEvent("ku", 0.0, 1)) * 400
    closed = []
    for i in range(5):
        fake = dataclasses.replace(batch(0, 0.0), user=f"made-up-{i}", events=instant)
        closed += w.add(fake, {}, i + 1).closed
    assert [c.reason for c in closed] == ["memory"] * 2
    assert {c.user for c in closed} <= {f"made-up-{i}" for i in range(5)}
    assert w.open_events == sum(x.events for x in w.open.values()) <= 2500
    assert "person" in w.open  # the small window of a person stays open
    w.drop({"made-up-4"})
    w.flush("made-up-3")
    assert w.open_events == sum(x.events for x in w.open.values())
