"""From a closed window of wire events to a verdict, through the user's profile.

This is the only place where the wire vocabulary (``collectors.wire``) meets the
profile library's inputs (numpy arrays), so both sides stay independent.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np

from collectors.wire import FLAG_INJECTED, KeyEvent, MouseEvent
from profiles.background import Background
from profiles.keystrokes import KeystrokeEvents
from profiles.keystrokes.liveness import REASON_PREFIX as TOO_REGULAR
from profiles.keystrokes.liveness import mechanical_typing_many
from profiles.mouse import Button, MouseEvents, State
from profiles.user import MODEL_VERSION, Assessment, EnrollmentPolicy, UserProfile, assess_many
from streams.env import SettingError, env_number
from streams.verdict import Verdict, verdict_id
from streams.windows import Window

log = logging.getLogger(__name__)


@cache
def background() -> Background:
    """The shared population model: the ``CADENCE_BACKGROUND`` file, else the shipped one.

    Raises :class:`streams.env.SettingError` naming the variable when the file cannot
    be read or is not a background model.
    """
    path = os.environ.get("CADENCE_BACKGROUND")
    if path:
        try:
            return Background.from_bytes(Path(path).read_bytes())
        except OSError as exc:
            raise SettingError(f"CADENCE_BACKGROUND={path!r}: {exc.strerror}") from None
        except struct.error:
            # Shorter than the model's header (an empty or truncated file).
            raise SettingError(f"CADENCE_BACKGROUND={path!r}: too short for a model") from None
        except ValueError as exc:
            raise SettingError(f"CADENCE_BACKGROUND={path!r}: {exc}") from None
    return Background.default()


@cache
def enrollment_policy() -> EnrollmentPolicy:
    defaults = EnrollmentPolicy()
    return EnrollmentPolicy(
        min_presses=env_number("CADENCE_ENROLL_MIN_PRESSES", defaults.min_presses, minimum=1),
        min_actions=env_number("CADENCE_ENROLL_MIN_ACTIONS", defaults.min_actions, minimum=1),
        min_sessions=env_number("CADENCE_ENROLL_MIN_SESSIONS", defaults.min_sessions, minimum=1),
    )


def keystroke_events(events: list[KeyEvent]) -> KeystrokeEvents:
    # zip(*rows) transposes the event tuples in C; a window holds hundreds of events
    # and a generator per column cost more than the profile's own feature code.
    n = len(events)
    kinds, times, classes = list(zip(*events, strict=True))[:3] if n else ((), (), ())
    return KeystrokeEvents(
        t_ms=np.array(times, np.float64).reshape(n),
        is_down=np.fromiter(map("kd".__eq__, kinds), bool, n),
        key_class=np.array(classes, np.int8).reshape(n),
    )


_PRESSED, _RELEASED, _DRAG = int(State.PRESSED), int(State.RELEASED), int(State.DRAG)
_SCROLL, _DOWN, _UP = int(Button.SCROLL), int(State.DOWN), int(State.UP)
_OTHER_BUTTON = int(Button.X)


def mouse_events(events: list[MouseEvent], held: int = 0) -> MouseEvents:
    """A window's pointer events as the profile reads them; ``held`` is the button still
    down when the window opens (pressed in an earlier window: see :func:`held_button`)."""
    n = len(events)
    if not n:
        empty = np.zeros(0, np.int8)
        return MouseEvents(np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.int32), empty, empty)
    kinds, times, xs, ys, buttons, _, dys, _ = zip(*events, strict=True)
    # The held button is sequential state: one loop over plain lists, no numpy
    # element assignment (which costs more than the rest of the conversion).
    button = [0] * n
    state = [0] * n
    for i, kind in enumerate(kinds):
        if kind == "mm":
            if held:
                button[i], state[i] = held, _DRAG
        elif kind == "md":
            # Wire 0 is "other" (back, forward...), not profiles' NONE: it is no click.
            held = buttons[i] or _OTHER_BUTTON
            button[i], state[i] = held, _PRESSED
        elif kind == "mu":
            button[i], state[i], held = buttons[i] or _OTHER_BUTTON, _RELEASED, 0
        elif kind == "ms":
            button[i], state[i] = _SCROLL, _DOWN if dys[i] < 0 else _UP
        elif held:
            button[i], state[i] = held, _DRAG
    return MouseEvents(
        t_ms=np.array(times, np.float64),
        x=np.array(xs, np.int32),
        y=np.array(ys, np.int32),
        button=np.array(button, np.int8),
        state=np.array(state, np.int8),
    )


def load_profile(data: bytes | memoryview) -> tuple[UserProfile, bool]:
    """The stored profile, or a new one; the flag says a stored profile could not be used.

    A profile written by an incompatible model version (or damaged) cannot be read.
    Failing every window of that user would stop judging them for good, so the
    user enrolls again from scratch, and the worker counts and logs it.
    """
    shared, policy = background(), enrollment_policy()
    if data:
        try:
            return UserProfile.from_bytes(data, shared, policy), False
        except (MemoryError, RecursionError):
            raise  # the process, not the bytes: fail the window, keep the profile
        except Exception as exc:
            # Whatever the bytes make the reader raise: failing every window of the user
            # instead would stop judging them for good.
            log.warning("stored profile unusable (%r): the user enrolls again", exc)
            return UserProfile(shared, policy), True
    return UserProfile(shared, policy), False


def held_button(profile: UserProfile, session: str) -> int:
    """The button pressed and not yet released at the end of the pointer events the
    profile carries into ``session``'s next window (0: none). Without it, a drag whose
    press closed one window read as plain moves in the next, and the profile joined them
    into one point-and-click with the whole drag as its hold."""
    mouse = profile.mouse
    tail = mouse.tail
    if mouse.session != session or not len(tail):
        return 0  # a new session starts with no carried events
    state = tail.state
    pressed = (state == _PRESSED).nonzero()[0]
    if not pressed.size or (state[pressed[-1] :] == _RELEASED).any():
        return 0
    return int(tail.button[pressed[-1]])


def judge_windows(
    windows: Sequence[Window[Any]],
    profiles: Sequence[UserProfile],
    now_ms: Callable[[], float] | None = None,
) -> list[Verdict]:
    """Assess each window with its user's profile (distinct users), which learns from
    it if trusted; all together, with the verdicts each window would get alone
    (:func:`profiles.user.assess_many`: the features of all windows computed at once,
    a fraction of the cost per window). If one window fails, the other profiles may
    be half updated too: the caller drops them all.
    """
    synthetic = [synthetic_events(w) for w in windows]
    keys = [keystroke_events(w.key_events) if w.key_events else None for w in windows]
    typed = [k for k in keys if k is not None]
    too_regular = iter(mechanical_typing_many(typed))
    mechanical = [next(too_regular) if k is not None else None for k in keys]
    assessments = assess_many(
        [
            (
                profile,
                k,
                mouse_events(w.mouse_events, held_button(profile, w.session))
                if w.mouse_events
                else None,
                w.session,
                # Input the OS marked as synthetic (a script, a remote-control tool), or
                # typed with a machine's regularity, is judged, never learned: it must
                # not become the owner's profile.
                not n and m is None,
            )
            for w, profile, k, n, m in zip(
                windows, profiles, keys, synthetic, mechanical, strict=True
            )
        ]
    )
    return [
        _verdict(w, a, now_ms, n, m)
        for w, a, n, m in zip(windows, assessments, synthetic, mechanical, strict=True)
    ]


#: How the reason of a window with OS-flagged input starts.
SYNTHETIC: Final = "input marked synthetic by the OS"


def machine_input(verdict: Verdict) -> str | None:
    """Why ``verdict``'s window was judged but not learned as a person's input:
    ``os_synthetic``, ``too_regular``, or None if it was a person's (as far as we tell)."""
    first = verdict.reasons[0] if verdict.reasons else ""
    if first.startswith(SYNTHETIC):
        return "os_synthetic"
    if first.startswith(TOO_REGULAR):
        return "too_regular"
    return None


def synthetic_events(window: Window[Any]) -> int:
    """Events of ``window`` the workstation's OS reported as injected."""
    return sum(1 for e in window.key_events if e.flags & FLAG_INJECTED) + sum(
        1 for e in window.mouse_events if e.flags & FLAG_INJECTED
    )


def _verdict(
    window: Window[Any],
    assessment: Assessment,
    now_ms: Callable[[], float] | None,
    synthetic: int = 0,
    mechanical: str | None = None,
) -> Verdict:
    reasons = assessment.reasons
    if mechanical is not None:
        reasons = (mechanical, *reasons[:2])
    if synthetic:
        note = f"{SYNTHETIC}: {synthetic} of {window.events} events, not learned"
        reasons = (note, *reasons[:2])
    return Verdict(
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
        reasons=reasons,
        enrollment=assessment.enrollment,
        model_version=MODEL_VERSION,
        emitted_at_ms=now_ms() if now_ms else time.time() * 1000.0,
        events=window.events,
    )
