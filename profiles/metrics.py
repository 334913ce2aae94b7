"""Verification metrics: ROC AUC and equal error rate from genuine/impostor scores.

Scores follow one convention across cadence: **higher means more anomalous**
(less like the account owner).

>>> roc_auc([0.1, 0.2, 0.3], [0.4, 0.5])
1.0
>>> round(equal_error_rate([0.1, 0.2, 0.3, 0.6], [0.25, 0.5, 0.7, 0.8]), 3)
0.25
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def roc_auc(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray) -> float:
    """Probability that an impostor sample scores above a genuine one (ties count half)."""
    g = np.asarray(genuine, dtype=float)
    i = np.asarray(impostor, dtype=float)
    if g.size == 0 or i.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    scores = np.concatenate([g, i])
    ranks = _average_ranks(scores)
    rank_sum = ranks[g.size :].sum()
    return float((rank_sum - i.size * (i.size + 1) / 2) / (g.size * i.size))


def roc_curve(
    genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept and false-reject rates at every distinct threshold.

    Returns ``(thresholds, far, frr)``: at threshold t a sample is rejected
    when its score is >= t.
    """
    g = np.sort(np.asarray(genuine, dtype=float))
    i = np.sort(np.asarray(impostor, dtype=float))
    thresholds = np.unique(np.concatenate([g, i, [np.inf]]))
    frr = np.searchsorted(g, thresholds, side="left")[::-1][::-1] / max(g.size, 1)
    frr = 1.0 - frr  # genuine rejected: score >= t
    far = np.searchsorted(i, thresholds, side="left") / max(i.size, 1)  # impostor accepted: < t
    return thresholds, far, frr


def equal_error_rate(
    genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray
) -> float:
    """Error rate where false accepts equal false rejects (linear interpolation)."""
    _, far, frr = roc_curve(genuine, impostor)
    diff = far - frr  # increases with the threshold
    k = int(np.searchsorted(diff, 0.0))
    if k == 0:
        return float((far[0] + frr[0]) / 2)
    if k >= diff.size:
        return float((far[-1] + frr[-1]) / 2)
    d0, d1 = diff[k - 1], diff[k]
    w = 0.0 if d1 == d0 else -d0 / (d1 - d0)
    return float((1 - w) * (far[k - 1] + frr[k - 1]) / 2 + w * (far[k] + frr[k]) / 2)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=float)
    sorted_vals = values[order]
    # Tied values share the mean of the ranks they span.
    boundaries = np.flatnonzero(np.diff(sorted_vals)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [values.size]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2
    return ranks
