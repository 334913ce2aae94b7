"""From a closed window of wire events to a verdict, through the user's profile.

This is the only place where the wire vocabulary (``collectors.wire``) meets the
profile library's inputs (numpy arrays), so both sides stay independent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from collectors.wire import KeyEvent, MouseEvent
from profiles.background import Background
from profiles.keystrokes import KeystrokeEvents
from profiles.mouse import Button, MouseEvents, State
from profiles.user import MODEL_VERSION, EnrollmentPolicy, UserProfile
from streams.verdict import Verdict, verdict_id
from streams.windows import Window


@cache
def background() -> Background:
    """The shared population model: the ``CADENCE_BACKGROUND`` file, else the shipped one."""
    path = os.environ.get("CADENCE_BACKGROUND")
    if path:
        return Background.from_bytes(Path(path).read_bytes())
    return Background.default()


@cache
def enrollment_policy() -> EnrollmentPolicy:
    env = os.environ
    defaults = EnrollmentPolicy()
    return EnrollmentPolicy(
        min_presses=int(env.get("CADENCE_ENROLL_MIN_PRESSES", defaults.min_presses)),
        min_actions=int(env.get("CADENCE_ENROLL_MIN_ACTIONS", defaults.min_actions)),
        min_sessions=int(env.get("CADENCE_ENROLL_MIN_SESSIONS", defaults.min_sessions)),
    )


def keystroke_events(events: list[KeyEvent]) -> KeystrokeEvents:
    return KeystrokeEvents(
        t_ms=np.fromiter((e.t_ms for e in events), np.float64, len(events)),
        is_down=np.fromiter((e.kind == "kd" for e in events), bool, len(events)),
        key_class=np.fromiter((e.key_class for e in events), np.int8, len(events)),
    )


def mouse_events(events: list[MouseEvent]) -> MouseEvents:
    n = len(events)
    button = np.zeros(n, np.int8)
    state = np.zeros(n, np.int8)
    held = 0
    for i, e in enumerate(events):
        if e.kind == "md":
            button[i], state[i], held = e.button, State.PRESSED, e.button
        elif e.kind == "mu":
            button[i], state[i], held = e.button, State.RELEASED, 0
        elif e.kind == "ms":
            button[i], state[i] = Button.SCROLL, State.DOWN if e.dy < 0 else State.UP
        elif held:
            button[i], state[i] = held, State.DRAG
    return MouseEvents(
        t_ms=np.fromiter((e.t_ms for e in events), np.float64, n),
        x=np.fromiter((e.x for e in events), np.int32, n),
        y=np.fromiter((e.y for e in events), np.int32, n),
        button=button,
        state=state,
    )


def load_profile(data: bytes) -> UserProfile:
    if not data:
        return UserProfile(background(), enrollment_policy())
    return UserProfile.from_bytes(data, background(), enrollment_policy())


def judge_window(
    window: Window[Any], profile_bytes: bytes, now_ms: Callable[[], float] | None = None
) -> tuple[Verdict, bytes]:
    """Assess ``window`` against the stored profile; return the verdict and the new profile."""
    profile = load_profile(profile_bytes)
    assessment = profile.assess(
        keystroke_events(window.key_events) if window.key_events else None,
        mouse_events(window.mouse_events) if window.mouse_events else None,
        session=window.session,
    )
    verdict = Verdict(
        verdict_id=verdict_id(
            window.user, window.device, window.session, window.first_seq, window.last_seq
        ),
        user=window.user,
        device=window.device,
        session=window.session,
        window_start_ms=window.wall_start_ms,
        window_end_ms=window.wall_end_ms,
        keyboard_score=assessment.keyboard_score,
        mouse_score=assessment.mouse_score,
        trust=assessment.trust,
        level=assessment.level,
        reasons=assessment.reasons,
        enrollment=assessment.enrollment,
        model_version=MODEL_VERSION,
        emitted_at_ms=now_ms() if now_ms else time.time() * 1000.0,
        events=window.events,
    )
    return verdict, profile.to_bytes()
