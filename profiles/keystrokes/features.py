"""A fixed-length feature vector per window, for generic vector detectors.

The histogram profile (:mod:`profiles.keystrokes.profile`) uses every timing
event; this vector summarises a window in a few robust statistics instead, so
that any ``learn_one(x)``/``score_one(x)`` detector of :mod:`profiles.detectors`
can be tried on keystrokes. Timings enter as logarithms (noise grows with
duration) and as quantiles (robust to the stray long dwell or flight); a
statistic with no data in the window falls back to the window's overall one,
so the vector never holds NaN.

>>> from profiles.keystrokes.events import KeystrokePresses
>>> from profiles.keystrokes.windows import KeystrokeWindow
>>> w = KeystrokeWindow.from_presses(KeystrokePresses(
...     t_down_ms=np.arange(10) * 200.0, dwell_ms=np.full(10, 100.0),
...     key_class=np.array([1, 3, 7, 0, 4, 7, 9, 9, 2, 5], dtype=np.int8)))
>>> x = window_features(w)
>>> x.shape == (len(FEATURE_NAMES),)
True
>>> round(float(np.exp(x[FEATURE_NAMES.index("dd_q50")])), 1)
200.0
>>> float(x[FEATURE_NAMES.index("erase_rate")])
0.2
"""

from __future__ import annotations

from typing import Final

import numpy as np

from profiles.keystrokes.events import ERASE, MODIFIER, SPACE
from profiles.keystrokes.windows import KeystrokeWindow

__all__ = ["FEATURE_NAMES", "window_features"]

# Letter zones are codes 0-5 (left hand 0-2, right hand 3-5) in the class table.
_N_ZONES: Final = 6

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "dwell_letter_q50",
    "dwell_space_q50",
    "dwell_erase_q50",
    "dwell_modifier_q50",
    "dwell_q25",
    "dwell_q50",
    "dwell_q75",
    "dd_q10",
    "dd_q25",
    "dd_q50",
    "dd_q75",
    "dd_q90",
    "ud_q10",
    "ud_q50",
    "ud_q90",
    "dd_same_hand_q50",
    "dd_cross_hand_q50",
    "dd_letter_space_q50",
    "dd_space_letter_q50",
    "dd_to_erase_q50",
    "dd_erase_erase_q50",
    "rollover_rate",
    "pause_rate",
    "erase_rate",
    "modifier_rate",
)


def _q(x: np.ndarray, q: float | list[float], fallback: float) -> np.ndarray:
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.full(np.shape(q), fallback)
    return np.asarray(np.quantile(x, q))


def window_features(window: KeystrokeWindow) -> np.ndarray:
    """The :data:`FEATURE_NAMES` statistics of one window (float64)."""
    k = window.key_class
    dwell = window.dwell_ms
    dd, ud = window.dd_ms, window.ud_ms
    dwell_all = _q(dwell, [0.25, 0.5, 0.75], np.nan)
    dwell_med = float(dwell_all[1]) if not np.isnan(dwell_all[1]) else 100.0
    dd_all = _q(dd, [0.1, 0.25, 0.5, 0.75, 0.9], 300.0)
    dd_med = float(dd_all[2])
    ud_all = _q(ud, [0.1, 0.5, 0.9], dd_med - dwell_med)

    letter = k < _N_ZONES
    prev, nxt = k[:-1], k[1:]
    both = letter[:-1] & letter[1:]
    same_hand = both & ((prev < 3) == (nxt < 3))
    groups = (
        same_hand,
        both & ~same_hand,
        letter[:-1] & (nxt == SPACE),
        (prev == SPACE) & letter[1:],
        nxt == ERASE,
        (prev == ERASE) & (nxt == ERASE),
    )
    n = max(window.n_presses, 1)
    n_flights = max(window.n_presses - 1, 1)
    vals = np.concatenate(
        [
            np.log(
                [
                    _q(dwell[letter], 0.5, dwell_med),
                    _q(dwell[k == SPACE], 0.5, dwell_med),
                    _q(dwell[k == ERASE], 0.5, dwell_med),
                    _q(dwell[k == MODIFIER], 0.5, dwell_med),
                ]
            ),
            np.log(np.nan_to_num(dwell_all, nan=dwell_med)),
            np.log(np.maximum(dd_all, 1.0)),
            ud_all / 100.0,  # may be negative: linear, in units of 100 ms
            np.log(np.maximum([_q(dd[g], 0.5, dd_med) for g in groups], 1.0)),
            [
                np.mean(ud[~np.isnan(ud)] < 0) if np.any(~np.isnan(ud)) else 0.0,
                window.n_pauses / n_flights,
                np.mean(k == ERASE) if n else 0.0,
                np.mean(k == MODIFIER) if n else 0.0,
            ],
        ]
    )
    return vals.astype(np.float64)
