"""The calibration ring: quantiles and evidence exactly as float64 arithmetic gives them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from profiles.calibration import MIN_TAIL, GenuineQuantile


def _quantile(ring: np.ndarray, score: float) -> float:
    """The documented quantile, in plain float64: the ring's values widened exactly."""
    ref = sorted(float(v) for v in ring)
    n = len(ref)
    if score <= ref[0]:
        return 0.0 if score < ref[0] else 0.5 / n
    if score >= ref[-1]:
        return 1.0 if score > ref[-1] else 1.0 - 0.5 / n
    k = sum(1 for v in ref if v <= score)
    lo, hi = ref[k - 1], ref[k]
    frac = 0.0 if hi == lo else (score - lo) / (hi - lo)
    return (k - 0.5 + frac) / n if n > 1 else 0.5


def _probes(ring: np.ndarray, rng: np.random.Generator) -> list[float]:
    # Scores on, and one float64 step either side of, the ring's float32 values: where a
    # float32 comparison (a Python float cast to the ring's type) would differ.
    out = [float(x) for x in rng.normal(size=40) * (float(np.std(ring)) + 1.0) * 2]
    for v in ring[:40].tolist():
        out += [v, math.nextafter(v, -math.inf), math.nextafter(v, math.inf), v + 1e-7]
    return out


@pytest.mark.parametrize("size", [16, 64, 512])
def test_quantiles_and_evidence_are_the_float64_ones(size: int) -> None:
    rng = np.random.default_rng(size)
    for ties in (False, True):
        cal = GenuineQuantile(size)
        values = rng.normal(size=size + size // 2) * 0.37
        for v in np.round(values, 1) if ties else values:
            cal.learn_one(float(v))
        ring = cal.scores[: cal.filled]
        mean, sd = float(np.mean(ring.astype(np.float64))), float(np.std(ring.astype(np.float64)))
        for score in _probes(ring, rng):
            q = _quantile(ring, score)
            assert cal.calibrate(score) == q
            e = -math.log(max(1.0 - q, 0.5 / cal.filled))
            if cal.filled >= MIN_TAIL and score > float(ring.max()) and sd > 0:
                z = (score - mean) / sd
                e = max(e, -math.log(max(0.5 * math.erfc(z / math.sqrt(2.0)), 1e-300)))
            assert cal.evidence(score) == e


def test_the_sorted_ring_costs_no_more_memory_than_the_ring() -> None:
    # A worker holds two full rings per profile it judges: a float64 sorted copy of each
    # was 4 KB more per ring.
    cal = GenuineQuantile(512)
    for v in np.linspace(-1.0, 1.0, 600):
        cal.learn_one(float(v))
    cal.evidence(0.5)
    cal.evidence(5.0)
    ref = cal._reference()
    assert len(ref) * ref.itemsize <= cal.scores.nbytes
