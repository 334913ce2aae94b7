"""Trust over time: fuse window verdicts into one score that falls and recovers.

After Mondal & Bours ("A study on continuous authentication using a combination
of keystroke and mouse biometrics", Neurocomputing 2017): every judged window
changes the trust by an amount that depends on how typical it was. A window
below the threshold earns a reward; one above it costs a penalty that grows
with its deviation. A genuine user's occasional odd window costs little and is
soon earned back; an impostor's steady stream of odd windows drives the trust
down.

Inputs are calibrated scores (the owner's own quantile, see
:mod:`profiles.calibration`): ``q`` in [0, 1], where 1 means beyond anything the
owner did recently. Each update is weighted by the share of *new* evidence in
the window (fresh timing events or actions over the rolling context the score
rests on): consecutive windows overlap, and a bad stretch of typing must be
counted once, not once per window that still remembers it. Rewards and
penalties are therefore per *context* of fresh evidence (~100 presses, 20
pointer actions), not per window.

How the defaults are chosen (no data fitted):

- ``penalty``: a full context at the very top of the owner's range (q = 1) takes
  the trust from full to zero, i.e. past the impostor boundary after 0.7 of a
  context: ``penalty = 100``.
- ``reward``: for the owner, q is ~uniform on [0, 1], so the expected change per
  context is ``0.75 * reward * threshold - penalty * (1 - threshold) / 2``; the
  reward makes the expected gain twice the expected loss (a positive drift with a
  margin): ``reward = penalty * (1 - threshold) / (0.75 * threshold)`` = 14.8 -> 15.

>>> t = TrustScore()
>>> t.level
'trusted'
>>> for _ in range(5):  # half a context of new evidence at the top of the range
...     _ = t.update(1.0, weight=0.1)
>>> t.level, round(t.value, 1)
('uncertain', 50.0)
>>> _ = t.update(1.0, weight=0.25)
>>> t.level
'impostor'
>>> for _ in range(40):  # typical windows: trust is earned back
...     _ = t.update(0.3, weight=0.1)
>>> t.level
'trusted'
>>> round(expected_genuine_change(DEFAULT_POLICY), 2)
5.13
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LEVELS: Final = ("trusted", "uncertain", "suspicious", "impostor")


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """How trust moves. Defaults keep a genuine user's expected change positive."""

    threshold: float = 0.9  # calibrated score above which a window costs trust
    reward: float = 15.0  # gain per context of typical evidence (see the module docstring)
    penalty: float = 100.0  # loss per context at the very top of the scale
    trusted: float = 70.0  # level boundaries on the 0..100 trust scale
    uncertain: float = 50.0
    suspicious: float = 30.0


DEFAULT_POLICY: Final = TrustPolicy()


def expected_genuine_change(policy: TrustPolicy) -> float:
    """Expected trust change per context of the owner's evidence (q uniform on [0, 1])."""
    gain = policy.reward * policy.threshold * 0.75  # mean of reward * (1 - q / (2 threshold))
    loss = policy.penalty * (1.0 - policy.threshold) / 2.0  # mean excess is 1/2
    return gain - loss


class TrustScore:
    """Trust in [0, 100] that the account owner is at the keyboard and mouse."""

    def __init__(self, value: float = 100.0, policy: TrustPolicy = DEFAULT_POLICY) -> None:
        self.value = value
        self.policy = policy

    def delta(self, calibrated: float) -> float:
        p = self.policy
        if calibrated <= p.threshold:
            # Closer to the owner's median earns more, up to the full reward.
            return p.reward * (1.0 - calibrated / p.threshold * 0.5)
        excess = (calibrated - p.threshold) / (1.0 - p.threshold)
        return -p.penalty * excess

    def update(self, calibrated: float, weight: float = 1.0) -> float:
        """Apply one judged window; return the change.

        ``weight`` is the share of the window's evidence that is new (its fresh
        presses or actions over the rolling context it was scored on): windows
        overlap, and the same keystrokes must not be counted several times.
        """
        change = self.delta(calibrated) * min(1.0, max(0.0, weight))
        self.value = min(100.0, max(0.0, self.value + change))
        return change

    @property
    def level(self) -> str:
        p = self.policy
        if self.value >= p.trusted:
            return "trusted"
        if self.value >= p.uncertain:
            return "uncertain"
        if self.value >= p.suspicious:
            return "suspicious"
        return "impostor"
