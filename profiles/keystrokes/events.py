"""Keystroke events as the product sees them, and their pairing into key presses.

A capture yields ``down``/``up`` events carrying a time and a coarse key class,
never the key itself. Pairing a ``down`` with its ``up`` therefore happens per
class: inside one class, a run of downs is followed by a run of ups, and the
ups are matched to the *last* downs of the run. That single rule absorbs the
usual capture mess:

- a lost ``up`` (``down ... down up``): the earlier down stays a press, without
  a dwell, and the later one gets the up;
- key repeat (``down down down up``) reads the same way, as the class alone cannot
  tell a held key from two presses: the first down is a press without a dwell, the
  last repeat gets the up (a short dwell), the repeats in between are dropped. On
  the free-text recordings that is 671 extra presses in 98 788 (0.7 %, mostly a
  held backspace); pairing by key identity, which the product does not have, moved
  the mean EER by +0.05 points (docs/evaluation.md, "Keystrokes");
- a lost ``down``: the orphan ``up`` is ignored;
- rollover inside one class (``a↓ s↓ a↑ s↑``): first-in, first-out, as typed.

>>> ev = KeystrokeEvents(
...     t_ms=np.array([0.0, 80.0, 150.0, 240.0, 260.0, 330.0]),
...     is_down=np.array([True, False, True, True, False, False]),
...     key_class=np.array([1, 1, 7, 3, 7, 3], dtype=np.int8),
... )
>>> p = pair_presses(ev)
>>> p.t_down_ms.tolist(), p.dwell_ms.tolist(), p.key_class.tolist()
([0.0, 150.0, 240.0], [80.0, 110.0, 90.0], [1, 7, 3])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = [
    "ERASE",
    "MODIFIER",
    "N_CLASSES",
    "SPACE",
    "KeystrokeEvents",
    "KeystrokePresses",
    "pair_presses",
    "pair_presses_many",
]

# These mirror the class table of ``collectors/keyclass.py`` (13 classes: six
# letter zones, digit, space, enter, erase, modifier, navigation, other).
# profiles/ must not import collectors/, so the codes are restated here.
N_CLASSES: Final = 13
SPACE: Final = 7
ERASE: Final = 9
MODIFIER: Final = 10

# A key held longer than this is a held modifier, a stuck key or a lost up:
# not a dwell worth modelling.
MAX_DWELL_MS: Final = 1500.0


@dataclass(frozen=True, slots=True)
class KeystrokeEvents:
    """Raw key events, in time order: the input of the keystroke profiles.

    Attributes
    ----------
    t_ms
        Event times in milliseconds (float64, any origin).
    is_down
        ``True`` for a key press, ``False`` for a release.
    key_class
        Coarse key class (int8), never the key itself.
    """

    t_ms: np.ndarray
    is_down: np.ndarray
    key_class: np.ndarray

    def __post_init__(self) -> None:
        if not (self.t_ms.shape == self.is_down.shape == self.key_class.shape):
            raise ValueError("t_ms, is_down and key_class must have the same shape")

    def __len__(self) -> int:
        return int(self.t_ms.size)

    @classmethod
    def from_ns(
        cls, t_ns: np.ndarray, is_down: np.ndarray, key_class: np.ndarray
    ) -> KeystrokeEvents:
        """Build from integer nanoseconds (wall clock); times become ms since the first event."""
        t = np.asarray(t_ns, dtype=np.int64)
        t_ms = (t - t[0]).astype(np.float64) / 1e6 if t.size else np.zeros(0)
        return cls(
            t_ms=t_ms,
            is_down=np.asarray(is_down, dtype=bool),
            key_class=np.asarray(key_class, dtype=np.int8),
        )


@dataclass(frozen=True, slots=True)
class KeystrokePresses:
    """Key presses in order of their ``down``: the unit that windows count.

    ``dwell_ms`` is NaN when the press has no usable release.
    """

    t_down_ms: np.ndarray
    dwell_ms: np.ndarray
    key_class: np.ndarray

    def __len__(self) -> int:
        return int(self.t_down_ms.size)

    def __getitem__(self, index: slice) -> KeystrokePresses:
        return KeystrokePresses(self.t_down_ms[index], self.dwell_ms[index], self.key_class[index])


def pair_presses(events: KeystrokeEvents, max_dwell_ms: float = MAX_DWELL_MS) -> KeystrokePresses:
    """Pair downs with ups per key class (see the module docstring), vectorised.

    Events need not be sorted; ties keep their given order.
    """
    if len(events) == 0:
        empty = np.zeros(0)
        return KeystrokePresses(empty, empty.copy(), np.zeros(0, dtype=np.int8))
    presses, _ = _pair(events, None, max_dwell_ms)
    return presses


def pair_presses_many(
    windows: Sequence[KeystrokeEvents], max_dwell_ms: float = MAX_DWELL_MS
) -> list[KeystrokePresses]:
    """``[pair_presses(w) for w in windows]``, bit for bit, in one pass over all of them
    (a window's pairing is ~30 numpy calls on a few dozen events: paid once for many).

    >>> ev = KeystrokeEvents(np.array([0.0, 80.0, 90.0]), np.array([True, False, True]),
    ...     np.array([1, 1, 2], dtype=np.int8))
    >>> [len(p) for p in pair_presses_many([ev, ev, KeystrokeEvents.from_ns([], [], [])])]
    [2, 2, 0]
    """
    if len(windows) <= 1:
        return [pair_presses(w, max_dwell_ms) for w in windows]
    sizes = np.array([len(w) for w in windows])
    if not sizes.any():
        return [pair_presses(w, max_dwell_ms) for w in windows]
    events = KeystrokeEvents(
        np.concatenate([w.t_ms for w in windows]),
        np.concatenate([w.is_down for w in windows]),
        np.concatenate([w.key_class for w in windows]),
    )
    presses, window_of = _pair(events, np.arange(sizes.size).repeat(sizes), max_dwell_ms)
    cuts = np.bincount(window_of, minlength=sizes.size).cumsum()[:-1]
    return [
        KeystrokePresses(t, d, c)
        for t, d, c in zip(
            np.split(presses.t_down_ms, cuts),
            np.split(presses.dwell_ms, cuts),
            np.split(presses.key_class, cuts),
            strict=True,
        )
    ]


def _pair(
    events: KeystrokeEvents, window: np.ndarray | None, max_dwell_ms: float
) -> tuple[KeystrokePresses, np.ndarray]:
    """The presses of non-empty ``events`` and the window of each; ``window`` (sorted ids,
    one per event) keeps every run of downs or ups, and so every pairing, inside one."""
    # A window holds a few dozen events: numpy's per-call overhead, not the arrays,
    # is the cost here, so methods and slices stand in for numpy's Python-level
    # wrappers (np.diff, np.flatnonzero, np.argsort...): same operations, same values.
    n = len(events)
    if window is None:
        time_order = events.t_ms.argsort(kind="stable")
    else:
        time_order = np.lexsort((events.t_ms, window))  # stable: ties keep their order
    t = events.t_ms[time_order]
    cls = events.key_class[time_order]
    down = events.is_down[time_order]

    # Events grouped by class, in time order inside each class.
    if window is None:
        order = cls.argsort(kind="stable")
        c, d = cls[order], down[order]
        key = c.astype(np.int16) * 2 + d
    else:
        window = window[time_order]
        order = np.lexsort((cls, window))
        c, d = cls[order], down[order]
        key = (window[order] * 256 + (c.astype(np.int64) + 128)) * 2 + d
    # Runs of downs or ups of one class: where the class or the direction changes.
    boundary = np.empty(n, dtype=bool)
    boundary[0] = True
    np.not_equal(key[1:], key[:-1], out=boundary[1:])
    starts = boundary.nonzero()[0]
    run_len = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=run_len[:-1])
    run_len[-1] = n - starts[-1]
    run_of = np.arange(starts.size).repeat(run_len)
    pos = np.arange(n) - starts[run_of]

    # Number of ups available to each down run: the run right after it, if it
    # is the same class (and window) and made of ups.
    run_c, run_d = key[starts] >> 1, d[starts]
    next_is_ups = (run_c[1:] == run_c[:-1]) & ~run_d[1:] & run_d[:-1]
    ups = np.zeros(run_len.shape, run_len.dtype)
    ups[:-1] = np.where(next_is_ups, run_len[1:], 0)
    matched_runs = np.minimum(run_len, ups)

    first_matched = (run_len - matched_runs)[run_of]
    is_matched = d & (pos >= first_matched)
    keep = d & (is_matched | (pos == 0))

    dwell = np.empty(n)
    dwell.fill(np.nan)
    idx = is_matched.nonzero()[0]
    up_run = run_of[idx] + 1
    up_idx = starts[up_run] + pos[idx] - first_matched[idx]
    tc = t[order]
    dwell[idx] = tc[up_idx] - tc[idx]
    dwell[dwell > max_dwell_ms] = np.nan

    kept = order[keep]
    kept.sort()  # back to time order (order maps grouped -> time index)
    dwell_time = np.empty(n)
    dwell_time[order] = dwell
    presses = KeystrokePresses(
        t_down_ms=t[kept], dwell_ms=dwell_time[kept], key_class=cls[kept].astype(np.int8)
    )
    return presses, (window[kept] if window is not None else np.zeros(0, np.int64))
