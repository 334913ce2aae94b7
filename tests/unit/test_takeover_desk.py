"""A chimeric desk: one person's typing and another's pointing, windows alternating."""

from __future__ import annotations

import numpy as np

from profiles.evaluation.takeover import Account, Segment, desk_account, interleave
from profiles.keystrokes import KeystrokeEvents
from profiles.mouse import MouseEvents


def _keys(n: int, t0: float) -> KeystrokeEvents:
    t = t0 + np.arange(n, dtype=np.float64) * 100.0
    return KeystrokeEvents(t, np.arange(n) % 2 == 0, np.zeros(n, np.int8))


def _mouse(n: int, t0: float) -> MouseEvents:
    t = t0 + np.arange(n, dtype=np.float64) * 20.0
    z = np.zeros(n, np.int32)
    return MouseEvents(t, z, z, np.zeros(n, np.int8), np.zeros(n, np.int8))


def _seg(session: str, windows: list) -> Segment:
    return Segment(session, tuple(windows))


def test_windows_alternate_and_the_longer_segment_goes_on_alone() -> None:
    k = _seg("facebook", [_keys(4, 0.0), _keys(4, 5000.0), _keys(4, 10000.0)])
    m = _seg("session_1", [_mouse(3, 0.0)])
    desk = interleave(k, m)
    assert desk.session == "facebook|session_1"
    kinds = [type(w).__name__ for w in desk.windows]
    assert kinds == ["KeystrokeEvents", "MouseEvents", "KeystrokeEvents", "KeystrokeEvents"]
    assert desk.events == k.events + m.events


def test_desk_account_pairs_segments_in_order() -> None:
    typist = Account(
        "ann",
        enroll=(_seg("facebook", [_keys(4, 0.0)]), _seg("instagram", [_keys(4, 0.0)])),
        genuine=(_seg("facebook#heldout", [_keys(4, 0.0)]),),
        attack=(_seg("facebook", [_keys(4, 0.0)] * 2),),
    )
    pointer = Account(
        "user7",
        enroll=(_seg("s1", [_mouse(3, 0.0)]), _seg("s2", [_mouse(3, 0.0)]), _seg("s3", [])),
        genuine=(_seg("s4", [_mouse(3, 0.0)] * 3),),
        attack=(_seg("s4", [_mouse(3, 0.0)] * 3),),
    )
    desk = desk_account(typist, pointer)
    assert desk.name == "ann+user7"
    assert [s.session for s in desk.enroll] == ["facebook|s1", "instagram|s2", "s3"]
    assert [len(s.windows) for s in desk.genuine] == [4]
    assert [len(s.windows) for s in desk.attack] == [5]
    # Nothing of either person is lost or duplicated.
    assert sum(s.events for s in desk.enroll) == sum(
        s.events for s in typist.enroll + pointer.enroll
    )
