"""Mouse dynamics: events -> actions -> per-action feature vectors.

The pointer stream is cut into *actions*, the unit of the mouse-dynamics
literature (Ahmed & Traore 2007; Antal & Egyed-Zsigmond 2019):

- ``MM`` mouse move: a stretch of movement that ends without a click (a pause
  longer than ``pause_ms`` closes it);
- ``PC`` point and click: the movement leading to a click, up to the release;
- ``DD`` drag and drop: from a press, through drag events, to the release.

Each action becomes one fixed-length vector (:data:`FEATURE_NAMES`): its
geometry (distance, straightness, direction, deviation from the chord), its
kinematics (speed, acceleration, jerk, angular velocity, curvature) and its
timing (duration, pause before it, click hold). Everything is vectorised over
all the actions of a window at once; only the boundaries are found per action.

Heavy-tailed magnitudes are log-compressed so that the vectors suit Gaussian
and linear detectors without a per-user transform.

>>> t = np.arange(0.0, 200.0, 20.0)
>>> ev = MouseEvents(
...     t_ms=np.r_[t, 200.0, 260.0],
...     x=np.r_[np.arange(10) * 10, 90, 90].astype(np.int32),
...     y=np.zeros(12, np.int32),
...     button=np.r_[np.zeros(10), Button.LEFT, Button.LEFT].astype(np.int8),
...     state=np.r_[np.zeros(10), State.PRESSED, State.RELEASED].astype(np.int8),
... )
>>> actions = segment_actions(ev)
>>> [(ActionType(a.kind).name, a.start, a.stop) for a in actions]
[('PC', 0, 12)]
>>> f = action_features(ev, actions)
>>> f.shape == (1, N_FEATURES)
True
>>> round(float(f[0, FEATURE_NAMES.index("straightness")]), 3)
1.0
>>> round(float(np.expm1(f[0, FEATURE_NAMES.index("log_click_hold_ms")])), 1)
60.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Button(IntEnum):
    """Button codes of :attr:`MouseEvents.button` (same order as the Balabit names)."""

    NONE = 0
    LEFT = 1
    RIGHT = 2
    MIDDLE = 3
    SCROLL = 4
    X = 5


class State(IntEnum):
    """State codes of :attr:`MouseEvents.state`."""

    MOVE = 0
    PRESSED = 1
    RELEASED = 2
    DRAG = 3
    DOWN = 4  # scroll down
    UP = 5  # scroll up


class ActionType(IntEnum):
    MM = 0
    PC = 1
    DD = 2


@dataclass(frozen=True, slots=True)
class MouseEvents:
    """A time-ordered batch of pointer events, as parallel numpy arrays."""

    t_ms: np.ndarray  # float64, milliseconds (any origin)
    x: np.ndarray  # int32, screen pixels
    y: np.ndarray  # int32
    button: np.ndarray  # int8, Button
    state: np.ndarray  # int8, State

    def __len__(self) -> int:
        return int(self.t_ms.size)

    def __getitem__(self, index: slice | np.ndarray) -> MouseEvents:
        return MouseEvents(
            self.t_ms[index], self.x[index], self.y[index], self.button[index], self.state[index]
        )


@dataclass(frozen=True, slots=True)
class MouseAction:
    """One action: the half-open event range ``[start, stop)`` of its :class:`MouseEvents`."""

    kind: int  # ActionType
    start: int
    stop: int
    press: int  # index of the press for PC/DD, -1 for MM
    pause_before_ms: float  # idle time since the previous pointer event


#: Idle time that ends an action, the convention of the Balabit literature (a
#: 10 s pause means the user stopped working with the pointer).
PAUSE_MS = 10_000.0
#: Actions with fewer trajectory points have no defined jerk; they are dropped.
MIN_POINTS = 4

FEATURE_NAMES: tuple[str, ...] = (
    "is_mm",
    "is_pc",
    "is_dd",
    "log_duration_ms",
    "log_pause_before_ms",
    "log_click_hold_ms",
    "log_n_points",
    "log_path_px",
    "log_chord_px",
    "straightness",
    "direction_cos",
    "direction_sin",
    "log_max_deviation_px",
    "log_speed_mean",
    "log_speed_std",
    "log_speed_max",
    "vx_mean",
    "vy_mean",
    "log_accel_abs_mean",
    "log_accel_std",
    "log_accel_max",
    "log_decel_max",
    "log_jerk_abs_mean",
    "log_angular_speed_mean",
    "log_curvature_mean",
    "turn_sum",
    "time_to_peak_speed",
    "log_dt_mean",
    "still_fraction",
)
N_FEATURES = len(FEATURE_NAMES)
#: The one-hot action type columns (MM, PC, DD, in :class:`ActionType` order).
TYPE_COLUMNS: tuple[int, ...] = (0, 1, 2)


def action_types(X: np.ndarray) -> np.ndarray:
    """:class:`ActionType` of each feature row."""
    return np.argmax(np.atleast_2d(X)[:, list(TYPE_COLUMNS)], axis=1)


_MM, _PC, _DD = int(ActionType.MM), int(ActionType.PC), int(ActionType.DD)
_MOVE, _PRESSED, _RELEASED, _DRAG = (
    int(State.MOVE),
    int(State.PRESSED),
    int(State.RELEASED),
    int(State.DRAG),
)
_RIGHT = int(Button.RIGHT)
#: Feature rows that are heavy-tailed magnitudes, log-compressed with :func:`_log`.
_LOG_ROWS = np.array([3, 4, 5, 7, 8, 12, 13, 14, 15, 18, 19, 20, 21, 22, 23, 24, 27])


def pointer_events(events: MouseEvents) -> MouseEvents:
    """Events that move the pointer or click it: scroll and exotic buttons removed."""
    # Pointer states are the codes MOVE..DRAG (0..3); comparisons cost less than isin,
    # and with plain ints rather than the IntEnum members (numpy converts those on
    # every call). Most windows have no scroll: then nothing is copied.
    state = events.state
    keep = (state >= _MOVE) & (state <= _DRAG) & (events.button <= _RIGHT)
    if keep.all():
        return events
    return events[keep]


@dataclass(frozen=True, slots=True)
class _Actions:
    """Actions as parallel arrays (see :class:`MouseAction`), the form the features use."""

    kind: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    press: np.ndarray
    pause_before_ms: np.ndarray


def segment_actions(events: MouseEvents, pause_ms: float = PAUSE_MS) -> list[MouseAction]:
    """Cut time-ordered pointer events (see :func:`pointer_events`) into actions."""
    a = _segment(events, pause_ms)
    return [
        MouseAction(ActionType(k), s, e, p, q)
        for k, s, e, p, q in zip(
            a.kind.tolist(),
            a.start.tolist(),
            a.stop.tolist(),
            a.press.tolist(),
            a.pause_before_ms.tolist(),
            strict=True,
        )
    ]


def _segment(ev: MouseEvents, pause_ms: float, breaks: np.ndarray | None = None) -> _Actions:
    """Actions of ``ev``; ``breaks`` (sorted indices) start separate windows: no action,
    click or pause spans one, so each window is cut exactly as on its own."""
    n = len(ev)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return _Actions(empty, empty, empty, empty, np.zeros(0))
    state = ev.state
    is_press = state == _PRESSED
    is_release = state == _RELEASED
    idx = np.arange(n)

    # "held": a press came after the last release -> pauses there are click holds.
    last_pr = np.where(is_press | is_release, idx, -1)
    np.maximum.accumulate(last_pr, out=last_pr)
    # A press or release before the window's first event belongs to another window.
    window_start: np.ndarray | int = 0
    if breaks is not None and breaks.size:
        window_start = np.zeros(n, np.int64)
        window_start[breaks] = breaks
        np.maximum.accumulate(window_start, out=window_start)
        window_start = window_start[1:]
    held_before = np.zeros(n, dtype=bool)
    held_before[1:] = (last_pr[:-1] >= window_start) & is_press[np.maximum(last_pr[:-1], 0)]

    gap = np.empty(n)
    gap[0] = np.inf
    np.subtract(ev.t_ms[1:], ev.t_ms[:-1], out=gap[1:])
    if breaks is not None:
        gap[breaks] = np.inf
    start = (gap > pause_ms) & ~held_before
    start[0] = True
    start[1:] |= is_release[:-1]

    # A press followed by drag events before its release starts a DD action. A drag
    # event at the time of the event after it is not motion: RDP (Balabit) reports a
    # plain click's release position as a drag row at the release's own time, which
    # made half of the DD actions clicks (their approach cut off as a move, their
    # hold lost with the 3-point "drag"; a review, docs/evaluation.md).
    # (Methods and slices instead of np.flatnonzero, np.cumsum, np.diff...: the same
    # operations without numpy's Python-level wrappers, whose overhead is most of
    # the cost for the few hundred events of a window.)
    press_idx = is_press.nonzero()[0]
    release_idx = is_release.nonzero()[0]
    dd_press = np.zeros(n, dtype=bool)
    if press_idx.size and release_idx.size:
        moved = state == _DRAG
        moved[:-1] &= ev.t_ms[:-1] != ev.t_ms[1:]
        drag_cum = moved.cumsum()
        nxt = release_idx.searchsorted(press_idx)
        ok = nxt < release_idx.size
        p, r = press_idx[ok], release_idx[nxt[ok]]
        if breaks is not None and breaks.size:
            window_end = np.append(breaks, n)[breaks.searchsorted(p, side="right")]
            p, r = p[r < window_end], r[r < window_end]
        dragged = drag_cum[r] - drag_cum[p] > 0
        dd_press[p[dragged]] = True
    start |= dd_press

    first = start.nonzero()[0]
    stop = np.empty_like(first)
    stop[:-1] = first[1:]
    stop[-1] = n
    release_cum = np.zeros(n + 1, np.int64)
    is_release.cumsum(out=release_cum[1:])
    press_pos = np.where(is_press, idx, -1)
    np.maximum.accumulate(press_pos, out=press_pos)

    # An action with a release whose press is inside it is a click (PC) or a drag (DD).
    last_press = press_pos[stop - 1]
    clicked = (release_cum[stop] - release_cum[first] > 0) & (last_press >= first)
    kind = np.where(clicked, np.where(dd_press[first], _DD, _PC), _MM)
    # No pause before a window's first action (gap = inf there), as for the very first.
    pause = gap[first]
    pause[np.isinf(pause)] = 0.0
    return _Actions(kind, first, stop, np.where(clicked, last_press, -1), pause)


def _log(v: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(v, 0.0))


def action_features(
    events: MouseEvents, actions: list[MouseAction], min_points: int = MIN_POINTS
) -> np.ndarray:
    """One row of :data:`FEATURE_NAMES` per action with at least ``min_points`` points.

    Trajectory points are the action's events up to the press for PC (the click
    itself is timed separately as ``click_hold_ms``) and all events for MM/DD.
    Events sharing a timestamp collapse to the last one: RDP batches pointer
    updates, and a zero time step would make speeds infinite.
    """
    if min_points < MIN_POINTS:
        raise ValueError(f"min_points must be at least {MIN_POINTS}: jerk is a third difference")
    if not actions:
        return np.empty((0, N_FEATURES))
    arrays = _Actions(
        np.array([a.kind for a in actions], dtype=np.int64),
        np.array([a.start for a in actions], dtype=np.int64),
        np.array([a.stop for a in actions], dtype=np.int64),
        np.array([a.press for a in actions], dtype=np.int64),
        np.array([a.pause_before_ms for a in actions], dtype=np.float64),
    )
    return _features(events, arrays, min_points)[0]


def _features(
    events: MouseEvents, actions: _Actions, min_points: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """(one row per action with >= ``min_points`` points, which actions those are; None:
    all of them)."""
    kinds, starts, stops = actions.kind, actions.start, actions.stop
    presses, pauses = actions.press, actions.pause_before_ms
    if kinds.size == 0:
        return np.empty((0, N_FEATURES)), None
    ends = np.where(kinds == _PC, presses + 1, stops)  # PC: up to the press

    t_all = events.t_ms.astype(np.float64, copy=False)
    clicked = kinds != _MM
    hold = np.where(clicked, t_all[stops - 1] - t_all[np.where(clicked, presses, 0)], 0.0)

    # Concatenate the trajectory points of all actions, with their action id.
    lengths = ends - starts
    seg = np.arange(kinds.size).repeat(lengths)
    offsets = lengths.cumsum() - lengths
    idx = np.arange(seg.size) + (starts - offsets).repeat(lengths)
    t = t_all[idx]
    x = events.x[idx].astype(np.float64)
    y = events.y[idx].astype(np.float64)

    # Collapse equal timestamps inside an action (keep the last position).
    last = np.empty(seg.size, dtype=bool)
    last[-1] = True
    last[:-1] = (seg[1:] != seg[:-1]) | (t[1:] != t[:-1])
    seg, t, x, y = seg[last], t[last], x[last], y[last]

    n_points = np.bincount(seg, minlength=kinds.size)
    ok = n_points >= min_points
    if not ok.any():
        return np.empty((0, N_FEATURES)), ok
    kept = None
    if not ok.all():
        kept = ok
        keep = ok[seg]
        # Renumber surviving actions 0..k-1 so that reductions stay dense.
        new_id = ok.cumsum() - 1
        seg, t, x, y = new_id[seg[keep]], t[keep], x[keep], y[keep]
        kinds, hold, pauses, n_points = kinds[ok], hold[ok], pauses[ok], n_points[ok]
    k = kinds.size

    change = (seg[1:] != seg[:-1]).nonzero()[0] + 1
    first = np.empty(k, np.int64)
    first[0] = 0
    first[1:] = change
    lastp = np.empty(k, np.int64)
    lastp[:-1] = change - 1
    lastp[-1] = seg.size - 1
    # Every action has >= MIN_POINTS (4) points, hence >= 3 first, 2 second and 1 third
    # differences: no action is empty at any level, its samples there start at
    # first - i, first - 2i, first - 3i, and one reduceat per level sums every quantity
    # of that level at once (a call per quantity was most of the cost of a window).
    ids = np.arange(k)
    first1, first2 = first - ids, first - 2 * ids
    n1, n2, n3 = n_points - 1, n_points - 2, n_points - 3

    # First differences (within an action only).
    same1 = seg[1:] == seg[:-1]
    s1 = seg[1:][same1]
    # Clock resolution floor: sub-millisecond steps are timestamp noise, not speed.
    dt = np.maximum((t[1:] - t[:-1])[same1], 1.0)
    dx = (x[1:] - x[:-1])[same1]
    dy = (y[1:] - y[:-1])[same1]
    ds = np.hypot(dx, dy)
    speed = ds / dt
    theta = np.arctan2(dy, dx)
    tm1 = (t[1:] + t[:-1])[same1] / 2  # time stamp of each speed sample
    level1 = np.empty((7, speed.size))
    level1[0] = speed
    np.multiply(speed, speed, out=level1[1])
    np.divide(dx, dt, out=level1[2])  # vx
    np.divide(dy, dt, out=level1[3])  # vy
    level1[4] = dt
    np.equal(ds, 0, out=level1[5])  # still samples
    level1[6] = ds  # path length
    sum1 = np.add.reduceat(level1, first1, axis=1)

    # Second differences.
    same2 = s1[1:] == s1[:-1]
    s2 = s1[1:][same2]
    dt2 = np.maximum((tm1[1:] - tm1[:-1])[same2], 1.0)
    accel = (speed[1:] - speed[:-1])[same2] / dt2
    dtheta = (theta[1:] - theta[:-1])[same2]
    dtheta = (dtheta + np.pi) % (2 * np.pi) - np.pi
    ds2 = (ds[1:] + ds[:-1])[same2] / 2
    tm2 = (tm1[1:] + tm1[:-1])[same2] / 2
    level2 = np.empty((6, accel.size))
    np.abs(accel, out=level2[0])
    level2[1] = accel
    np.multiply(accel, accel, out=level2[2])
    np.abs(dtheta, out=level2[3])
    np.divide(level2[3], dt2, out=level2[4])  # angular speed
    np.divide(level2[3], np.where(ds2 > 0, ds2, np.inf), out=level2[5])  # curvature, 0 if still
    sum2 = np.add.reduceat(level2, first2, axis=1)

    # Third differences.
    same3 = s2[1:] == s2[:-1]
    jerk = (accel[1:] - accel[:-1])[same3] / np.maximum((tm2[1:] - tm2[:-1])[same3], 1.0)
    sum_jerk = np.add.reduceat(np.abs(jerk), first - 3 * ids)

    duration = t[lastp] - t[first]
    path = sum1[6]
    cx = x[lastp] - x[first]
    cy = y[lastp] - y[first]
    chord = np.hypot(cx, cy)
    moved = chord > 0
    chord_safe = np.where(moved, chord, 1.0)
    # Perpendicular distance of every point to its action's chord.
    px = x - x[first][seg]
    py = y - y[first][seg]
    dev = np.abs(px * cy[seg] - py * cx[seg]) / chord_safe[seg]

    # Time of peak speed, as a fraction of the duration (ballistic vs corrective): the
    # first sample of each action at its maximum speed.
    peak_speed = np.maximum.reduceat(speed, first1)
    at_peak = np.where(speed == peak_speed[s1], np.arange(speed.size), speed.size)
    peak_at = np.minimum.reduceat(at_peak, first1)
    # An action whose peak is NaN (a NaN time) has no sample equal to it: its first sample
    # stands in, where indexing past the end raised for the whole batch of windows.
    peak_t = tm1[np.where(peak_at < speed.size, peak_at, first1)]
    has_duration = duration > 0

    mean1 = sum1[:6] / n1
    mean2 = sum2 / n2
    rows = np.empty((N_FEATURES, k))
    rows[0] = kinds == _MM
    rows[1] = kinds == _PC
    rows[2] = kinds == _DD
    rows[3] = duration
    rows[4] = np.minimum(pauses, 60_000.0)
    rows[5] = hold
    rows[6] = np.log(n_points)
    rows[7] = path
    rows[8] = chord
    rows[9] = np.where(path > 0, chord / np.where(path > 0, path, 1.0), 1.0)  # straightness
    rows[10] = np.where(moved, cx / chord_safe, 0.0)
    rows[11] = np.where(moved, cy / chord_safe, 0.0)
    rows[12] = np.where(moved, np.maximum.reduceat(dev, first), 0.0)
    rows[13] = mean1[0] * 1000  # px/s
    rows[14] = np.sqrt(np.maximum(mean1[1] - mean1[0] * mean1[0], 0.0)) * 1000
    rows[15] = peak_speed * 1000
    rows[16] = np.arcsinh(mean1[2] * 1000 / 100)
    rows[17] = np.arcsinh(mean1[3] * 1000 / 100)
    rows[18] = mean2[0] * 1e6  # px/s^2
    rows[19] = np.sqrt(np.maximum(mean2[2] - mean2[1] * mean2[1], 0.0)) * 1e6
    rows[20] = np.maximum.reduceat(accel, first2) * 1e6
    rows[21] = np.minimum.reduceat(accel, first2) * -1e6
    rows[22] = sum_jerk / n3 * 1e9  # px/s^3
    rows[23] = mean2[4] * 1000  # rad/s
    rows[24] = mean2[5] * 1000  # rad per 1000 px
    rows[25] = mean2[3]
    rows[26] = np.where(has_duration, (peak_t - t[first]) / np.where(has_duration, duration, 1), 0)
    rows[27] = mean1[4]
    rows[28] = mean1[5]
    rows[_LOG_ROWS] = _log(rows[_LOG_ROWS])
    return np.ascontiguousarray(rows.T), kept


def extract(events: MouseEvents, pause_ms: float = PAUSE_MS) -> np.ndarray:
    """Events (any buttons, scroll included) -> one feature row per usable action."""
    pe = pointer_events(events)
    return _features(pe, _segment(pe, pause_ms), MIN_POINTS)[0]


def extract_many(windows: Sequence[MouseEvents], pause_ms: float = PAUSE_MS) -> list[np.ndarray]:
    """``[extract(w) for w in windows]``, bit for bit, in one pass over all of them.

    A window's extraction is ~100 numpy calls on a few hundred events, so its cost is
    mostly numpy's per-call overhead; paid once for many windows (the worker judges
    the windows of many users together) it is a fraction of the cost per window.

    >>> t = np.arange(0.0, 200.0, 20.0)
    >>> ev = MouseEvents(
    ...     t_ms=t, x=np.arange(10, dtype=np.int32) * 10, y=np.zeros(10, np.int32),
    ...     button=np.zeros(10, np.int8), state=np.zeros(10, np.int8),
    ... )
    >>> many = extract_many([ev, ev[:0], ev[3:]])
    >>> [m.shape[0] for m in many]
    [1, 0, 1]
    >>> all(np.array_equal(m, extract(w)) for m, w in zip(many, [ev, ev[:0], ev[3:]]))
    True
    """
    if len(windows) <= 1:
        return [extract(w, pause_ms) for w in windows]
    parts = [pointer_events(w) for w in windows]
    ends = np.cumsum([len(p) for p in parts])
    n = int(ends[-1])
    if n == 0:
        return [np.empty((0, N_FEATURES)) for _ in windows]
    events = MouseEvents(
        np.concatenate([p.t_ms for p in parts]),
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.button for p in parts]),
        np.concatenate([p.state for p in parts]),
    )
    actions = _segment(events, pause_ms, np.unique(ends[ends < n]))
    rows, kept = _features(events, actions, MIN_POINTS)
    window_of = ends.searchsorted(actions.start, side="right")
    if kept is not None:
        window_of = window_of[kept]
    counts = np.bincount(window_of, minlength=len(windows))
    return np.split(rows, counts.cumsum()[:-1])
