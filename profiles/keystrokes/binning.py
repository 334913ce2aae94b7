"""Discretisation of a window's timings into histogram cells, one cell per event.

Every timing event of a window becomes one integer cell index
``kind * N_BINS + bin``, where the *kind* says what was timed and the *bin*
how long it took:

- kinds ``0 .. n_classes-1``: the dwell of a press of that class;
- then one kind per (previous class, next class) pair for the down-down flight;
- then one kind per pair for the up-down flight.

Bins are fixed (not learnt), so that every user's histogram and the population
histogram share cells and can be compared cell by cell. Dwell and down-down
bins are geometric, because timing noise grows with the duration; up-down
bins are linear because overlapping keys make them negative.

>>> from profiles.keystrokes.events import KeystrokePresses
>>> from profiles.keystrokes.windows import KeystrokeWindow
>>> w = KeystrokeWindow.from_presses(KeystrokePresses(
...     t_down_ms=np.array([0.0, 150.0]), dwell_ms=np.array([90.0, np.nan]),
...     key_class=np.array([1, 7], dtype=np.int8)))
>>> cells = window_cells(w)
>>> [(int(c) // N_BINS, int(c) % N_BINS) for c in cells]  # dwell of class 1, dd and ud of pair 1->7
[(1, 5), (33, 5), (202, 3)]
>>> n_kinds(13)
351
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from profiles.keystrokes.windows import KeystrokeWindow

__all__ = [
    "DD_EDGES_MS",
    "DWELL_EDGES_MS",
    "N_BINS",
    "UD_EDGES_MS",
    "n_kinds",
    "window_cells",
    "window_cells_many",
]

# Inner bin edges in ms; values below the first or above the last edge fall
# in the two outer bins. 11 edges -> 12 bins per kind.
DWELL_EDGES_MS: Final = np.geomspace(25.0, 400.0, 11)
DD_EDGES_MS: Final = np.geomspace(40.0, 1000.0, 11)
UD_EDGES_MS: Final = np.linspace(-150.0, 800.0, 11)
N_BINS: Final = 12


def n_kinds(n_classes: int) -> int:
    """Number of timed kinds: dwell per class, then down-down and up-down per class pair."""
    return n_classes + 2 * n_classes * n_classes


def window_cells(window: KeystrokeWindow) -> np.ndarray:
    """Cell index (int64) of every usable timing event of ``window``; NaN timings are skipped."""
    cells = _cells(
        window.dwell_ms,
        window.key_class,
        window.pair_code,
        window.dd_ms,
        window.ud_ms,
        window.n_classes,
    )
    return np.concatenate([c for c, _ in cells])


def _cells(
    dwell: np.ndarray,
    key_class: np.ndarray,
    pair_code: np.ndarray,
    dd: np.ndarray,
    ud: np.ndarray,
    nc: int,
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(cells, which of the inputs they come from) for dwells, down-down and up-down
    flights; NaN timings have no cell."""
    # Methods rather than np.searchsorted: the same search without its Python wrapper
    # (a window is a few dozen presses; the per-call overhead is the cost).
    ok = ~np.isnan(dwell)
    dwell_cells = key_class[ok].astype(np.int64) * N_BINS + DWELL_EDGES_MS.searchsorted(dwell[ok])
    pair = pair_code.astype(np.int64)
    ok_dd = ~np.isnan(dd)
    dd_cells = (nc + pair[ok_dd]) * N_BINS + DD_EDGES_MS.searchsorted(dd[ok_dd])
    ok_ud = ~np.isnan(ud)
    ud_cells = (nc + nc * nc + pair[ok_ud]) * N_BINS + UD_EDGES_MS.searchsorted(ud[ok_ud])
    return (dwell_cells, ok), (dd_cells, ok_dd), (ud_cells, ok_ud)


def window_cells_many(windows: Sequence[KeystrokeWindow]) -> list[np.ndarray]:
    """``[window_cells(w) for w in windows]``, the same cells in the same order, computed
    in one pass over all the windows.

    >>> from profiles.keystrokes.events import KeystrokePresses
    >>> w = KeystrokeWindow.from_presses(KeystrokePresses(np.array([0.0, 150.0]),
    ...     np.array([90.0, np.nan]), np.array([1, 7], dtype=np.int8)))
    >>> [c.tolist() for c in window_cells_many([w, w])] == [window_cells(w).tolist()] * 2
    True
    """
    if len(windows) <= 1 or len({w.n_classes for w in windows}) > 1:
        return [window_cells(w) for w in windows]
    ids = np.arange(len(windows))
    press_of = ids.repeat([w.n_presses for w in windows])
    flight_of = ids.repeat([w.dd_ms.size for w in windows])
    (dwell_cells, ok), (dd_cells, ok_dd), (ud_cells, ok_ud) = _cells(
        np.concatenate([w.dwell_ms for w in windows]),
        np.concatenate([w.key_class for w in windows]),
        np.concatenate([w.pair_code for w in windows]),
        np.concatenate([w.dd_ms for w in windows]),
        np.concatenate([w.ud_ms for w in windows]),
        windows[0].n_classes,
    )
    # Back to each window's order: its dwells, then its down-down, then its up-down cells.
    window_of = np.concatenate([press_of[ok], flight_of[ok_dd], flight_of[ok_ud]])
    order = window_of.argsort(kind="stable")
    cells = np.concatenate([dwell_cells, dd_cells, ud_cells])[order]
    return np.split(cells, np.bincount(window_of, minlength=len(windows)).cumsum()[:-1])
