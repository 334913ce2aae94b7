"""What a verdict tells an analyst: readable summaries of recent behaviour, and reasons.

A score says *that* a window is unlike the owner; an analyst also wants to know
*how*. Each modality of a profile keeps a :class:`RunningSummary` of a few plain
quantities (median dwell, median flight, typing rate, erase rate; straightness,
click hold and duration of pointer actions), learned only from windows the
profile learns. A window's own quantities, as z-scores against that summary,
become reasons such as ``keyboard: dwell_ms higher than usual (z=+3.1)``.

The summaries only word the reasons: no score, level or decision reads them.

>>> s = RunningSummary.zeros(2)
>>> for x in ([100.0, 5.0], [110.0, 5.5], [90.0, 4.5]):
...     s.learn(np.array(x))
>>> round(float(s.mean[0]), 1), s.n
(100.0, 3)
>>> explain("impostor", [("keyboard", "typing rhythm", 0.97)],
...     deviations("keyboard", ("dwell_ms", "rate"), s.z(np.array([160.0, 5.0]))), 20.0)
("keyboard: typing rhythm unlike the owner's (above 97% of them)", 'keyboard: dwell_ms higher than usual (z=+7.3)')
>>> RunningSummary.from_bytes(s.to_bytes(), 2).n
3
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np

from profiles.keystrokes import ERASE, KeystrokeWindow
from profiles.mouse import FEATURE_NAMES as MOUSE_FEATURES

# Summaries behind the reasons a verdict gives: plain quantities an analyst can read.
KEYBOARD_SUMMARY: Final = ("dwell_ms", "flight_ms", "typing_rate_per_s", "erase_rate")
# Pointer speed ("log_speed_mean") is not among them: a misnamed source once left it out,
# and adding it now would widen the stored summary, which code of before 2026-12-06 cannot
# read back (a rollback would fail every window of every user).
_MOUSE_SUMMARY_SOURCES: Final = {
    "straightness": "straightness",
    "click_hold": "log_click_hold_ms",
    "duration": "log_duration_ms",
}
MOUSE_SUMMARY: Final = tuple(_MOUSE_SUMMARY_SOURCES)
# A name that is not a feature fails here (a filter once dropped "speed" silently).
_MOUSE_SUMMARY_COLUMNS: Final = [MOUSE_FEATURES.index(f) for f in _MOUSE_SUMMARY_SOURCES.values()]

_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
#: Largest count of windows a summary stores (a uint32): a count read back at it stays
#: there, as one more would not fit the state and every later write would fail.
MAX_SUMMARY_COUNT: Final = 0xFFFF_FFFF
#: A deviation this large (in the owner's standard deviations) becomes a reason.
REASON_Z: Final = 2.0


@dataclass(slots=True)
class RunningSummary:
    """Exponentially weighted mean and variance of a few readable quantities."""

    mean: np.ndarray
    var: np.ndarray
    n: int = 0
    alpha: float = 0.05

    @classmethod
    def zeros(cls, d: int) -> RunningSummary:
        return cls(np.zeros(d, np.float32), np.ones(d, np.float32))

    def learn(self, x: np.ndarray) -> None:
        # Four numbers: Python floats cost less than ten numpy calls, and compute the
        # same float64 values numpy did (float32 state widened exactly, each product
        # in the same order), rounded to float32 the same way when stored.
        a = max(self.alpha, 1.0 / (self.n + 1))
        mean, var = [], []
        for xi, mi, vi in zip(x.tolist(), self.mean.tolist(), self.var.tolist(), strict=True):
            diff = xi - mi
            m, v = mi + a * diff, (1 - a) * (vi + a * diff * diff)
            # A missing value (NaN) leaves its quantity as it was; shrinking its variance
            # would make the next ordinary value read as a large deviation. So does one
            # too large for the float32 state, which would hold inf, then NaN.
            if math.isfinite(m) and abs(m) <= _FLOAT32_MAX and 0 <= v <= _FLOAT32_MAX:
                mean.append(m)
                var.append(v)
            else:
                mean.append(mi)
                var.append(vi)
        self.mean = np.array(mean, dtype=np.float32)
        self.var = np.array(var, dtype=np.float32)
        self.n = min(self.n + 1, MAX_SUMMARY_COUNT)

    def z(self, x: np.ndarray) -> np.ndarray:
        return _z(self.mean, self.var, x)

    def finite(self) -> bool:
        return _finite(self.mean, self.var)

    def to_bytes(self) -> bytes:
        return _pack(self.n, self.mean, self.var)

    @classmethod
    def from_bytes(cls, data: bytes, d: int) -> RunningSummary:
        """A summary of ``d`` quantities; one of another count (a state written by a model
        version with other quantities) starts over: it only words the reasons."""
        if len(data) != 4 + 8 * d:
            return cls.zeros(d)
        return cls(*_unpack(data, d))

    @staticmethod
    def max_bytes(d: int) -> int:
        """Size of :meth:`to_bytes` for ``d`` quantities: count, float32 means and variances."""
        return 4 + 8 * d


#: Largest count of windows an :class:`EnrolmentSummary` keeps per quantity (a uint16):
#: a quantity seen in that many enrolment windows has its mean and spread, and learns
#: no more.
MAX_ANCHOR_COUNT: Final = 0xFFFF


@dataclass(slots=True)
class EnrolmentSummary:
    """Equal-weight mean and (population) variance of each quantity over the windows
    that had it: the owner as enrolled (``profiles.user.within_anchor``).

    A quantity a window lacks (NaN: no flight in a window of one press, no click hold in
    a window of moves) is no value of it; each quantity counts its own windows, so the
    first window that has it is its mean, with no spread yet, whatever came before.

    >>> s = EnrolmentSummary.zeros(2)
    >>> for x in ([np.nan, 1.0], [150.0, 2.0], [150.0, 3.0]):
    ...     s.learn(np.array(x))
    >>> s.mean.tolist(), s.var.tolist(), s.counts.tolist(), s.n
    ([150.0, 2.0], [0.0, 0.6666666865348816], [2, 3], 3)
    >>> EnrolmentSummary.from_bytes(s.to_bytes(), 2).counts.tolist()
    [2, 3]
    """

    mean: np.ndarray  # float32
    var: np.ndarray  # float32
    counts: np.ndarray  # uint16: windows that had each quantity
    n: int = 0  # windows learned

    @classmethod
    def zeros(cls, d: int) -> EnrolmentSummary:
        return cls(np.zeros(d, np.float32), np.zeros(d, np.float32), np.zeros(d, np.uint16))

    def learn(self, x: np.ndarray) -> None:
        mean, var, counts = self.mean.tolist(), self.var.tolist(), self.counts.tolist()
        for i, xi in enumerate(x.tolist()):
            c = counts[i]
            if c >= MAX_ANCHOR_COUNT:
                continue
            # Welford's update with weight 1 / (windows that had it): the first is the
            # mean exactly, with a variance of 0.
            a = 1.0 / (c + 1)
            diff = xi - mean[i]
            m, v = mean[i] + a * diff, (1 - a) * (var[i] + a * diff * diff)
            # NaN (missing) or too large for the float32 state: not a value of it.
            if math.isfinite(m) and abs(m) <= _FLOAT32_MAX and 0 <= v <= _FLOAT32_MAX:
                mean[i], var[i], counts[i] = m, v, c + 1
        self.mean = np.array(mean, dtype=np.float32)
        self.var = np.array(var, dtype=np.float32)
        self.counts = np.array(counts, dtype=np.uint16)
        self.n = min(self.n + 1, MAX_SUMMARY_COUNT)

    def z(self, x: np.ndarray) -> np.ndarray:
        return _z(self.mean, self.var, x)

    def finite(self) -> bool:
        return _finite(self.mean, self.var)

    def to_bytes(self) -> bytes:
        return _pack(self.n, self.mean, self.var) + self.counts.astype("<u2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, d: int) -> EnrolmentSummary:
        """A summary of ``d`` quantities; the first ``cadence-profile-6`` layout (no count
        per quantity, :meth:`first_layout_bytes`) counts every quantity ``n`` times; any
        other size starts over."""
        if len(data) not in (cls.max_bytes(d), cls.first_layout_bytes(d)):
            return cls.zeros(d)
        mean, var, n = _unpack(data, d)
        if len(data) == cls.max_bytes(d):
            counts = np.frombuffer(data, "<u2", d, 4 + 8 * d).astype(np.uint16)
        else:
            counts = np.full(d, min(n, MAX_ANCHOR_COUNT), np.uint16)
        return cls(mean, var, counts, n)

    @staticmethod
    def max_bytes(d: int) -> int:
        """Size of :meth:`to_bytes`: window count, float32 means and variances, uint16
        counts per quantity."""
        return 4 + 10 * d

    @staticmethod
    def first_layout_bytes(d: int) -> int:
        """Size of an anchor written by the first ``cadence-profile-6`` code (2026-12-07),
        without the counts per quantity."""
        return 4 + 8 * d


# The two summaries' shared layout: a window count, then float32 means and variances.


def _z(mean: np.ndarray, var: np.ndarray, x: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.maximum(var, 1e-6))
    return np.where(np.isfinite(x), (x - mean) / sd, 0.0)


def _finite(mean: np.ndarray, var: np.ndarray) -> bool:
    return bool(np.isfinite(mean).all() and np.isfinite(var).all())


def _pack(n: int, mean: np.ndarray, var: np.ndarray) -> bytes:
    return (
        struct.pack("<I", n) + mean.astype(np.float32).tobytes() + var.astype(np.float32).tobytes()
    )


def _unpack(data: bytes, d: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(means, variances, count) of :func:`_pack`'s bytes (a longer record may follow)."""
    (n,) = struct.unpack_from("<I", data)
    mean = np.frombuffer(data, np.float32, d, 4).copy()
    var = np.frombuffer(data, np.float32, d, 4 + 4 * d).copy()
    return mean, var, n


def keyboard_summary(window: KeystrokeWindow) -> np.ndarray:
    """The :data:`KEYBOARD_SUMMARY` quantities of one window of presses."""
    dwell = window.dwell_ms
    dd = window.dd_ms
    span_s = (
        (window.presses.t_down_ms[-1] - window.presses.t_down_ms[0]) / 1000.0
        if window.n_presses > 1
        else np.nan
    )
    # At least 1 ms per flight: presses a few ns apart (valid on the wire) would
    # otherwise give a rate of ~1e300 per second.
    span_s = max(span_s, 0.001 * (window.n_presses - 1))
    rate = (window.n_presses - 1 - window.n_pauses) / span_s if span_s and span_s > 0 else np.nan
    return np.array(
        [
            _nanmedian(dwell),
            _nanmedian(dd),
            rate,
            np.count_nonzero(window.key_class == ERASE) / window.n_presses
            if window.n_presses
            else np.nan,
        ],
        dtype=np.float64,
    )


def mouse_summary(actions: np.ndarray) -> np.ndarray:
    """The :data:`MOUSE_SUMMARY` quantities of a window's pointer actions (feature rows)."""
    return _nanmedian_columns(actions[:, _MOUSE_SUMMARY_COLUMNS])


def deviations(modality: str, names: tuple[str, ...], z: np.ndarray) -> list[str]:
    """A reason for each quantity at least :data:`REASON_Z` deviations from the owner's."""
    out = []
    for name, value in zip(names, z.tolist(), strict=False):
        if abs(value) >= REASON_Z:
            direction = "higher" if value > 0 else "lower"
            out.append(f"{modality}: {name} {direction} than usual (z={value:+.1f})")
    return out


def explain(
    level: str, scored: list[tuple[str, str, float]], deviating: list[str], trust: float
) -> tuple[str, ...]:
    """Why a window is suspicious: the modalities that look unlike the owner, then the
    readable quantities that deviate most. An alarm always carries at least one reason."""
    if level in ("trusted", "uncertain"):
        return ()
    out = [
        f"{modality}: {what} unlike the owner's ("
        + ("beyond all of the owner's recent windows" if q >= 0.995 else f"above {q:.0%} of them")
        + ")"
        for modality, what, q in sorted(scored, key=lambda item: -item[2])
        if q >= 0.9
    ]
    out += sorted(deviating, key=lambda r: -abs(float(r.rsplit("z=", 1)[1][:-1])))
    if not out:
        out = [f"trust {trust:.0f}/100 after earlier windows unlike the owner's"]
    return tuple(out[:3])


def _nanmedian(x: np.ndarray) -> float:
    """``np.nanmedian`` of a short 1-D array, NaN if there is no number; same values,
    a fraction of the cost (numpy's goes through generic reductions)."""
    s = np.sort(x)
    n = s.size - int(np.count_nonzero(np.isnan(s)))
    if n == 0:
        return float("nan")
    h = n // 2
    return float(s[h]) if n % 2 else (float(s[h - 1]) + float(s[h])) / 2.0


def _nanmedian_columns(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=0)`` of a short 2-D array (see :func:`_nanmedian`).

    A window finishes 1-3 pointer actions: sorting a handful of Python floats is
    cheaper than four numpy sorts, and the values (and their mean) are the same."""
    out = []
    for column in a.T.tolist():
        s = sorted(v for v in column if v == v)  # NaN != NaN
        n = len(s)
        h = n // 2
        out.append(float("nan") if n == 0 else s[h] if n % 2 else (s[h - 1] + s[h]) / 2.0)
    return np.array(out, dtype=np.float64)
