"""Trust over time: a CUSUM of calibrated evidence, read as a 0-100 trust.

Each judged window brings *evidence* against the owner: ``e = -log P_owner(score >= s)``,
the surprise of the window's score under the owner's own score distribution
(:meth:`profiles.calibration.GenuineQuantile.evidence`). For the owner, ``P`` is
uniform, so ``e`` is exponential with mean 1 whoever the owner is; an impostor's
windows sit at the top of or beyond the owner's range, ``e`` of 5-20.

Trust is a one-sided CUSUM (Page 1954) of that evidence::

    S <- max(0, S + w * (e - k))

``w`` is the share of *new* evidence in the window (fresh timing events or
actions over the rolling context the score rests on): consecutive windows
overlap, and a stretch of typing must be counted once, not once per window that
still remembers it, so ``S`` moves by ``e - k`` per *context* of fresh evidence
(~100 presses, 20 pointer actions). ``S`` reaching ``h`` is an alarm. Among
detectors of a change in distribution with a given false-alarm rate, CUSUM
minimises the worst-case detection delay (Lorden 1971; Moustakides 1986).

Trust reads ``S`` on the familiar scale: 100 at ``S = 0``, the ``impostor``
boundary (30) at ``S = h``, the others proportionally (``suspicious`` from
``5/7 h``, ``uncertain`` from ``3/7 h``); ``S`` is held at most at the value that
reads trust 0, so a flagged session recovers in a bounded time once the owner
is back (their drift is ``E[e] - k = 1 - k`` per context).

How the two parameters are chosen (no data fitted):

- ``reference`` ``k = 2.5``: the CUSUM's optimal reference value for a change
  from Exp(1) to an exponential of mean ``theta`` is
  ``theta log(theta) / (theta - 1)``; ``theta = 10`` (an impostor whose contexts
  are typically beyond the owner's top 1/10 000, as on the free-text recordings)
  gives 2.56. A context of the owner counts against them only above their own
  92nd percentile (``1 - e^-k``).
- ``threshold`` ``h = 5``: the false-alarm budget. Under the genuine null (the
  owner's context scores calibrated, consecutive windows overlapping as the
  worker's do: 300-cell contexts, 55 new cells per window), a simulation of this
  CUSUM gives a mean of ~2 200 contexts between false alarms
  (:func:`false_alarm_contexts` reproduces it); the owner types ~120 contexts per
  hour of active typing, so that is ~2.3 false alarms in 50 h, under 0.4 per
  8 h, with a margin for imperfect calibration.

>>> t = TrustScore()
>>> t.level
'trusted'
>>> _ = t.update(12.0, weight=0.3)  # a third of a context far beyond the owner's range
>>> t.level, round(t.value, 1)
('uncertain', 60.1)
>>> _ = t.update(12.0, weight=0.3)
>>> t.level
'impostor'
>>> for _ in range(40):  # typical windows (mean evidence 1): trust is earned back
...     _ = t.update(1.0, weight=0.15)
>>> t.level
'trusted'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

LEVELS: Final = ("trusted", "uncertain", "suspicious", "impostor")


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """CUSUM reference and threshold (see the module docstring), level boundaries."""

    reference: float = 2.5  # k: evidence per context the owner is allowed
    threshold: float = 5.0  # h: CUSUM alarm level, in units of evidence
    trusted: float = 70.0  # level boundaries on the 0..100 trust scale
    uncertain: float = 50.0
    suspicious: float = 30.0

    @property
    def ceiling(self) -> float:
        """Largest statistic kept: the one that reads trust 0."""
        return self.threshold * 100.0 / (100.0 - self.suspicious)


DEFAULT_POLICY: Final = TrustPolicy()


def evidence_of(calibrated: float, n: int = 512) -> float:
    """Evidence ``-log(1 - q)`` of a calibrated score, ``q`` clipped to a ring of ``n``.

    >>> round(evidence_of(0.5), 3), round(evidence_of(1.0), 2)
    (0.693, 6.93)
    """
    return -math.log(max(1.0 - calibrated, 0.5 / n))


class TrustScore:
    """Trust in [0, 100] that the account owner is at the keyboard and mouse."""

    def __init__(self, value: float = 100.0, policy: TrustPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self.value = value

    @property
    def value(self) -> float:
        return self._value

    @value.setter
    def value(self, v: float) -> None:
        p = self.policy
        v = min(100.0, max(0.0, float(v)))
        self._value = v
        self.statistic = (100.0 - v) / (100.0 - p.suspicious) * p.threshold

    def update(self, evidence: float, weight: float = 1.0) -> float:
        """Apply one judged window's evidence; return the change of trust.

        ``weight`` is the share of the window's evidence that is new (its fresh
        presses or actions over the rolling context it was scored on): windows
        overlap, and the same keystrokes must not be counted several times.
        """
        p = self.policy
        before = self._value
        w = min(1.0, max(0.0, weight))
        s = min(p.ceiling, max(0.0, self.statistic + w * (evidence - p.reference)))
        self.value = 100.0 - s / p.threshold * (100.0 - p.suspicious)
        self.statistic = s  # exact, not rounded through the trust scale
        return self._value - before

    @property
    def level(self) -> str:
        p = self.policy
        if self.statistic >= p.threshold:
            return "impostor"
        if self._value >= p.trusted:
            return "trusted"
        if self._value >= p.uncertain:
            return "uncertain"
        if self._value >= p.suspicious:
            return "suspicious"
        return "impostor"


def false_alarm_contexts(
    policy: TrustPolicy = DEFAULT_POLICY,
    context: int = 300,
    new_per_window: int = 55,
    windows: int = 200_000,
    seed: int = 0,
) -> float:
    """Mean contexts of the owner's evidence between alarms, simulated under the null.

    The owner's per-event scores are i.i.d.; a window's score is the mean of the
    last ``context`` of them, calibrated exactly (so ``e`` is Exp(1)), and each
    window adds ``new_per_window``: the overlap of consecutive windows is in the
    simulation, not assumed away. After an alarm the statistic restarts at 0.

    >>> 1000 < false_alarm_contexts(windows=100_000) < 5000
    True
    """
    rng = np.random.default_rng(seed)
    cells = rng.normal(size=windows * new_per_window + context)
    cs = np.r_[0.0, np.cumsum(cells)]
    ends = context + new_per_window * np.arange(1, windows)
    z = (cs[ends] - cs[ends - context]) / math.sqrt(context)
    w = new_per_window / context
    s, alarms = 0.0, 0
    for zi in z.tolist():
        e = -math.log(max(0.5 * math.erfc(zi / math.sqrt(2.0)), 1e-300))  # Gaussian upper tail
        s = max(0.0, s + w * (e - policy.reference))
        if s >= policy.threshold:
            alarms += 1
            s = 0.0
    return (windows - 1) * w / max(alarms, 1)
