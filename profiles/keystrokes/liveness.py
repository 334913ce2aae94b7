"""Typing too regular for a person: the timing of a script or a key injector.

A person's key hold times and the intervals between their presses vary by tens of
milliseconds from one press to the next; a script (``xdotool type``, pynput's
``Controller``, a USB injector) repeats the same hold and the same interval, to the
resolution of its timer. The profile's histograms score each press on its own, so a
script that holds keys for the owner's typical time would look like the owner, and its
windows, learned, would narrow the profile to one point. A window whose typing is
mechanical is therefore judged but never learned, and says so.

The spread is measured robustly (1.4826 x the median absolute deviation, the standard
deviation of a normal sample), so that a few presses paired across a rollover, or one
pause, do not hide a metronome. The bound is far from people: over the 4 090
five-second windows of 10 or more presses in the free-text recordings (22 people,
``../shared/datasets/keystrokes-freetext``), the smallest spread of the hold times was
4.8 ms (1 % of windows below 7.3 ms) and of the press-to-press intervals 15.4 ms (1 %
below 24.5 ms); a script's are below :data:`MAX_MECHANICAL_SD_MS`, a round 2 ms that
leaves room for a 1 ms clock and USB polling jitter. A script that draws its timing at
random is not caught here: its windows are judged by the profile like anyone else's.

>>> t = np.arange(12) * 150.0
>>> script = KeystrokeEvents(np.r_[t, t + 80.0], np.r_[[True] * 12, [False] * 12],
...     np.zeros(24, np.int8))
>>> mechanical_typing(script)
'typing too regular for a person (key hold sd 0.0 ms over 12 presses), not learned'
>>> rng = np.random.default_rng(0)
>>> down = np.cumsum(rng.lognormal(np.log(150), 0.4, 12))
>>> hold = rng.lognormal(np.log(90), 0.25, 12)
>>> person = KeystrokeEvents(np.r_[down, down + hold], script.is_down, script.key_class)
>>> mechanical_typing(person) is None
True
>>> steady = KeystrokeEvents(np.r_[t, t + hold], script.is_down, script.key_class)
>>> mechanical_typing(steady)  # the owner's kind of holds, a metronome's intervals
'typing too regular for a person (press interval sd 0.0 ms over 12 presses), not learned'
>>> mechanical_typing_many([person, steady]) == [None, mechanical_typing(steady)]
True
>>> float(robust_sd(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))) == 1.4826 * float(np.median([2, 1, 0, 1, 97]))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from profiles.keystrokes.events import (
    KeystrokeEvents,
    KeystrokePresses,
    pair_presses,
    pair_presses_many,
)

#: Presses a window needs before its regularity says anything.
MIN_PRESSES: Final = 10
#: Below this spread (robust standard deviation, ms) of hold times or of press-to-press intervals, the
#: timing is a machine's (see the module docstring for the people's figures).
MAX_MECHANICAL_SD_MS: Final = 2.0


def mechanical_typing(events: KeystrokeEvents) -> str | None:
    """Why the typing of this window is too regular for a person, or None if it is not
    (or there are fewer than :data:`MIN_PRESSES` presses to tell)."""
    return _judge(pair_presses(events))


def mechanical_typing_many(windows: Sequence[KeystrokeEvents]) -> list[str | None]:
    """``[mechanical_typing(w) for w in windows]``, the presses paired in one pass."""
    return [_judge(p) for p in pair_presses_many(windows)]


def _judge(presses: KeystrokePresses) -> str | None:
    if len(presses) < MIN_PRESSES:
        return None
    hold = presses.dwell_ms[np.isfinite(presses.dwell_ms)]
    if hold.size >= MIN_PRESSES and (sd := robust_sd(hold)) < MAX_MECHANICAL_SD_MS:
        return _reason("key hold", sd, hold.size)
    interval = np.diff(np.sort(presses.t_down_ms))
    if (sd := robust_sd(interval)) < MAX_MECHANICAL_SD_MS:
        return _reason("press interval", sd, len(presses))
    return None


def robust_sd(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the standard deviation of a normal
    sample, unmoved by a few outliers. (Two sorts: ``np.median`` costs several times
    more on the few dozen values of a window.)"""
    ordered = np.sort(values)
    n = ordered.size
    median = 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])
    deviations = np.sort(np.abs(ordered - median))
    return 1.4826 * 0.5 * float(deviations[(n - 1) // 2] + deviations[n // 2])


#: How the reason of a mechanical window starts (a verdict's readers may match on it).
REASON_PREFIX: Final = "typing too regular for a person"


def _reason(what: str, sd_ms: float, presses: int) -> str:
    return f"{REASON_PREFIX} ({what} sd {sd_ms:.1f} ms over {presses} presses), not learned"
