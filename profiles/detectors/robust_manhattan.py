"""Scaled Manhattan distance to a running centre, in units of mean absolute deviation.

The classic keystroke verifier (Araújo et al. 2005; Killourhy & Maxion 2009):
per feature, the distance of ``x`` to the user's mean, divided by the user's
mean absolute deviation, averaged over features. Both statistics are updated
online (Welford-style for the mean; the deviation is tracked against the
current mean), so the state is three small vectors.

>>> det = RobustManhattan()
>>> for v in ([1.0, 10.0], [1.2, 11.0], [0.8, 9.0], [1.1, 10.5]):
...     det.learn_one(np.array(v))
>>> det.score_one(np.array([1.0, 10.0])) < det.score_one(np.array([2.0, 15.0]))
True
>>> again = RobustManhattan.from_bytes(det.to_bytes())
>>> again.score_one(np.array([2.0, 15.0])) == det.score_one(np.array([2.0, 15.0]))
True
"""

from __future__ import annotations

import numpy as np

from profiles.detectors._codec import pack, unpack

__all__ = ["RobustManhattan"]

_MAGIC = b"RMH1"


class RobustManhattan:
    """Mean over features of ``|x - mean| / (mean absolute deviation + eps)``.

    Parameters
    ----------
    eps
        Floor of the spread, so that a feature constant during enrolment does
        not dominate the score.
    """

    def __init__(self, eps: float = 1e-3) -> None:
        self.eps = eps
        self.n = 0
        self.mean: np.ndarray | None = None
        self.mad: np.ndarray | None = None

    def learn_one(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if self.mean is None or self.mad is None:
            self.mean, self.mad = x.copy(), np.zeros_like(x)
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.mad += (np.abs(x - self.mean) - self.mad) / self.n

    def score_one(self, x: np.ndarray) -> float:
        if self.mean is None or self.mad is None:
            return 0.0
        return float(np.mean(np.abs(np.asarray(x) - self.mean) / (self.mad + self.eps)))

    def to_bytes(self) -> bytes:
        if self.mean is None or self.mad is None:
            return pack(_MAGIC, np.array([self.eps, 0.0]))
        return pack(_MAGIC, np.array([self.eps, float(self.n)]), self.mean, self.mad)

    @classmethod
    def from_bytes(cls, data: bytes) -> RobustManhattan:
        arrays = unpack(data, _MAGIC)
        det = cls(eps=float(arrays[0][0]))
        det.n = int(arrays[0][1])
        if len(arrays) == 3:
            det.mean, det.mad = arrays[1], arrays[2]
        return det
