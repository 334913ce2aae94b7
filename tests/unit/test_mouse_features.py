"""Segmentation into MM / PC / DD actions and the per-action features."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.datasets.balabit import parse_session
from profiles.mouse import (
    FEATURE_NAMES,
    N_FEATURES,
    ActionType,
    Button,
    MouseEvents,
    State,
    action_features,
    extract,
    extract_many,
    pointer_events,
    segment_actions,
)

M, P, R, D = State.MOVE, State.PRESSED, State.RELEASED, State.DRAG
N, L = Button.NONE, Button.LEFT


def events(rows: list[tuple[float, int, int, int, int]]) -> MouseEvents:
    a = np.array(rows, dtype=np.float64)
    return MouseEvents(
        a[:, 0],
        a[:, 1].astype(np.int32),
        a[:, 2].astype(np.int32),
        a[:, 3].astype(np.int8),
        a[:, 4].astype(np.int8),
    )


def move(t0: float, x0: int, x1: int, n: int = 6) -> list[tuple[float, int, int, int, int]]:
    xs = np.linspace(x0, x1, n).astype(int)
    return [(t0 + 16.0 * i, int(x), 100, N, M) for i, x in enumerate(xs)]


def feature(f: np.ndarray, name: str) -> np.ndarray:
    return f[:, FEATURE_NAMES.index(name)]


def test_move_click_drag_and_pause_make_four_actions() -> None:
    rows = move(0, 0, 100)  # MM, ended by the pause
    rows += move(20_000, 100, 300) + [(20_100, 300, 100, L, P), (20_180, 300, 100, L, R)]  # PC
    rows += [(21_000, 300, 100, L, P)] + [
        (21_016 + 16 * i, 300 + 10 * i, 100 + 5 * i, N, D) for i in range(1, 6)
    ]
    rows += [(21_200, 350, 125, L, R)]  # DD
    rows += move(21_500, 350, 500)  # trailing MM
    ev = events(rows)
    actions = segment_actions(ev)
    assert [ActionType(a.kind).name for a in actions] == ["MM", "PC", "DD", "MM"]
    assert actions[1].pause_before_ms > 10_000
    f = action_features(ev, actions)
    assert f.shape == (4, N_FEATURES)
    assert np.isfinite(f).all()
    np.testing.assert_allclose(np.expm1(feature(f, "log_click_hold_ms")), [0, 80, 200, 0])
    assert feature(f, "is_dd").tolist() == [0, 0, 1, 0]
    np.testing.assert_allclose(feature(f, "straightness"), 1.0)


def test_a_click_reported_with_a_drag_row_at_its_release_is_a_click() -> None:
    # RDP (Balabit) writes a plain click's release position as a drag row at the
    # release's own time: half of the "drags" were clicks, their approach cut off.
    click = [(200, 100, 100, L, P), (290, 100, 100, L, D), (290, 100, 100, L, R)]
    actions = segment_actions(events(move(0, 0, 100) + click))
    assert [ActionType(a.kind).name for a in actions] == ["PC"]
    drag = [(200, 100, 100, L, P), (250, 120, 100, L, D), (290, 140, 100, L, D)]
    actions = segment_actions(events(move(0, 0, 100) + [*drag, (290, 140, 100, L, R)]))
    assert [ActionType(a.kind).name for a in actions] == ["MM", "DD"]


def test_a_long_click_hold_does_not_split_the_click() -> None:
    rows = move(0, 0, 100) + [(200, 100, 100, L, P), (15_000, 100, 100, L, R)]
    actions = segment_actions(events(rows))
    assert [ActionType(a.kind).name for a in actions] == ["PC"]


def test_duplicate_timestamps_do_not_make_infinite_speeds() -> None:
    rows = [
        (0.0, 0, 0, N, M),
        (16.0, 5, 0, N, M),
        (16.0, 9, 0, N, M),
        (32.0, 20, 0, N, M),
        (48.0, 30, 0, N, M),
        (64.0, 40, 0, N, M),
    ]
    f = extract(events(rows))
    assert f.shape == (1, N_FEATURES)
    assert np.isfinite(f).all()


def test_detour_lowers_straightness_and_raises_deviation() -> None:
    straight = [(16.0 * i, 10 * i, 0, N, M) for i in range(11)]
    detour = [(16.0 * i, 10 * i, int(40 * np.sin(np.pi * i / 10)), N, M) for i in range(11)]
    fs, fd = extract(events(straight)), extract(events(detour))
    assert feature(fd, "straightness")[0] < feature(fs, "straightness")[0]
    assert feature(fd, "log_max_deviation_px")[0] > feature(fs, "log_max_deviation_px")[0]


def test_scroll_rows_are_not_pointer_events() -> None:
    rows = move(0, 0, 50) + [(200.0, 0, 0, Button.SCROLL, State.DOWN)]
    assert len(pointer_events(events(rows))) == 6


def test_reader_cleans_sentinels_duplicates_and_order() -> None:
    text = (
        "record timestamp,client timestamp,button,state,x,y\n"
        "0.0,0.0,NoButton,Move,10,10\n"
        "0.2,0.2,NoButton,Move,30,10\n"
        "0.1,0.1,NoButton,Move,20,10\n"
        "0.1,0.1,NoButton,Move,20,10\n"
        "0.3,0.3,NoButton,Drag,65535,65535\n"
    )
    s = parse_session(io.StringIO(text))
    assert s.t_ms.tolist() == [0.0, 100.0, 200.0, 300.0]
    assert s.x.max() == 30


Soup = list[tuple[float, int, int, tuple[int, int]]]


def soups(max_t: float, size: int) -> st.SearchStrategy[Soup]:
    """Pointer events in any order of states: moves, presses, releases, drags."""
    row = st.tuples(
        st.floats(0, max_t),
        st.integers(0, 4000),
        st.integers(0, 3000),
        st.sampled_from([(N, M), (L, P), (L, R), (N, D), (L, D)]),
    )
    return st.lists(row, min_size=0, max_size=size)


def _soup(raw: Soup) -> MouseEvents:
    raw.sort(key=lambda r: r[0])
    if not raw:
        return events([(0, 0, 0, 0, 0)])[:0]
    return events([(t, x, y, b, s) for t, x, y, (b, s) in raw])


@settings(max_examples=50, deadline=None)
@given(soups(3000, 80))
def test_any_event_soup_gives_finite_features(raw: Soup) -> None:
    ev = _soup(raw)
    actions = segment_actions(ev)
    covered = sum(a.stop - a.start for a in actions)
    assert covered == len(ev)  # actions tile the stream
    f = action_features(ev, actions)
    assert f.shape[1] == N_FEATURES
    assert np.isfinite(f).all()


@settings(max_examples=60, deadline=None)
@given(soups(30_000, 120), st.lists(st.integers(0, 120), max_size=6))
def test_windows_extracted_together_give_each_window_alone_bit_for_bit(
    raw: Soup, cuts: list[int]
) -> None:
    # Cut one stream anywhere (mid-click, mid-drag, mid-pause): no action, click or
    # pause may reach across a window boundary when the windows are concatenated.
    ev = _soup(raw)
    bounds = [0, *sorted(min(c, len(ev)) for c in cuts), len(ev)]
    windows = [ev[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    together = extract_many(windows)
    assert len(together) == len(windows)
    for w, f in zip(windows, together, strict=True):
        alone = extract(w)
        assert f.shape == alone.shape
        assert np.array_equal(f, alone)


def test_action_features_need_four_points() -> None:
    ev = events(move(0, 0, 100))
    with pytest.raises(ValueError, match="at least 4"):
        action_features(ev, segment_actions(ev), min_points=3)


@pytest.mark.parametrize(("wire_button", "clicked"), [(1, True), (2, True), (3, False), (0, False)])
def test_only_left_and_right_wire_clicks_end_a_point_and_click(
    wire_button: int, clicked: bool
) -> None:
    # Wire button 0 is "other" (back, forward): it used to reach the profile as a click.
    from collectors.wire import MouseEvent
    from profiles.mouse import ActionType, action_types, extract
    from streams.judge import mouse_events

    moves = [MouseEvent("mm", 20.0 * i, 10 * i, 0) for i in range(8)]
    click = [
        MouseEvent("md", 170.0, 70, 0, wire_button),
        MouseEvent("mu", 260.0, 70, 0, wire_button),
    ]
    types = [ActionType(t) for t in action_types(extract(mouse_events(moves + click)))]
    assert (ActionType.PC in types) is clicked
