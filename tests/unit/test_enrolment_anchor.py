"""The enrolment anchor: input drifting slowly away from the enrolled owner stops being learned."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from profiles.background import Background
from profiles.enrollment import EnrollmentPolicy
from profiles.keystrokes import KeystrokeEvents
from profiles.reasons import KEYBOARD_SUMMARY
from profiles.user import UserProfile, within_anchor

POLICY = EnrollmentPolicy(min_presses=600, min_sessions=1, min_calibration=16)


def _typing(rng: np.random.Generator, t0: float, dwell_ms: float, n: int = 30) -> KeystrokeEvents:
    """``n`` presses of one 5-s window: dwell around ``dwell_ms``, flights around 120 ms."""
    down = t0 + np.cumsum(rng.lognormal(np.log(120.0), 0.3, n) + dwell_ms)
    up = down + rng.lognormal(np.log(dwell_ms), 0.2, n)
    t = np.r_[down, up]
    order = np.argsort(t, kind="stable")
    is_down = np.r_[np.ones(n, bool), np.zeros(n, bool)][order]
    key_class = np.tile(rng.integers(0, 6, n).astype(np.int8), 2)[order]
    return KeystrokeEvents(t[order], is_down, key_class)


def _drifted(policy: EnrollmentPolicy) -> tuple[UserProfile, list[bool]]:
    """Enrol on dwell ~100 ms, then move the dwell 1 % a window to ~300 ms and stay there."""
    rng = np.random.default_rng(7)
    p = UserProfile(Background.default(), policy)
    t = 0.0
    while p.enrollment != "active":
        p.assess(_typing(rng, t, 100.0), None, session="s")
        t += 10_000.0
    learned = []
    for i in range(160):
        dwell = 100.0 * 1.01 ** min(i, 110)  # 300 ms after 110 windows
        learned.append(p.assess(_typing(rng, t, dwell), None, session="s").learned)
        t += 10_000.0
    return p, learned


def test_a_slow_drift_away_from_the_enrolled_owner_stops_being_learned() -> None:
    p, learned = _drifted(POLICY)
    # The first steps are within what enrolment varied and are learned as before ...
    assert sum(learned[:10]) >= 8
    # ... but the profile is not walked to three times the owner's dwell.
    assert sum(learned[-50:]) == 0
    assert float(p.keyboard.summary.mean[0]) < 150.0
    # The anchor itself never moved after enrolment.
    assert 90.0 < float(p.keyboard.anchor.mean[0]) < 110.0


def test_without_the_anchor_the_same_drift_is_followed() -> None:
    # What the anchor bounds: gated learning alone follows the drift to its end.
    p, learned = _drifted(replace(POLICY, anchor_z=float("inf")))
    assert sum(learned[-50:]) >= 40
    assert float(p.keyboard.summary.mean[0]) > 250.0


def test_the_anchor_survives_the_bytes() -> None:
    p, _ = _drifted(POLICY)
    q = UserProfile.from_bytes(p.to_bytes(), Background.default(), POLICY)
    assert q.keyboard.anchor.n == p.keyboard.anchor.n > 16
    assert np.array_equal(q.keyboard.anchor.mean, p.keyboard.anchor.mean)
    assert np.array_equal(q.keyboard.anchor.var, p.keyboard.anchor.var)
    assert q.to_bytes() == p.to_bytes()


def test_a_quantity_that_never_varied_while_enrolling_does_not_stop_learning() -> None:
    # An owner who never erased while enrolling: erase rate 0 in every enrolment window.
    # Their first window with an erase must still be learned (no spread to judge it by).
    p, _ = _drifted(replace(POLICY, anchor_z=4.0))
    erase = KEYBOARD_SUMMARY.index("erase_rate")
    p.keyboard.anchor.mean[erase], p.keyboard.anchor.var[erase] = 0.0, 0.0
    usual = p.keyboard.anchor.mean.astype(np.float64).copy()
    usual[erase] = 0.1
    assert within_anchor(p.keyboard.anchor, usual, 4.0)
    usual[0] *= 3.0  # but a dwell three times the enrolled one is still beyond
    assert not within_anchor(p.keyboard.anchor, usual, 4.0)


def test_a_stored_count_at_its_largest_does_not_break_the_next_write() -> None:
    # A count is a uint32 in the state: a record holding its largest (damage that a CRC
    # cannot tell from a state, or a state written on purpose) decodes to a profile, so
    # that profile must judge and be written again; one more window made the count 2**32
    # and the write failed with struct.error, every window after, for good.
    rng = np.random.default_rng(3)
    p = UserProfile(Background.default(), POLICY)
    p.assess(_typing(rng, 0.0, 100.0), None, session="s")
    assert p.enrollment == "enrolling" and p.keyboard.anchor.n == 1
    p.keyboard.anchor.n = p.keyboard.summary.n = 0xFFFFFFFF
    q = UserProfile.from_bytes(p.to_bytes(), Background.default(), POLICY)
    assert q.assess(_typing(rng, 10_000.0, 100.0), None, session="s").learned
    again = UserProfile.from_bytes(q.to_bytes(), Background.default(), POLICY)
    assert again.keyboard.anchor.n == again.keyboard.summary.n == 0xFFFFFFFF


def _single_press(t0: float) -> KeystrokeEvents:
    """One key pressed alone in a window: a dwell, but no flight and no typing rate."""
    return KeystrokeEvents(np.array([t0, t0 + 90.0]), np.array([True, False]), np.ones(2, np.int8))


def test_the_anchor_is_the_equal_weight_mean_and_variance_of_the_windows_that_had_each() -> None:
    # A quantity a window lacks (NaN: no flight in a one-press window, no click hold in
    # a window of moves) is no value of it: not a zero, nor a variance of 1 (the empty
    # summary's), nor does it shift the weights of the windows that had it.
    rng = np.random.default_rng(5)
    xs = rng.normal([100.0, 220.0, 3.0, 0.05], [3.0, 4.0, 0.4, 0.01], (60, 4))
    xs[0, 1:3] = np.nan  # the first window lacks two quantities
    xs[rng.random((60, 4)) < 0.3] = np.nan  # and so do others, here and there
    anchor = UserProfile(Background.default(), POLICY).keyboard.anchor
    for x in xs:
        anchor.learn(x)
    assert anchor.n == 60
    np.testing.assert_allclose(anchor.mean, np.nanmean(xs, axis=0), rtol=1e-5)
    np.testing.assert_allclose(anchor.var, np.nanvar(xs, axis=0), rtol=1e-3)


def test_a_first_window_without_a_flight_does_not_widen_the_enrolled_flights() -> None:
    def enrolled(lead: bool) -> tuple[float, float]:
        rng = np.random.default_rng(7)
        p = UserProfile(Background.default(), POLICY)
        t = 0.0
        if lead:  # the session opens with one key pressed alone
            p.assess(_single_press(t), None, session="s")
            t += 10_000.0
        while p.enrollment != "active":
            p.assess(_typing(rng, t, 100.0), None, session="s")
            t += 10_000.0
        flight = KEYBOARD_SUMMARY.index("flight_ms")
        return float(p.keyboard.anchor.mean[flight]), float(np.sqrt(p.keyboard.anchor.var[flight]))

    (mean, sd), (lead_mean, lead_sd) = enrolled(False), enrolled(True)
    # The same typing, one press more: the same owner. It read as a flight of 0 ms,
    # which made the spread 46 ms instead of 4 (and z = 4 let 180 ms of drift through).
    assert abs(lead_mean - mean) < 2.0
    assert lead_sd < 1.5 * sd


def test_a_quantity_seen_in_few_enrolment_windows_is_not_checked() -> None:
    p, _ = _drifted(POLICY)
    a = p.keyboard.anchor
    rate = KEYBOARD_SUMMARY.index("typing_rate_per_s")
    a.mean[rate], a.var[rate] = 3.0, 0.01
    a.counts[rate] = 3  # a spread from three windows is mostly noise
    usual = a.mean.astype(np.float64).copy()
    usual[rate] = 6.0
    assert within_anchor(a, usual, 4.0)
    a.counts[rate] = 16
    assert not within_anchor(a, usual, 4.0)


def test_an_anchor_of_the_first_profile_6_layout_is_read_with_its_count_for_each() -> None:
    # The first cadence-profile-6 records held a count, the means and the variances per
    # modality (64 bytes), no count per quantity: read back, their anchors still bound.
    import struct
    import zlib

    p, _ = _drifted(POLICY)
    k, m = p.keyboard.anchor, p.mouse.anchor
    old = b"".join(
        struct.pack("<I", a.n)
        + a.mean.astype(np.float32).tobytes()
        + a.var.astype(np.float32).tobytes()
        for a in (k, m)
    )
    state = p.to_bytes()
    new = k.to_bytes() + m.to_bytes()
    at = state.index(struct.pack("<I", len(new)) + new)
    record = state[:at] + struct.pack("<I", len(old)) + old + struct.pack("<I", 4)
    record += struct.pack("<I", zlib.crc32(record))
    q = UserProfile.from_bytes(record, Background.default(), POLICY)
    assert q.keyboard.anchor.n == k.n and list(q.keyboard.anchor.counts) == [k.n] * 4
    assert np.array_equal(q.keyboard.anchor.mean, k.mean)
    assert np.array_equal(q.keyboard.anchor.var, k.var)
