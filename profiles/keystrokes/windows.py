"""Windows of N consecutive key presses, with the flight times between them.

The stream processor scores a user every N presses; a :class:`KeystrokeWindow`
holds exactly what a score may use: per press the class, the down time and the
dwell, and per consecutive pair the down-down and up-down flights.

A gap longer than ``pause_ms`` between two presses is a pause (reading,
thinking, switching task), not a digraph: its flights are NaN, and it only
counts towards the pause rate.

>>> from profiles.keystrokes.events import KeystrokePresses
>>> p = KeystrokePresses(
...     t_down_ms=np.array([0.0, 200.0, 350.0, 5000.0, 5180.0]),
...     dwell_ms=np.array([90.0, 80.0, 100.0, 85.0, np.nan]),
...     key_class=np.array([1, 3, 7, 0, 9], dtype=np.int8),
... )
>>> [w.n_presses for w in iter_windows(p, 2)], [w.n_presses for w in iter_windows(p, 3, tail=True)]
([2, 2], [3, 2])
>>> w = KeystrokeWindow.from_presses(p)
>>> w.dd_ms.tolist()
[200.0, 150.0, nan, 180.0]
>>> w.ud_ms.tolist()
[110.0, 70.0, nan, 95.0]
>>> w.pair_code.tolist()  # previous class * 13 + next class
[16, 46, 91, 9]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from profiles.keystrokes.events import N_CLASSES, KeystrokePresses

__all__ = ["PAUSE_MS", "KeystrokeWindow", "iter_windows", "windows_from_presses"]

# Digraph latencies above ~1 s reflect composing, not motor rhythm.
PAUSE_MS: Final = 1000.0


@dataclass(frozen=True, slots=True)
class KeystrokeWindow:
    """N presses and the N - 1 transitions between them."""

    presses: KeystrokePresses
    dd_ms: np.ndarray  # down-to-down flight, NaN across a pause
    ud_ms: np.ndarray  # up-to-down flight (negative on rollover), NaN across a pause or w/o up
    pair_code: np.ndarray  # int16: previous class * n_classes + next class
    n_pauses: int
    n_classes: int = N_CLASSES

    @property
    def n_presses(self) -> int:
        return len(self.presses)

    @property
    def dwell_ms(self) -> np.ndarray:
        return self.presses.dwell_ms

    @property
    def key_class(self) -> np.ndarray:
        return self.presses.key_class

    @classmethod
    def from_presses(
        cls, presses: KeystrokePresses, pause_ms: float = PAUSE_MS, n_classes: int = N_CLASSES
    ) -> KeystrokeWindow:
        dd, ud, pair_code, pause = _flights(
            presses.t_down_ms, presses.dwell_ms, presses.key_class, pause_ms, n_classes
        )
        return cls(
            presses=presses,
            dd_ms=dd,
            ud_ms=ud,
            pair_code=pair_code,
            n_pauses=int(pause.sum()),
            n_classes=n_classes,
        )


def _flights(
    t: np.ndarray,
    dwell: np.ndarray,
    key_class: np.ndarray,
    pause_ms: float,
    n_classes: int,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(down-down, up-down, pair code, is a pause) of consecutive presses; ``keep``
    selects the transitions to return (those that do not join two windows)."""
    dd = t[1:] - t[:-1]  # np.diff, without its Python-level overhead
    ud = t[1:] - (t[:-1] + dwell[:-1])
    k = key_class.astype(np.int16)
    pair_code = k[:-1] * n_classes + k[1:]
    if keep is not None:
        dd, ud, pair_code = dd[keep], ud[keep], pair_code[keep]
    pause = dd > pause_ms
    return np.where(pause, np.nan, dd), np.where(pause, np.nan, ud), pair_code, pause


def windows_from_presses(
    presses: Sequence[KeystrokePresses], pause_ms: float = PAUSE_MS, n_classes: int = N_CLASSES
) -> list[KeystrokeWindow]:
    """``[KeystrokeWindow.from_presses(p) for p in presses]``, the same arrays, computed
    in one pass (a window's flights are a dozen numpy calls on a few dozen presses).

    >>> p = KeystrokePresses(np.array([0.0, 200.0]), np.array([90.0, 80.0]),
    ...     np.array([1, 3], dtype=np.int8))
    >>> [w.dd_ms.tolist() for w in windows_from_presses([p, p[:1], p])]
    [[200.0], [], [200.0]]
    """
    if len(presses) <= 1 or any(len(p) == 0 for p in presses):
        return [KeystrokeWindow.from_presses(p, pause_ms, n_classes) for p in presses]
    sizes = np.array([len(p) for p in presses])
    # Flights of consecutive presses, less those that would join two windows.
    within = np.ones(sizes.sum() - 1, dtype=bool)
    within[sizes.cumsum()[:-1] - 1] = False
    dd, ud, pair_code, pause = _flights(
        np.concatenate([p.t_down_ms for p in presses]),
        np.concatenate([p.dwell_ms for p in presses]),
        np.concatenate([p.key_class for p in presses]),
        pause_ms,
        n_classes,
        within,
    )
    flights = sizes - 1
    pauses = np.bincount(np.arange(sizes.size).repeat(flights), pause, sizes.size)
    cuts = flights.cumsum()[:-1]
    return [
        KeystrokeWindow(p, d, u, c, int(n), n_classes)
        for p, d, u, c, n in zip(
            presses,
            np.split(dd, cuts),
            np.split(ud, cuts),
            np.split(pair_code, cuts),
            pauses,
            strict=True,
        )
    ]


def iter_windows(
    presses: KeystrokePresses,
    n_presses: int,
    pause_ms: float = PAUSE_MS,
    n_classes: int = N_CLASSES,
    tail: bool = False,
) -> Iterator[KeystrokeWindow]:
    """Consecutive, non-overlapping windows of ``n_presses``.

    A shorter tail is left out, unless ``tail``: then it is one last, shorter window
    (if it has the two presses a flight needs), so that learning sees every press.
    """
    if n_presses < 2:
        raise ValueError("a window needs at least two presses")
    stop = len(presses) if tail else len(presses) - n_presses + 1
    for start in range(0, stop, n_presses):
        part = presses[start : start + n_presses]
        if len(part) >= 2:
            yield KeystrokeWindow.from_presses(part, pause_ms=pause_ms, n_classes=n_classes)
