"""What a profile keeps per modality: typing (``KeyboardState``) and pointing (``MouseState``).

Each holds its model, its calibration ring, the rolling context of recent scores,
what is carried to the next window, the summary that words the reasons, and the
counts enrolment is decided on. :mod:`profiles.user` drives them;
:mod:`profiles.profile_bytes` encodes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from profiles.background import Background
from profiles.calibration import GenuineQuantile
from profiles.carryover import no_mouse
from profiles.detectors.typed_histogram_ratio import TypedHistogramRatio
from profiles.keystrokes import KeystrokePresses, KeystrokeProfile
from profiles.mouse import MouseEvents
from profiles.reasons import KEYBOARD_SUMMARY, MOUSE_SUMMARY, EnrolmentSummary, RunningSummary

#: Longest session id stored as it is (UTF-8 bytes); a longer one is kept as a digest
#: (33 characters). The collectors' ids are 32 hex characters. 48, not 64 as up to
#: cadence-profile-3: the per-type mouse counts took the bytes (``max_state_bytes``).
MAX_SESSION_BYTES: Final = 48


@dataclass(slots=True)
class KeyboardState:
    model: KeystrokeProfile
    recent: KeystrokePresses  # last presses, times relative to the newest
    calibration: GenuineQuantile = field(default_factory=GenuineQuantile)
    summary: RunningSummary = field(
        default_factory=lambda: RunningSummary.zeros(len(KEYBOARD_SUMMARY))
    )
    presses: int = 0
    sessions: int = 0
    last_t_ms: float = 0.0  # time of the newest remembered press (``recent`` is relative to it)
    cells: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float16))  # recent scores
    unsampled: float = 0.0  # fresh evidence (contexts) learned since the ring's last entry
    session: str = ""  # the session of the last window with presses
    # The owner as enrolled: each window's summary quantities averaged with equal weight
    # over every window learned while enrolling, frozen once the modality is active.
    anchor: EnrolmentSummary = field(
        default_factory=lambda: EnrolmentSummary.zeros(len(KEYBOARD_SUMMARY))
    )


@dataclass(slots=True)
class MouseState:
    model: TypedHistogramRatio
    recent: np.ndarray  # float32 scores of the last actions
    tail: MouseEvents  # events after the last finished action, carried to the next window
    calibration: GenuineQuantile = field(default_factory=GenuineQuantile)
    summary: RunningSummary = field(
        default_factory=lambda: RunningSummary.zeros(len(MOUSE_SUMMARY))
    )
    actions: int = 0
    sessions: int = 0
    unsampled: float = 0.0
    session: str = ""  # the session of the last window with pointer events
    anchor: EnrolmentSummary = field(
        default_factory=lambda: EnrolmentSummary.zeros(len(MOUSE_SUMMARY))
    )


def new_mouse_state(background: Background, calibration_size: int) -> MouseState:
    """The pointing state of a profile that has seen no pointing yet."""
    return MouseState(
        TypedHistogramRatio(background.mouse),
        np.zeros(0, np.float32),
        no_mouse(),
        GenuineQuantile(calibration_size),
    )


def session_key(session: str) -> str:
    """The session as the profile keeps it: only equality with the next window's
    session matters, so an id longer than ``MAX_SESSION_BYTES`` is kept as a digest
    (32 hex characters) and the state stays bounded whatever the wire carries."""
    raw = session.encode()
    if len(raw) <= MAX_SESSION_BYTES:
        return session
    return "#" + hashlib.blake2b(raw, digest_size=16).hexdigest()
