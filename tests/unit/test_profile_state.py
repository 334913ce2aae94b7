"""A profile's bytes are its whole state: restoring them never changes a later verdict.

The worker keeps profiles in memory and persists ``to_bytes()`` after every window; after
a crash it restores them from those bytes. Both must judge every later window alike.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from collectors.simulate import Takeover, Workload
from profiles.background import Background
from profiles.keystrokes import KeystrokeEvents
from profiles.mouse import MouseEvents
from profiles.user import EnrollmentPolicy, UserProfile
from streams.judge import keystroke_events, mouse_events
from streams.windows import Cursor, Windower

# The demo's short enrolment: profiles turn active within a few simulated minutes.
POLICY = EnrollmentPolicy(min_presses=200, min_actions=40, min_sessions=1)
Window = tuple[KeystrokeEvents | None, MouseEvents | None, str]


@cache
def simulated_windows() -> dict[str, list[Window]]:
    """Per user, the windows a worker would judge: the demo's people, one taken over."""
    workload = Workload(users=5, seed=7, takeovers=[Takeover(user_index=4, at_s=150.0)])
    windower: Windower[None] = Windower(window_ms=5000.0)
    cursors: dict[str, dict[str, Cursor]] = defaultdict(dict)
    out: dict[str, list[Window]] = defaultdict(list)
    for _, batch in workload.batches(until_s=480.0):
        for w in windower.add(batch, cursors[batch.user], token=None).closed:
            keys = keystroke_events(w.key_events) if w.key_events else None
            mouse = mouse_events(w.mouse_events) if w.mouse_events else None
            out[w.user].append((keys, mouse, w.session))
    return dict(out)


def test_a_profile_restored_after_any_window_judges_the_next_ones_exactly() -> None:
    bg = Background.default()
    levels: set[str] = set()
    both_active = 0
    for windows in simulated_windows().values():
        kept = UserProfile(bg, POLICY)  # never serialised, as in a worker that keeps running
        restored = UserProfile(bg, POLICY)  # rebuilt from its bytes before every window
        for keys, mouse, session in windows:
            restored = UserProfile.from_bytes(restored.to_bytes(), bg, POLICY)
            a = kept.assess(keys, mouse, session=session)
            b = restored.assess(keys, mouse, session=session)
            assert a == b
            assert kept.to_bytes() == restored.to_bytes()
            levels.add(a.level)
        both_active += kept.keyboard_active() and kept.mouse_active()
    # What is compared is not a profile at rest: both modalities judge, and the trust
    # moved all the way (the taken-over account), so learning was also gated.
    assert both_active and {"trusted", "impostor"} <= levels


def test_state_stays_small() -> None:
    bg = Background.default()
    sizes = []
    for windows in simulated_windows().values():
        p = UserProfile(bg, POLICY)
        for keys, mouse, session in windows:
            p.assess(keys, mouse, session=session)
            sizes.append(len(p.to_bytes()))
    assert max(sizes) <= 16 * 1024
    # A user who never typed or pointed stores neither model nor ring.
    assert len(UserProfile(bg).to_bytes()) < 300


def test_a_profile_stored_by_the_previous_format_is_read_and_judges_as_before() -> None:
    # Written by the code of cadence-profile-3 / format CUP2: a profile, the window that
    # followed, and what that code's profile restored from these bytes made of it.
    f = np.load(Path(__file__).parent / "data" / "profile-cup2.npz", allow_pickle=False)
    data = f["profile"].tobytes()
    assert data[:4] == b"CUP2"
    bg = Background.default()
    policy = EnrollmentPolicy(
        min_presses=200, min_actions=40, min_sessions=0, min_calibration=8, calibration_size=32
    )
    p = UserProfile.from_bytes(data, bg, policy)
    keys = KeystrokeEvents(f["k_t"], f["k_down"], f["k_class"])
    mouse = MouseEvents(f["m_t"], f["m_x"], f["m_y"], f["m_button"], f["m_state"])
    a = p.assess(keys, mouse, session=str(f["session"]))
    got = [a.keyboard_score, a.mouse_score, a.trust, a.keyboard_raw, a.mouse_raw]
    assert got == f["expected"].tolist()
    assert (a.level, a.learned) == (str(f["level"]), bool(f["learned"]))
    # Written again, it is the current format and reads back to the same state.
    again = p.to_bytes()
    assert again[:4] == b"CUP3" and UserProfile.from_bytes(again, bg, policy).to_bytes() == again


def test_foreign_bytes_are_refused() -> None:
    with pytest.raises(ValueError):
        UserProfile.from_bytes(b"CUP0" + bytes(64), Background.default())


def test_each_modality_counts_the_sessions_it_is_used_in() -> None:
    # Before, sessions were counted only by the modality of a session's first window: a
    # user who always pointed first at login never finished enrolling their typing.
    t = np.arange(20) * 150.0
    keys = KeystrokeEvents(
        np.sort(np.r_[t, t + 80.0]),
        np.tile([True, False], 20),
        np.repeat(np.arange(20) % 6, 2).astype(np.int8),
    )
    n = 12
    mouse = MouseEvents(
        np.arange(n) * 20.0,
        (np.arange(n) * 10).astype(np.int32),
        np.zeros(n, np.int32),
        np.r_[np.zeros(n - 2), 1, 1].astype(np.int8),
        np.r_[np.zeros(n - 2), 1, 2].astype(np.int8),
    )
    p = UserProfile(Background.default())
    for session in ("monday", "tuesday"):
        p.assess(None, mouse, session=session)  # every session starts with pointing
        p.assess(keys, None, session=session)
        p.assess(keys, mouse, session=session)
    assert p.keyboard.sessions == p.mouse.sessions == 2
    again = UserProfile.from_bytes(p.to_bytes(), Background.default())
    assert (again.keyboard.session, again.mouse.session) == ("tuesday", "tuesday")
