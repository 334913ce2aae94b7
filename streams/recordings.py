"""Recordings (``collectors.datasets``) as profile inputs (``profiles``).

The dataset readers and the profile library do not know each other; this module
maps one to the other by name, for the evaluation, background-fitting and
takeover commands.
"""

from __future__ import annotations

import numpy as np

from collectors.datasets.balabit import BUTTONS, STATES, BalabitSession
from collectors.datasets.freetext import FreeTextSession
from profiles.keystrokes import KeystrokeEvents
from profiles.mouse import Button, MouseEvents, State

_BUTTON_NAMES = {
    "NoButton": "NONE",
    "Left": "LEFT",
    "Right": "RIGHT",
    "Middle": "MIDDLE",
    "Scroll": "SCROLL",
    "XButton": "X",
}
_BUTTON_MAP = np.array([Button[_BUTTON_NAMES.get(n, "NONE")] for n in BUTTONS], np.int8)
_STATE_MAP = np.array([State[n.upper()] for n in STATES], np.int8)


def balabit_to_mouse_events(session: BalabitSession) -> MouseEvents:
    return MouseEvents(
        session.t_ms, session.x, session.y, _BUTTON_MAP[session.button], _STATE_MAP[session.state]
    )


def freetext_to_keystroke_events(session: FreeTextSession) -> KeystrokeEvents:
    return KeystrokeEvents(session.t_ms, session.is_down, session.key_class)
