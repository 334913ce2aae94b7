"""Keystroke dynamics on key classes: events -> presses -> windows -> per-user profile.

The stream processor's path, per user::

    presses = pair_presses(KeystrokeEvents(t_ms, is_down, key_class))
    for window in iter_windows(presses, n_presses=100):
        score = profile.score_one(window)  # higher = more anomalous
        profile.learn_one(window)          # when the window is trusted

with one :class:`KeystrokePopulation` shared by all profiles.
"""

from profiles.keystrokes.binning import window_cells
from profiles.keystrokes.events import (
    ERASE,
    MODIFIER,
    N_CLASSES,
    SPACE,
    KeystrokeEvents,
    KeystrokePresses,
    pair_presses,
    pair_presses_many,
)
from profiles.keystrokes.population import KeystrokePopulation
from profiles.keystrokes.profile import KeystrokeProfile
from profiles.keystrokes.windows import PAUSE_MS, KeystrokeWindow, iter_windows

__all__ = [
    "ERASE",
    "MODIFIER",
    "N_CLASSES",
    "PAUSE_MS",
    "SPACE",
    "KeystrokeEvents",
    "KeystrokePopulation",
    "KeystrokePresses",
    "KeystrokeProfile",
    "KeystrokeWindow",
    "iter_windows",
    "pair_presses",
    "pair_presses_many",
    "window_cells",
]
