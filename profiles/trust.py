"""Trust over time: fuse window verdicts into one score that falls and recovers.

After Mondal & Bours ("A study on continuous authentication using a combination
of keystroke and mouse biometrics", Neurocomputing 2017): every judged window
changes the trust by an amount that depends on how typical it was. A window
below the threshold earns a small reward; one above it costs a penalty that
grows with its deviation. A genuine user's occasional odd window costs little
and is soon earned back; an impostor's steady stream of odd windows drives the
trust down within a few windows.

Inputs are calibrated scores (the owner's own quantile, see
:mod:`profiles.calibration`): ``q`` in [0, 1], where 1 means beyond anything the
owner did recently.

>>> t = TrustScore()
>>> t.level
'trusted'
>>> for _ in range(6):
...     _ = t.update(1.0)
>>> t.level, round(t.value, 1)
('suspicious', 40.0)
>>> for _ in range(40):
...     _ = t.update(0.3)
>>> t.level
'trusted'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LEVELS: Final = ("trusted", "uncertain", "suspicious", "impostor")


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """How trust moves. Defaults keep a genuine user's expected change positive."""

    threshold: float = 0.9  # calibrated score above which a window costs trust
    reward: float = 1.5  # gain for a typical window
    penalty: float = 10.0  # loss for a window at the very top of the scale
    trusted: float = 70.0  # level boundaries on the 0..100 trust scale
    uncertain: float = 50.0
    suspicious: float = 30.0


DEFAULT_POLICY: Final = TrustPolicy()


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

    def update(self, calibrated: float) -> float:
        """Apply one judged window; return the change."""
        change = self.delta(calibrated)
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
