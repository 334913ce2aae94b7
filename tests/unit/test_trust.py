"""Trust and calibration behaviour, and the user profile's bytes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.background import Background
from profiles.calibration import GenuineQuantile
from profiles.keystrokes import KeystrokeEvents
from profiles.trust import DEFAULT_POLICY, LEVELS, TrustPolicy, TrustScore, expected_genuine_change
from profiles.user import EnrollmentPolicy, UserProfile


def test_genuine_drift_is_positive_with_margin() -> None:
    p = DEFAULT_POLICY
    # Numerically, over q uniform on [0, 1], against the closed form.
    q = (np.arange(100_000) + 0.5) / 100_000
    mean = float(np.mean([TrustScore(policy=p).delta(x) for x in q[::100]]))
    assert abs(mean - expected_genuine_change(p)) < 0.1
    gain = p.reward * p.threshold * 0.75
    assert gain >= 2 * p.penalty * (1 - p.threshold) / 2 - 1e-9  # reward twice the loss


def test_one_context_at_the_top_reaches_impostor() -> None:
    t = TrustScore()
    for _ in range(10):  # ten windows, each a tenth of a context
        t.update(1.0, weight=0.1)
    assert t.level == "impostor"


def test_overlap_weight_counts_evidence_once() -> None:
    a, b = TrustScore(), TrustScore()
    for _ in range(4):
        a.update(0.97, weight=0.25)
    b.update(0.97, weight=1.0)
    assert abs(a.value - b.value) < 1e-9


def test_levels_in_order() -> None:
    p = TrustPolicy()
    t = TrustScore(policy=p)
    seen = []
    for v in (100.0, p.trusted - 1, p.uncertain - 1, p.suspicious - 1, 0.0):
        t.value = v
        seen.append(t.level)
    assert seen == ["trusted", "uncertain", "suspicious", "impostor", "impostor"]
    assert set(seen) <= set(LEVELS)


def test_recovery_after_typical_windows() -> None:
    t = TrustScore(value=0.0)
    windows = 0
    while t.level != "trusted":
        t.update(0.5, weight=0.15)  # a typical window of ~15 new presses in a 100-press context
        windows += 1
    # 70 points at ~11 per context of typical typing: about 6-7 contexts.
    assert windows <= 50


def test_an_occasional_odd_window_costs_little() -> None:
    t = TrustScore()
    for i in range(200):
        t.update(1.0 if i % 10 == 0 else 0.4, weight=0.15)
    assert t.level == "trusted"


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=80),
    st.floats(-60, 60, allow_nan=False),
    st.floats(-60, 60, allow_nan=False),
)
def test_calibration_is_monotone_and_bounded(ref: list[float], a: float, b: float) -> None:
    cal = GenuineQuantile(size=64)
    for s in ref:
        cal.learn_one(s)
    lo, hi = sorted((a, b))
    qa, qb = cal.calibrate(lo), cal.calibrate(hi)
    assert 0.0 <= qa <= qb <= 1.0
    assert GenuineQuantile.from_bytes(cal.to_bytes()).calibrate(hi) == qb


def test_calibration_of_fresh_genuine_scores_is_uniform() -> None:
    rng = np.random.default_rng(1)
    cal = GenuineQuantile(size=512)
    ref = rng.normal(size=512)
    for s in ref:
        cal.learn_one(float(s))
    x = rng.normal(size=4000)
    q = np.array([cal.calibrate(float(s)) for s in x])
    assert abs(q.mean() - 0.5) < 0.05
    # The quantile of the reference itself, not of the ideal distribution.
    assert abs(float(np.mean(q > 0.9)) - float(np.mean(x > np.quantile(ref, 0.9)))) < 0.01


def _typing(rng: np.random.Generator, n: int, t0: float) -> KeystrokeEvents:
    down = t0 + np.cumsum(rng.gamma(4.0, 45.0, n))
    up = down + rng.gamma(6.0, 15.0, n)
    t = np.r_[down, up]
    order = np.argsort(t, kind="stable")
    cls = rng.integers(0, 9, n).astype(np.int8)
    return KeystrokeEvents(
        t[order], np.r_[np.ones(n, bool), np.zeros(n, bool)][order], np.r_[cls, cls][order]
    )


def test_profile_round_trip_and_size_bound() -> None:
    rng = np.random.default_rng(0)
    policy = EnrollmentPolicy(min_presses=300, min_sessions=1, min_calibration=8)
    p = UserProfile(Background.default(), policy)
    t = 0.0
    for _ in range(600):  # more windows than the calibration ring holds
        keys = _typing(rng, 12, t)
        t = float(keys.t_ms[-1]) + 100.0
        p.assess(keys, None, session="s1")
    assert p.enrollment == "active"
    data = p.to_bytes()
    assert len(data) <= 16 * 1024
    q = UserProfile.from_bytes(data, Background.default(), policy)
    assert q.to_bytes() == data
    keys = _typing(rng, 12, t)
    a, b = p.assess(keys, None, session="s1"), q.assess(keys, None, session="s1")
    assert (a.keyboard_score, a.trust, a.level) == (b.keyboard_score, b.trust, b.level)
