"""Synthetic people: a stable typing and mouse style drawn from one seed.

A :class:`Persona` holds the parameters of one person's behaviour; the functions
:func:`typing_episode` and :func:`mouse_episode` draw a stretch of activity in that
style as columnar numpy arrays (an :class:`Episode`), which :mod:`collectors.simulate`
cuts into wire batches.

Typing. Each key class has a log-normal dwell (hold) time; the flight time from the
release of one key to the press of the next is log-normal with a person-specific mean
for every class pair, built from effects that real typists show: alternating hands is
faster than staying on one hand, jumping rows costs, digits and punctuation are slow,
and every person has small idiosyncrasies per pair. Some presses roll over (the next
key goes down before the previous one is up). The class sequence comes from a
first-order Markov chain over keyboard zones whose frequencies follow English letter
frequencies, with word lengths, spaces, capitals (shift held over a letter),
punctuation, the odd digit group and erase runs; it is not text and cannot be read.

Mouse. Movements go from the pointer to a random target; the duration follows Fitts'
law with person-specific intercept and slope, the path a minimum-jerk profile warped
to move the velocity peak, bent by a person-specific curvature and sometimes
overshooting and correcting. Clicks have a person-specific hover and hold time;
there are double clicks, drags and scroll bursts.

Everything a *device* decides, not a person (pointer polling rate, screen size), lives
in :class:`Device`, so that an impostor on the victim's workstation is not betrayed by
the polling rate alone.

The population spreads are picked so that people overlap on every single feature, the
way real people do, while differing jointly.

>>> p = Persona.from_seed(7)
>>> p == Persona.from_seed(7), p == Persona.from_seed(8)
(True, False)
>>> rng = np.random.default_rng(0)
>>> ep = typing_episode(p, rng, start_ms=0.0, n_words=5)
>>> bool((np.diff(ep.t_ms) >= 0).all()), int((ep.kind == KD).sum()) == int((ep.kind == KU).sum())
(True, True)
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from collectors.episodes import KD, KU, MD, MM, MS, MU, Episode
from collectors.keyclass import CLASS_CODES, N_CLASSES

_L_TOP, _L_HOME, _L_BOTTOM = CLASS_CODES["L_top"], CLASS_CODES["L_home"], CLASS_CODES["L_bottom"]
_R_TOP, _R_HOME, _R_BOTTOM = CLASS_CODES["R_top"], CLASS_CODES["R_home"], CLASS_CODES["R_bottom"]
_DIGIT = CLASS_CODES["digit"]
_SPACE = CLASS_CODES["space"]
_ENTER = CLASS_CODES["enter"]
_ERASE = CLASS_CODES["erase"]
_MODIFIER = CLASS_CODES["modifier"]
_NAVIGATION = CLASS_CODES["navigation"]
_OTHER = CLASS_CODES["other"]

# Which hand usually strikes a class (0 left, 1 right, 2 either, 3 thumb) and its
# keyboard row (digit row -1 .. space row 3): the drivers of digraph latency.
_HAND: Final = np.array([0, 0, 0, 1, 1, 1, 2, 3, 1, 1, 0, 1, 1])
_ROW: Final = np.array([0, 1, 2, 0, 1, 2, -1, 3, 1, -1, 2, 1, 0])

# English letter frequency (%) summed per zone: etrwq, asdfg, cbvxz, oiuyp, hlkj, nm.
_ZONE_FREQ: Final = np.array([30.3, 23.0, 5.5, 21.2, 11.05, 9.1])

# Population-level offsets (log ms) of dwell per class: thumbs and pinkies hold longer.
_DWELL_CLASS_OFFSET: Final = np.array(
    [0.0, 0.0, 0.02, 0.0, 0.0, 0.02, 0.05, 0.08, 0.06, 0.02, 0.0, 0.1, 0.04]
)
# Population-level offsets (log ms) of flight *to* a class: hunting for rare keys is slow.
_FLIGHT_TO_OFFSET: Final = np.array(
    [0.0, 0.0, 0.12, 0.0, 0.02, 0.05, 0.35, 0.0, 0.3, 0.15, 0.1, 0.45, 0.35]
)


def _letter_chain() -> tuple[list[float], list[list[float]]]:
    """Cumulative start and transition probabilities of the zone Markov chain."""
    start = _ZONE_FREQ / _ZONE_FREQ.sum()
    trans = np.empty((6, 6))
    for a in range(6):
        for b in range(6):
            alternate = _HAND[a] != _HAND[b]
            # English alternates hands a bit more than chance; doubled zones are rarer.
            trans[a, b] = _ZONE_FREQ[b] * (1.25 if alternate else 1.0) * (0.55 if a == b else 1.0)
        trans[a] /= trans[a].sum()
    return np.cumsum(start).tolist(), [np.cumsum(row).tolist() for row in trans]


_START_CUM, _TRANS_CUM = _letter_chain()
# Lengths 1..12 of English words in running text (roughly), as a cumulative distribution.
_WORD_LEN_CUM: Final = np.cumsum(
    np.array([3.0, 17.0, 21.0, 16.0, 11.0, 9.0, 8.0, 6.0, 4.0, 2.5, 1.5, 1.0]) / 100.0
).tolist()


@dataclass(frozen=True, eq=False)
class Persona:
    """One synthetic person's behavioural parameters (all times in ms, logs natural)."""

    seed: int
    # typing
    dwell_mu: np.ndarray  # (13,) log-ms mean dwell per key class
    dwell_sigma: float
    flight_mu: np.ndarray  # (13, 13) log-ms mean release-to-press flight per class pair
    flight_sigma: float
    rollover_p: np.ndarray  # (13, 13) probability the next press precedes the release
    shift_lead_mu: float  # shift press -> letter press
    shift_lag_mu: float  # letter release -> shift release
    erase_rate: float  # probability a word gets corrected
    burst_words: float  # mean words per burst between thinking pauses
    pause_mu: float  # log-ms thinking pause between bursts
    pause_sigma: float
    capital_p: float  # sentence starts typed with shift
    # mouse
    fitts_a_ms: float
    fitts_b_ms: float  # per bit of index of difficulty
    duration_sigma: float
    peak_warp: float  # exponent warping time: <1 peaks early, >1 late
    curvature: float  # signed lateral bend, fraction of the distance
    curvature_sigma: float
    overshoot_p: float
    overshoot_frac: float
    tremor_px: float
    hover_mu: float  # log-ms pause between arriving and pressing
    click_hold_mu: float
    click_hold_sigma: float
    double_click_p: float
    click_p: float
    drag_p: float
    scroll_p: float
    scroll_interval_mu: float
    move_pause_mu: float  # log-ms pause between mouse actions
    # activity
    typing_share: float  # probability the next episode is typing

    @classmethod
    def from_seed(cls, seed: int) -> Persona:
        """Draw a person from the population; the same seed always gives the same person."""
        rng = np.random.default_rng(np.random.SeedSequence([0x9E75, seed]))
        return _draw_persona(seed, rng)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Persona) and other.seed == self.seed

    def __hash__(self) -> int:
        return hash(self.seed)

    @property
    def median_dwell_ms(self) -> float:
        """Median dwell of letter keys: a handy single statistic for tests and docs."""
        return float(np.exp(np.median(self.dwell_mu[:6])))


def _draw_persona(seed: int, rng: np.random.Generator) -> Persona:
    # Overall speed: dwell and flight are correlated across people (fast typists do
    # both quickly) but not perfectly, so neither alone identifies a person.
    speed = rng.normal(0.0, 1.0)
    dwell_base = math.log(95.0) + 0.13 * speed + rng.normal(0.0, 0.1)
    dwell_mu = dwell_base + _DWELL_CLASS_OFFSET + rng.normal(0.0, 0.07, N_CLASSES)
    dwell_mu[_MODIFIER] += 0.15  # modifiers pressed alone (shortcuts) are held longer

    flight_base = math.log(105.0) + 0.3 * speed + rng.normal(0.0, 0.12)
    alternation = rng.uniform(-0.4, -0.05)  # hand alternation speeds the next press
    row_cost = rng.uniform(0.02, 0.12)
    repeat_cost = rng.uniform(0.0, 0.25)  # same zone again: often the same finger
    space_term = rng.normal(0.0, 0.12)
    to_offset = _FLIGHT_TO_OFFSET + rng.normal(0.0, 0.12, N_CLASSES)
    hand_a, hand_b = _HAND[:, None], _HAND[None, :]
    two_hands = (hand_a <= 1) & (hand_b <= 1)
    alternate = two_hands & (hand_a != hand_b)
    same_hand = two_hands & (hand_a == hand_b)
    row_jump = np.abs(_ROW[:, None] - _ROW[None, :])
    flight_mu = (
        flight_base
        + alternation * alternate
        + row_cost * row_jump * same_hand
        + repeat_cost * np.eye(N_CLASSES)
        + space_term * ((hand_a == 3) | (hand_b == 3))
        + to_offset[None, :]
        + rng.normal(0.0, 0.06, (N_CLASSES, N_CLASSES))  # idiosyncrasies per pair
    )
    base_rollover = rng.beta(2.0, 12.0)
    rollover_p = np.clip(base_rollover * (1.0 + 1.5 * alternate) * (1.0 - 0.7 * np.eye(13)), 0, 0.6)

    return Persona(
        seed=seed,
        dwell_mu=dwell_mu,
        dwell_sigma=float(rng.uniform(0.16, 0.32)),
        flight_mu=flight_mu,
        flight_sigma=float(rng.uniform(0.3, 0.55)),
        rollover_p=rollover_p,
        shift_lead_mu=float(math.log(rng.uniform(50.0, 160.0))),
        shift_lag_mu=float(math.log(rng.uniform(10.0, 90.0))),
        erase_rate=float(rng.uniform(0.02, 0.14)),
        burst_words=float(rng.uniform(3.0, 12.0)),
        pause_mu=float(math.log(rng.uniform(500.0, 2500.0))),
        pause_sigma=float(rng.uniform(0.4, 0.8)),
        capital_p=float(rng.uniform(0.3, 0.95)),
        fitts_a_ms=float(np.clip(rng.normal(180.0, 50.0), 60.0, 350.0)),
        fitts_b_ms=float(np.clip(rng.normal(120.0, 30.0), 50.0, 220.0)),
        duration_sigma=float(rng.uniform(0.1, 0.25)),
        peak_warp=float(np.exp(rng.normal(0.0, 0.15))),
        curvature=float(rng.normal(0.0, 0.07)),
        curvature_sigma=float(rng.uniform(0.02, 0.06)),
        overshoot_p=float(rng.uniform(0.05, 0.4)),
        overshoot_frac=float(rng.uniform(0.02, 0.1)),
        tremor_px=float(rng.uniform(0.2, 1.2)),
        hover_mu=float(math.log(rng.uniform(60.0, 300.0))),
        click_hold_mu=float(math.log(np.clip(rng.normal(105.0, 25.0), 50.0, 200.0))),
        click_hold_sigma=float(rng.uniform(0.15, 0.35)),
        double_click_p=float(rng.uniform(0.02, 0.15)),
        click_p=float(rng.uniform(0.45, 0.85)),
        drag_p=float(rng.uniform(0.02, 0.1)),
        scroll_p=float(rng.uniform(0.05, 0.2)),
        scroll_interval_mu=float(math.log(rng.uniform(25.0, 90.0))),
        move_pause_mu=float(math.log(rng.uniform(150.0, 900.0))),
        typing_share=float(rng.uniform(0.3, 0.7)),
    )


@dataclass(frozen=True, slots=True)
class Device:
    """What the workstation decides: pointer polling rate and screen size."""

    poll_hz: float
    width: int
    height: int

    @classmethod
    def from_rng(cls, rng: np.random.Generator) -> Device:
        hz = float(rng.choice([60.0, 75.0, 100.0, 125.0]))
        width, height = [(1920, 1080), (2560, 1440), (1680, 1050), (1366, 768)][
            int(rng.integers(4))
        ]
        return cls(hz, width, height)


# -- typing --------------------------------------------------------------------


def _class_sequence(
    persona: Persona, rng: np.random.Generator, n_words: int
) -> tuple[list[int], list[float]]:
    """Key classes of ``n_words`` words and the thinking pause (ms) before each key."""
    u = rng.random(n_words * 24 + 16).tolist()  # one block of draws, consumed in order
    pauses_draw = np.exp(persona.pause_mu + persona.pause_sigma * rng.normal(size=n_words))
    pos = 0

    def draw() -> float:
        nonlocal pos
        pos += 1
        return u[pos - 1] if pos <= len(u) else float(rng.random())

    classes: list[int] = []
    pause: list[float] = []
    sentence_start = True
    burst_left = persona.burst_words
    for w in range(n_words):
        pause_here = 0.0
        if burst_left <= 0:
            pause_here = float(pauses_draw[w])
            burst_left = persona.burst_words * (0.5 + draw())
        burst_left -= 1
        r = draw()
        if r < 0.03:  # a number
            word = [_DIGIT] * (1 + int(draw() * 4))
        elif r < 0.05:  # navigation keys (moving the caret)
            word = [_NAVIGATION] * (1 + int(draw() * 3))
        else:
            length = bisect.bisect(_WORD_LEN_CUM, draw() * _WORD_LEN_CUM[-1]) + 1
            zone = bisect.bisect(_START_CUM, draw() * _START_CUM[-1])
            word = [zone]
            for _ in range(length - 1):
                row = _TRANS_CUM[zone]
                zone = bisect.bisect(row, draw() * row[-1])
                word.append(zone)
            if sentence_start and draw() < persona.capital_p:
                word.insert(0, _MODIFIER)
        sentence_start = False
        if draw() < persona.erase_rate:
            n_erase = 1 + int(draw() * 3)
            n_erase = min(n_erase, len(word))
            retyped = [bisect.bisect(_START_CUM, draw() * _START_CUM[-1]) for _ in range(n_erase)]
            word = word + [_ERASE] * n_erase + retyped
        end = draw()
        if end < 0.08:
            word.append(_OTHER)  # sentence end or comma
            sentence_start = end < 0.05
        if w == n_words - 1 or draw() < 0.015:
            word.append(_ENTER)
            sentence_start = True
        elif word[-1] != _NAVIGATION:
            word.append(_SPACE)
        # A word never ends on a held shift, so every modifier has a following key.
        classes.extend(word)
        pause.extend([pause_here] + [0.0] * (len(word) - 1))
    return classes, pause


def typing_episode(
    persona: Persona, rng: np.random.Generator, start_ms: float, n_words: int
) -> Episode:
    """``n_words`` words of typing starting at ``start_ms``, as kd/ku events."""
    classes, pause = _class_sequence(persona, rng, n_words)
    cls = np.asarray(classes, dtype=np.int64)
    n = cls.size
    z = rng.normal(size=(3, n))
    u = rng.random((2, n))
    dwell = np.exp(persona.dwell_mu[cls] + persona.dwell_sigma * z[0])
    prev = np.roll(cls, 1)
    flight = np.exp(persona.flight_mu[prev, cls] + persona.flight_sigma * z[1])
    prev_dwell = np.roll(dwell, 1)
    rolled = u[0] < persona.rollover_p[prev, cls]
    # Press-to-press interval: after the release plus flight, or during a rollover
    # somewhere inside the previous hold.
    gap = np.where(rolled, prev_dwell * (0.35 + 0.55 * u[1]), prev_dwell + flight)
    shifted = np.flatnonzero(cls[:-1] == _MODIFIER)
    gap[shifted + 1] = np.exp(persona.shift_lead_mu + 0.3 * z[2][shifted + 1])
    gap[0] = 0.0
    gap += np.asarray(pause)
    down = start_ms + np.cumsum(gap)
    up = down + dwell
    # Shift is held across the letter it capitalises and released just after it.
    up[shifted] = np.maximum(
        up[shifted], up[shifted + 1] + np.exp(persona.shift_lag_mu + 0.4 * z[2][shifted])
    )
    zeros = np.zeros(n, np.int64)
    return Episode.sorted_from(
        np.concatenate([down, up]),
        np.concatenate([np.full(n, KD), np.full(n, KU)]),
        np.concatenate([cls, cls]),
        np.concatenate([zeros, zeros]),
    )


# -- mouse ---------------------------------------------------------------------


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    """Position along a minimum-jerk reach at normalised time ``tau`` in [0, 1]."""
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)


def _movement(
    persona: Persona,
    device: Device,
    rng: np.random.Generator,
    start_ms: float,
    p0: tuple[float, float],
    p1: tuple[float, float],
    width_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointer samples (t, x, y) of one aimed movement from p0 to p1, after start_ms."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    dist = math.hypot(dx, dy)
    index_of_difficulty = math.log2(dist / width_px + 1.0)
    z = rng.normal(size=3)
    duration = (persona.fitts_a_ms + persona.fitts_b_ms * index_of_difficulty) * math.exp(
        persona.duration_sigma * z[0]
    )
    duration = max(duration, 40.0)
    overshoot = rng.random() < persona.overshoot_p
    reach = 1.0 + (persona.overshoot_frac * (0.5 + rng.random()) if overshoot else 0.0)
    period = 1000.0 / device.poll_hz
    n = max(2, int(duration / period) + 1)
    # Polling jitter: the OS delivers samples a little early or late.
    t = np.arange(1, n + 1) * period + rng.normal(0.0, 0.12 * period, n)
    t = np.maximum.accumulate(np.clip(t, 0.0, None))
    s = _min_jerk(np.clip(t / duration, 0.0, 1.0) ** persona.peak_warp)
    # Bend perpendicular to the direction; which way depends on the person and the
    # direction of travel (the arm pivots at the elbow/wrist).
    bend = (persona.curvature * math.copysign(1.0, dx or 1.0)) + persona.curvature_sigma * z[1]
    nx, ny = (-dy / dist, dx / dist) if dist > 0 else (0.0, 0.0)
    lateral = bend * dist * np.sin(np.pi * s)
    x = p0[0] + reach * dx * s + lateral * nx + rng.normal(0.0, persona.tremor_px, n)
    y = p0[1] + reach * dy * s + lateral * ny + rng.normal(0.0, persona.tremor_px, n)
    t = start_ms + t
    if overshoot:
        # A short corrective submovement back onto the target.
        back = max(30.0, 0.5 * persona.fitts_a_ms * math.exp(0.2 * z[2]))
        m = max(2, int(back / period) + 1)
        tc = np.arange(1, m + 1) * period
        sc = _min_jerk(np.clip(tc / back, 0.0, 1.0))
        ex, ey = x[-1], y[-1]
        x = np.concatenate([x, ex + (p1[0] - ex) * sc])
        y = np.concatenate([y, ey + (p1[1] - ey) * sc])
        t = np.concatenate([t, t[-1] + tc])
    xi = np.rint(np.clip(x, 0, device.width - 1)).astype(np.int64)
    yi = np.rint(np.clip(y, 0, device.height - 1)).astype(np.int64)
    # Mice report only when the position changes.
    moved = np.ones(xi.size, dtype=bool)
    moved[1:] = (xi[1:] != xi[:-1]) | (yi[1:] != yi[:-1])
    return t[moved], xi[moved], yi[moved]


def mouse_episode(
    persona: Persona,
    device: Device,
    rng: np.random.Generator,
    start_ms: float,
    position: tuple[float, float],
    n_actions: int,
) -> tuple[Episode, tuple[float, float]]:
    """``n_actions`` mouse actions (move, then click / drag / scroll / nothing).

    Returns the events and the pointer position at the end.
    """
    ts: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    buttons: list[np.ndarray] = []
    dys: list[np.ndarray] = []
    now = start_ms
    pos = position
    margin = 20.0

    def add(t: np.ndarray, kind: int, x: np.ndarray, y: np.ndarray, button: int = 0) -> None:
        ts.append(t)
        kinds.append(np.full(t.size, kind))
        xs.append(x)
        ys.append(y)
        buttons.append(np.full(t.size, button))
        dys.append(np.zeros(t.size, np.int64))

    def point(t_ms: float, kind: int, button: int) -> None:
        add(np.array([t_ms]), kind, np.array([round(pos[0])]), np.array([round(pos[1])]), button)

    for _ in range(n_actions):
        target = (
            float(rng.uniform(margin, device.width - margin)),
            float(rng.uniform(margin, device.height - margin)),
        )
        r = rng.random()
        dragging = r < persona.drag_p
        if dragging:
            now += math.exp(persona.hover_mu + 0.3 * rng.normal())
            point(now, MD, 1)
        width = float(rng.uniform(12.0, 80.0))
        t, x, y = _movement(persona, device, rng, now, pos, target, width)
        if t.size:
            add(t, MM, x, y)
            now = float(t[-1])
            pos = (float(x[-1]), float(y[-1]))
        if dragging:
            now += math.exp(persona.hover_mu - 0.5 + 0.3 * rng.normal())
            point(now, MU, 1)
        elif r < persona.drag_p + persona.scroll_p:
            ticks = 1 + int(rng.integers(1, 10))
            gaps = np.exp(persona.scroll_interval_mu + 0.3 * rng.normal(size=ticks))
            t_scroll = now + np.cumsum(gaps)
            add(t_scroll, MS, np.full(ticks, round(pos[0])), np.full(ticks, round(pos[1])))
            dys[-1] = np.full(ticks, -120 if rng.random() < 0.7 else 120)
            now = float(t_scroll[-1])
        elif r < persona.drag_p + persona.scroll_p + persona.click_p:
            button = 2 if rng.random() < 0.08 else 1
            clicks = 2 if button == 1 and rng.random() < persona.double_click_p else 1
            now += math.exp(persona.hover_mu + 0.35 * rng.normal())
            for i in range(clicks):
                if i:
                    now += math.exp(math.log(70.0) + 0.25 * rng.normal())
                point(now, MD, button)
                now += math.exp(persona.click_hold_mu + persona.click_hold_sigma * rng.normal())
                point(now, MU, button)
        now += math.exp(persona.move_pause_mu + 0.6 * rng.normal())
    if not ts:
        empty = np.zeros(0)
        return Episode.sorted_from(empty, empty.astype(np.int8), empty, empty), pos
    t_all = np.concatenate(ts)
    ep = Episode.sorted_from(
        t_all,
        np.concatenate(kinds),
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(buttons),
        None,
        np.concatenate(dys),
    )
    return ep, pos
