"""Calibration: a raw anomaly score -> the owner's own quantile, comparable across users.

Raw scores mean different things for different people (a steady typist's profile
is tight, an erratic one's is loose). Each profile keeps the most recent scores
its owner produced on windows accepted as genuine (scored *before* learning them,
so they are honest out-of-sample scores) and maps a new score to its position
among them. A calibrated score of 0.95 means "higher than 95 % of this owner's
own recent windows", for everyone, so one threshold gives everyone the same
false-alarm rate.

The reference set is a ring of the last ``size`` genuine scores, which also lets
calibration follow a slow drift of the owner's behaviour.

>>> cal = GenuineQuantile(size=8)
>>> for s in [1.0, 2.0, 3.0, 4.0]:
...     cal.learn_one(s)
>>> cal.calibrate(2.5), cal.calibrate(0.0), cal.calibrate(9.0)
(0.5, 0.0, 1.0)
>>> GenuineQuantile.from_bytes(cal.to_bytes()).calibrate(2.5)
0.5
"""

from __future__ import annotations

import struct

import numpy as np

_HEADER = struct.Struct("<HHI")  # size, filled, next write index


class GenuineQuantile:
    """Ring of the owner's recent genuine scores; ``calibrate`` returns a quantile in [0, 1]."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.scores = np.zeros(size, dtype=np.float32)
        self.filled = 0
        self.next = 0

    def __len__(self) -> int:
        return self.filled

    def learn_one(self, score: float) -> None:
        self.scores[self.next] = score
        self.next = (self.next + 1) % self.size
        self.filled = min(self.filled + 1, self.size)

    def calibrate(self, score: float) -> float:
        """Fraction of reference scores below ``score`` (ties count half), linear between them."""
        if self.filled == 0:
            return 0.5
        ref = np.sort(self.scores[: self.filled]).astype(np.float64)
        n = ref.size
        if score <= ref[0]:
            return 0.0 if score < ref[0] else 0.5 / n
        if score >= ref[-1]:
            return 1.0 if score > ref[-1] else 1.0 - 0.5 / n
        # Position between the two neighbouring reference scores, interpolated.
        k = int(np.searchsorted(ref, score, side="right"))
        lo, hi = ref[k - 1], ref[k]
        frac = 0.0 if hi == lo else (score - lo) / (hi - lo)
        return float((k - 0.5 + frac) / n) if n > 1 else 0.5

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.size, self.filled, self.next) + self.scores.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> GenuineQuantile:
        size, filled, nxt = _HEADER.unpack_from(data)
        cal = cls(size)
        cal.scores = np.frombuffer(data, dtype=np.float32, count=size, offset=_HEADER.size).copy()
        cal.filled, cal.next = filled, nxt
        return cal
