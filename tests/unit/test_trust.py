"""Trust and calibration behaviour, and the user profile's bytes."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.background import Background
from profiles.calibration import GenuineQuantile
from profiles.keystrokes import KeystrokeEvents
from profiles.trust import (
    DEFAULT_POLICY,
    LEVELS,
    TrustPolicy,
    TrustScore,
    evidence_of,
    false_alarm_contexts,
)
from profiles.user import EnrollmentPolicy, UserProfile


def test_owner_evidence_drifts_down_and_impostor_evidence_up() -> None:
    p = DEFAULT_POLICY
    # For the owner e ~ Exp(1): the statistic drifts down by k - 1 per context.
    assert p.reference > 1.0
    t = TrustScore()
    rng = np.random.default_rng(0)
    for e in rng.exponential(1.0, 2000):  # ~330 contexts of the owner
        t.update(float(e), weight=0.165)
    assert t.level in ("trusted", "uncertain")


def test_one_context_far_beyond_the_owner_reaches_impostor() -> None:
    t = TrustScore()
    for _ in range(10):  # ten windows, each a tenth of a context, ~6 sd beyond the owner
        t.update(20.0, weight=0.1)
    assert t.level == "impostor"


def test_a_context_at_the_top_of_the_ring_alone_is_not_an_alarm() -> None:
    t = TrustScore()
    for _ in range(10):
        t.update(evidence_of(1.0), weight=0.1)  # q = 1 on a ring of 512: e = 6.9
    assert t.level != "impostor"
    for _ in range(5):
        t.update(evidence_of(1.0), weight=0.1)
    assert t.level == "impostor"


def test_overlap_weight_counts_evidence_once() -> None:
    a, b = TrustScore(), TrustScore()
    for _ in range(4):
        a.update(6.0, weight=0.25)
    b.update(6.0, weight=1.0)
    assert abs(a.statistic - b.statistic) < 1e-9


def test_levels_in_order() -> None:
    p = TrustPolicy()
    t = TrustScore(policy=p)
    seen = []
    for v in (100.0, p.trusted - 1, p.uncertain - 1, p.suspicious - 1, 0.0):
        t.value = v
        seen.append(t.level)
    assert seen == ["trusted", "uncertain", "suspicious", "impostor", "impostor"]
    assert set(seen) <= set(LEVELS)


def test_trust_scale_reads_the_statistic() -> None:
    p = DEFAULT_POLICY
    t = TrustScore()
    t.update(p.reference + p.threshold, weight=1.0)  # exactly h
    assert t.level == "impostor" and abs(t.value - p.suspicious) < 1e-6
    t.update(1e6, weight=1.0)
    assert t.value == 0.0 and t.statistic == p.ceiling


def test_recovery_after_typical_windows() -> None:
    t = TrustScore(value=0.0)
    windows = 0
    while t.level != "trusted":
        t.update(1.0, weight=0.15)  # typical windows of ~15 new presses per 100-press context
        windows += 1
    # From the ceiling (1.43 h) to 3/7 h at k - 1 = 1.5 per context: ~3.3 contexts.
    assert windows <= 30


def test_an_occasional_odd_window_costs_little() -> None:
    t = TrustScore()
    for i in range(200):
        t.update(6.9 if i % 10 == 0 else 0.7, weight=0.15)
    assert t.level == "trusted"


def test_null_false_alarm_rate_meets_the_budget() -> None:
    # ~120 contexts per hour of typing: one false alarm in more than 8 h needs > 960.
    assert false_alarm_contexts(windows=100_000) > 2 * 960


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


def test_evidence_grows_beyond_the_ring_and_is_exponential_within() -> None:
    rng = np.random.default_rng(2)
    cal = GenuineQuantile(size=512)
    for s in rng.normal(size=512):
        cal.learn_one(float(s))
    fresh = rng.normal(size=4000)
    e = np.array([cal.evidence(float(s)) for s in fresh])
    assert abs(e.mean() - 1.0) < 0.1  # Exp(1) for the owner
    assert cal.evidence(4.0) < cal.evidence(6.0) < cal.evidence(8.0)
    assert cal.evidence(6.0) > 15.0  # ~6 sd beyond the owner: strong evidence


def test_a_non_finite_score_neither_enters_the_ring_nor_breaks_calibration() -> None:
    # A NaN once made every later quantile of the ring fail with an IndexError.
    cal = GenuineQuantile(size=8)
    for score in (1.0, 2.0, float("nan"), float("inf"), 3.0):
        cal.learn_one(score)
    assert cal.filled == 3 and np.isfinite(cal.scores[: cal.filled]).all()
    assert cal.calibrate(float("nan")) == 0.5
    assert math.isfinite(cal.evidence(float("nan")))
    assert cal.calibrate(float("inf")) == 1.0 and cal.calibrate(float("-inf")) == 0.0
