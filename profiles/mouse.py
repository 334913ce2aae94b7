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


_POINTER_STATES = np.array([State.MOVE, State.PRESSED, State.RELEASED, State.DRAG])


def pointer_events(events: MouseEvents) -> MouseEvents:
    """Events that move the pointer or click it: scroll and exotic buttons removed."""
    keep = np.isin(events.state, _POINTER_STATES) & (events.button <= Button.RIGHT)
    return events[keep]


def segment_actions(events: MouseEvents, pause_ms: float = PAUSE_MS) -> list[MouseAction]:
    """Cut time-ordered pointer events (see :func:`pointer_events`) into actions."""
    ev = events
    n = len(ev)
    if n == 0:
        return []
    state = ev.state
    t = ev.t_ms
    is_press = state == State.PRESSED
    is_release = state == State.RELEASED
    is_drag = state == State.DRAG

    # "held": a press came after the last release -> pauses there are click holds.
    last_pr = np.where(is_press | is_release, np.arange(n), -1)
    np.maximum.accumulate(last_pr, out=last_pr)
    held_before = np.zeros(n, dtype=bool)
    held_before[1:] = (last_pr[:-1] >= 0) & is_press[np.maximum(last_pr[:-1], 0)]

    gap = np.empty(n)
    gap[0] = np.inf
    gap[1:] = np.diff(t)
    start = (gap > pause_ms) & ~held_before
    start[0] = True
    start[1:] |= is_release[:-1]

    # A press followed by drag events before its release starts a DD action.
    press_idx = np.flatnonzero(is_press)
    release_idx = np.flatnonzero(is_release)
    drag_cum = np.cumsum(is_drag)
    dd_press = np.zeros(n, dtype=bool)
    if press_idx.size and release_idx.size:
        nxt = np.searchsorted(release_idx, press_idx)
        ok = nxt < release_idx.size
        p, r = press_idx[ok], release_idx[nxt[ok]]
        dragged = drag_cum[r] - drag_cum[p] > 0
        dd_press[p[dragged]] = True
    start |= dd_press

    bounds = np.r_[np.flatnonzero(start), n]
    release_cum = np.r_[0, np.cumsum(is_release)]
    press_pos = np.where(is_press, np.arange(n), -1)
    np.maximum.accumulate(press_pos, out=press_pos)

    actions: list[MouseAction] = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        pause = float(gap[a]) if a > 0 else 0.0
        if release_cum[b] - release_cum[a] > 0 and press_pos[b - 1] >= a:
            kind = ActionType.DD if dd_press[a] else ActionType.PC
            actions.append(MouseAction(kind, a, b, int(press_pos[b - 1]), pause))
        else:
            actions.append(MouseAction(ActionType.MM, a, b, -1, pause))
    return actions


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
    if not actions:
        return np.empty((0, N_FEATURES))
    kinds = np.array([a.kind for a in actions], dtype=np.int64)
    starts = np.array([a.start for a in actions], dtype=np.int64)
    stops = np.array([a.stop for a in actions], dtype=np.int64)
    presses = np.array([a.press for a in actions], dtype=np.int64)
    pauses = np.array([a.pause_before_ms for a in actions], dtype=np.float64)
    ends = np.where(kinds == ActionType.PC, presses + 1, stops)  # PC: up to the press

    t_all = events.t_ms.astype(np.float64)
    hold = np.zeros(kinds.size)
    clicked = kinds != ActionType.MM
    hold[clicked] = t_all[stops[clicked] - 1] - t_all[presses[clicked]]

    # Concatenate the trajectory points of all actions, with their action id.
    lengths = ends - starts
    seg = np.repeat(np.arange(kinds.size), lengths)
    offsets = np.cumsum(lengths) - lengths
    idx = np.arange(seg.size) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
    t = t_all[idx]
    x = events.x[idx].astype(np.float64)
    y = events.y[idx].astype(np.float64)

    # Collapse equal timestamps inside an action (keep the last position).
    last = np.ones(seg.size, dtype=bool)
    last[:-1] = (seg[1:] != seg[:-1]) | (t[1:] != t[:-1])
    seg, t, x, y = seg[last], t[last], x[last], y[last]

    n_points = np.bincount(seg, minlength=kinds.size)
    ok = n_points >= min_points
    if not ok.any():
        return np.empty((0, N_FEATURES))
    keep = ok[seg]
    # Renumber surviving actions 0..k-1 so that reductions stay dense.
    new_id = np.cumsum(ok) - 1
    seg, t, x, y = new_id[seg[keep]], t[keep], x[keep], y[keep]
    kinds, hold, pauses, n_points = kinds[ok], hold[ok], pauses[ok], n_points[ok]
    k = kinds.size

    first = np.r_[0, np.flatnonzero(seg[1:] != seg[:-1]) + 1]
    lastp = np.r_[first[1:] - 1, seg.size - 1]

    # First differences (within an action only).
    same1 = seg[1:] == seg[:-1]
    s1 = seg[1:][same1]
    # Clock resolution floor: sub-millisecond steps are timestamp noise, not speed.
    dt = np.maximum(np.diff(t)[same1], 1.0)
    dx = np.diff(x)[same1]
    dy = np.diff(y)[same1]
    ds = np.hypot(dx, dy)
    speed = ds / dt
    vx, vy = dx / dt, dy / dt
    theta = np.arctan2(dy, dx)
    tm1 = (t[1:] + t[:-1])[same1] / 2  # time stamp of each speed sample

    # Second differences.
    same2 = s1[1:] == s1[:-1]
    s2 = s1[1:][same2]
    dt2 = np.maximum(np.diff(tm1)[same2], 1.0)
    accel = np.diff(speed)[same2] / dt2
    dtheta = np.diff(theta)[same2]
    dtheta = (dtheta + np.pi) % (2 * np.pi) - np.pi
    ds2 = (ds[1:] + ds[:-1])[same2] / 2
    moving = ds2 > 0
    ang_speed = np.abs(dtheta) / dt2
    curvature = np.where(moving, np.abs(dtheta) / np.where(moving, ds2, 1.0), 0.0)
    tm2 = (tm1[1:] + tm1[:-1])[same2] / 2

    # Third differences.
    same3 = s2[1:] == s2[:-1]
    s3 = s2[1:][same3]
    jerk = np.diff(accel)[same3] / np.maximum(np.diff(tm2)[same3], 1.0)

    def mean(v: np.ndarray, s: np.ndarray) -> np.ndarray:
        return np.bincount(s, weights=v, minlength=k) / np.maximum(np.bincount(s, minlength=k), 1)

    def std(v: np.ndarray, s: np.ndarray) -> np.ndarray:
        m = mean(v, s)
        return np.sqrt(np.maximum(mean(v * v, s) - m * m, 0.0))

    def vmax(v: np.ndarray, s: np.ndarray) -> np.ndarray:
        out = np.zeros(k)
        np.maximum.at(out, s, v)
        return out

    duration = t[lastp] - t[first]
    path = np.bincount(s1, weights=ds, minlength=k)
    cx = x[lastp] - x[first]
    cy = y[lastp] - y[first]
    chord = np.hypot(cx, cy)
    straight = np.where(path > 0, chord / np.where(path > 0, path, 1.0), 1.0)
    chord_safe = np.where(chord > 0, chord, 1.0)
    direction_cos = np.where(chord > 0, cx / chord_safe, 0.0)
    direction_sin = np.where(chord > 0, cy / chord_safe, 0.0)
    # Perpendicular distance of every point to its action's chord.
    px = x - x[first][seg]
    py = y - y[first][seg]
    dev = np.abs(px * cy[seg] - py * cx[seg]) / chord_safe[seg]
    max_dev = np.where(chord > 0, vmax(dev, seg), 0.0)

    # Time of peak speed, as a fraction of the duration (ballistic vs corrective).
    order = np.lexsort((-speed, s1))
    peak_first = np.r_[0, np.flatnonzero(s1[order][1:] != s1[order][:-1]) + 1]
    peak_t = tm1[order][peak_first]
    t_peak = np.where(duration > 0, (peak_t - t[first]) / np.where(duration > 0, duration, 1), 0)

    feats = np.column_stack(
        [
            kinds == ActionType.MM,
            kinds == ActionType.PC,
            kinds == ActionType.DD,
            _log(duration),
            _log(np.minimum(pauses, 60_000.0)),
            _log(hold),
            np.log(n_points),
            _log(path),
            _log(chord),
            straight,
            direction_cos,
            direction_sin,
            _log(max_dev),
            _log(mean(speed, s1) * 1000),  # px/s
            _log(std(speed, s1) * 1000),
            _log(vmax(speed, s1) * 1000),
            np.arcsinh(mean(vx, s1) * 1000 / 100),
            np.arcsinh(mean(vy, s1) * 1000 / 100),
            _log(mean(np.abs(accel), s2) * 1e6),  # px/s^2
            _log(std(accel, s2) * 1e6),
            _log(vmax(accel, s2) * 1e6),
            _log(vmax(-accel, s2) * 1e6),
            _log(mean(np.abs(jerk), s3) * 1e9),  # px/s^3
            _log(mean(ang_speed, s2) * 1000),  # rad/s
            _log(mean(curvature, s2) * 1000),  # rad per 1000 px
            mean(np.abs(dtheta), s2),
            t_peak,
            _log(mean(dt, s1)),
            mean((ds == 0).astype(np.float64), s1),
        ]
    ).astype(np.float64)
    return feats


def extract(events: MouseEvents, pause_ms: float = PAUSE_MS) -> np.ndarray:
    """Events (any buttons, scroll included) -> one feature row per usable action."""
    pe = pointer_events(events)
    return action_features(pe, segment_actions(pe, pause_ms=pause_ms))
