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

import math
import struct
from array import array
from bisect import bisect_right

import numpy as np

_HEADER = struct.Struct("<HHI")  # size, filled, next write index
#: Ring scores needed before a Gaussian tail is fitted to them (the enrolment
#: policy's ``min_calibration``).
MIN_TAIL = 16


class GenuineQuantile:
    """Ring of the owner's recent genuine scores; ``calibrate`` returns a quantile in [0, 1]."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.scores = np.zeros(size, dtype=np.float32)
        self.filled = 0
        self.next = 0
        # The ring sorted, until it changes. float32 as the ring is (a float64 copy was
        # 4 KB per full ring, two per profile a worker holds); an ``array`` hands out its
        # items as Python floats, so every comparison and interpolation is the float64 one
        # it always was, and ``bisect`` searches it faster than numpy (~1 us) would.
        self._sorted: array | None = None
        self._moments: tuple[float, float] | None = None  # its mean and sd, likewise

    def __len__(self) -> int:
        return self.filled

    def learn_one(self, score: float) -> None:
        if not math.isfinite(score):
            return  # one NaN would make every later quantile of the ring undefined
        self.scores[self.next] = score
        self.next = (self.next + 1) % self.size
        self.filled = min(self.filled + 1, self.size)
        self._sorted = None
        self._moments = None

    def _reference(self) -> array:
        # Every window is calibrated and weighed against the same ring, which changes
        # at most once per context of new evidence: sort it once, not twice a window.
        if self._sorted is None:
            self._sorted = array("f", np.sort(self.scores[: self.filled]).tobytes())
        return self._sorted

    def calibrate(self, score: float) -> float:
        """Fraction of reference scores below ``score`` (ties count half), linear between them."""
        if self.filled == 0:
            return 0.5
        return self._quantile(self._reference(), score)

    @staticmethod
    def _quantile(ref: array, score: float) -> float:
        n = len(ref)
        score = float(score)
        if score != score:
            return 0.5  # NaN: no evidence either way
        first, last = ref[0], ref[-1]
        if score <= first:
            return 0.0 if score < first else 0.5 / n
        if score >= last:
            return 1.0 if score > last else 1.0 - 0.5 / n
        # Position between the two neighbouring reference scores, interpolated.
        k = bisect_right(ref, score)
        lo, hi = ref[k - 1], ref[k]
        frac = 0.0 if hi == lo else (score - lo) / (hi - lo)
        return (k - 0.5 + frac) / n if n > 1 else 0.5

    def evidence(self, score: float) -> float:
        """Surprise of ``score`` for the owner: ``-log P(owner's score >= score)``.

        Within the ring's range this is ``-log(1 - q)`` of the calibrated quantile
        ``q``: exponential with mean 1 for the owner's own windows. Beyond its top
        the ring says nothing (``q`` saturates at 1, ``-log(1 - q)`` at
        ``log(2 n)``), yet an impostor far outside the owner's range should weigh
        more than one just past it. A score is a mean over a context (~100
        presses, 20 pointer actions), near-Gaussian by the central limit theorem,
        so beyond the ring the tail is the Gaussian of the ring's mean and
        standard deviation (never less than the ring's own bound).

        >>> cal = GenuineQuantile(size=512)
        >>> for s in np.linspace(-1.0, 1.0, 512):
        ...     cal.learn_one(float(s))
        >>> round(cal.evidence(0.0), 2), round(cal.evidence(1.0), 2), round(cal.evidence(2.0), 1)
        (0.69, 6.93, 8.2)
        """
        n = self.filled
        if n == 0:
            return math.log(2.0)
        ref = self._reference()
        e = -math.log(max(1.0 - self._quantile(ref, score), 0.5 / n))
        if n >= MIN_TAIL and float(score) > ref[-1]:
            # An impostor's windows are all beyond the top: the ring's moments change
            # at most once per context, so they are computed once per ring.
            if self._moments is None:
                wide = np.frombuffer(ref, np.float32).astype(np.float64)  # as ever: float64
                self._moments = (float(np.mean(wide)), float(np.std(wide)))
            mean, sd = self._moments
            if sd > 0.0:
                z = (score - mean) / sd
                e = max(e, -math.log(max(0.5 * math.erfc(z / math.sqrt(2.0)), 1e-300)))
        return float(e)

    def to_bytes(self) -> bytes:
        # Only the filled part: slots beyond it are never read (a ring that is not
        # full has not wrapped), and a modality the owner never uses stores 8 bytes.
        return (
            _HEADER.pack(self.size, self.filled, self.next) + self.scores[: self.filled].tobytes()
        )

    @staticmethod
    def max_bytes(size: int) -> int:
        """Largest :meth:`to_bytes` of a ring of ``size`` scores (a full one)."""
        return _HEADER.size + 4 * size

    def newest(self, size: int) -> GenuineQuantile:
        """A ring of ``size`` holding this one's newest scores, oldest first (so it
        forgets them in the order this one would have).

        >>> cal = GenuineQuantile(size=4)
        >>> for s in [1.0, 2.0, 3.0, 4.0, 5.0]:
        ...     cal.learn_one(s)
        >>> small = cal.newest(3)
        >>> small.scores.tolist(), small.filled, small.next
        ([3.0, 4.0, 5.0], 3, 0)
        """
        kept = self.scores[: self.filled]
        if self.filled == self.size:  # wrapped: the oldest score is at ``next``
            kept = np.concatenate((kept[self.next :], kept[: self.next]))
        kept = kept[max(0, kept.size - size) :]
        ring = GenuineQuantile(size)
        ring.scores[: kept.size] = kept
        ring.filled, ring.next = kept.size, kept.size % size
        return ring

    @classmethod
    def from_bytes(cls, data: bytes) -> GenuineQuantile:
        """Read a ring stored filled part only, or whole (as written before)."""
        if len(data) < _HEADER.size:
            raise ValueError("calibration ring truncated")
        size, filled, nxt = _HEADER.unpack_from(data)
        # A ring that is not full has never wrapped: its next slot is the one after its
        # last score. Any other header is damage (and would overwrite a kept score).
        if not size > 0 or filled > size or nxt >= size or (filled < size and nxt != filled):
            raise ValueError("calibration ring header out of range")
        cal = cls(size)
        count = min(size, (len(data) - _HEADER.size) // 4)
        if count < filled:
            raise ValueError("calibration ring shorter than its filled part")
        cal.scores[:count] = np.frombuffer(data, dtype=np.float32, count=count, offset=_HEADER.size)
        cal.filled, cal.next = filled, nxt
        return cal
