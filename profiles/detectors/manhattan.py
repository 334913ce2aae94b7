"""Scaled Manhattan distance to the user's mean (Araújo et al.; Killourhy & Maxion 2009).

The classic one-class baseline of keystroke and mouse dynamics: the mean
absolute deviation of a vector from the user's mean, each feature scaled by
the user's own mean absolute deviation. Both statistics are running means, so
the state is two vectors and a count.

>>> rng = np.random.default_rng(0)
>>> det = ScaledManhattan()
>>> for x in rng.normal(size=(500, 4)):
...     det.learn_one(x)
>>> det.score_one(np.zeros(4)) < 1.0 < det.score_one(np.full(4, 3.0))
True
>>> ScaledManhattan.from_bytes(det.to_bytes()).score_one(np.ones(4)) == det.score_one(np.ones(4))
True
"""

from __future__ import annotations

import numpy as np

from profiles.detectors._codec import pack, unpack


class ScaledManhattan:
    """Mean of ``|x - mean| / mean_abs_dev`` over features (higher = more anomalous)."""

    _MAGIC = b"CSM1"

    def __init__(self) -> None:
        self.n = 0
        self.mean = np.empty(0, dtype=np.float32)
        self.abs_dev = np.empty(0, dtype=np.float32)

    def learn_one(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if self.n == 0:
            self.mean = np.zeros_like(x)
            self.abs_dev = np.zeros_like(x)
        self.n += 1
        # Deviation from the mean *before* the update: a running estimate that
        # converges to the mean absolute deviation without storing samples.
        self.abs_dev += (np.abs(x - self.mean) - self.abs_dev) / self.n
        self.mean += (x - self.mean) / self.n

    def learn_many(self, X: np.ndarray) -> None:
        for x in np.atleast_2d(X):
            self.learn_one(x)

    def score_many(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        if self.n == 0:
            return np.zeros(X.shape[0])
        scale = self.abs_dev + 1e-3
        return (np.abs(X - self.mean) / scale).mean(axis=1).astype(np.float64)

    def score_one(self, x: np.ndarray) -> float:
        return float(self.score_many(x)[0])

    def to_bytes(self) -> bytes:
        return pack(self._MAGIC, np.array([self.n], dtype=np.int64), self.mean, self.abs_dev)

    @classmethod
    def from_bytes(cls, b: bytes) -> ScaledManhattan:
        n, mean, abs_dev = unpack(b, cls._MAGIC)
        det = cls()
        det.n, det.mean, det.abs_dev = int(n[0]), mean, abs_dev
        return det
