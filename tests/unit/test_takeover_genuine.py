"""How the takeover protocol counts the owner's false alarms in the held-out part."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from profiles.evaluation.takeover import Account, Segment, run_genuine
from profiles.keystrokes import KeystrokeEvents


@dataclass
class _Trust:
    level: str


@dataclass
class _Verdict:
    level: str
    keyboard_score: float | None = 0.5
    mouse_score: float | None = None
    judged: bool = True


@dataclass
class _Profile:
    """Reads out a given sequence of levels, one per window, as a profile would."""

    trust: _Trust
    levels: list[str]
    enrollment: str = "active"
    seen: list[str] = field(default_factory=list)

    def assess(self, keys: object, mouse: object, session: str) -> _Verdict:
        self.seen.append(session)
        self.trust.level = self.levels[len(self.seen) - 1]
        return _Verdict(self.trust.level)


def _account(windows: int) -> Account:
    w = KeystrokeEvents(np.zeros(2), np.array([True, False]), np.zeros(2, np.int8))
    return Account("ann", enroll=(), genuine=(Segment("s9", (w,) * windows),), attack=())


@pytest.mark.parametrize(
    ("start", "levels", "impostor", "suspicious"),
    [
        ("trusted", ["trusted", "impostor", "impostor", "trusted"], 1, 1),
        ("trusted", ["suspicious", "impostor", "uncertain", "impostor"], 2, 2),
        # Flagged at the end of enrolment: the owner reads `impostor` from their first
        # window on, an alarm of theirs (it went uncounted before 2026-12-08).
        ("impostor", ["impostor", "impostor", "trusted", "trusted"], 1, 1),
        ("suspicious", ["suspicious", "trusted", "trusted", "trusted"], 0, 1),
        ("impostor", ["trusted", "trusted", "trusted", "trusted"], 0, 0),
    ],
)
def test_every_alarm_the_owner_sees_in_the_held_out_part_counts(
    start: str, levels: list[str], impostor: int, suspicious: int
) -> None:
    profile = _Profile(_Trust(start), levels)
    run = run_genuine(profile, _account(len(levels)), 5.0)  # type: ignore[arg-type]
    assert run.level_at_start == start
    assert run.entries == {"impostor": impostor, "suspicious": suspicious}
    assert run.windows == 4 and run.seconds == 20.0


def test_a_profile_still_enrolling_starts_uncertain() -> None:
    profile = _Profile(_Trust("impostor"), ["uncertain", "impostor"], enrollment="enrolling")
    run = run_genuine(profile, _account(2), 5.0)  # type: ignore[arg-type]
    assert run.level_at_start == "uncertain" and not run.active
    assert run.entries == {"impostor": 1, "suspicious": 1}


@dataclass
class _Enrolling:
    """Enrols for the first ``enrolling`` windows (reads `uncertain`, scores nothing), then
    judges: the shape of an owner whose profile becomes active in the held-out part."""

    trust: _Trust
    enrolling: int
    seen: int = 0

    @property
    def enrollment(self) -> str:
        return "active" if self.seen >= self.enrolling else "enrolling"

    def assess(self, keys: object, mouse: object, session: str) -> _Verdict:
        active = self.enrollment == "active"
        self.seen += 1
        return _Verdict("trusted" if active else "uncertain", 0.5 if active else None, None, active)


@pytest.mark.parametrize(("enrolling", "judged"), [(0, 6), (2, 4), (6, 0)])
def test_genuine_time_counts_only_the_windows_an_active_profile_judged(
    enrolling: int, judged: int
) -> None:
    """A profile still enrolling calls no one an impostor: its windows are not time at risk
    of a false alarm, and counted they diluted the rate per 8 h (keystrokes: 0.08 h of
    2.29 h; with --keystroke-holdout file 0.25 h of 3.45 h, until 2026-12-08)."""
    profile = _Enrolling(_Trust("trusted"), enrolling)
    run = run_genuine(profile, _account(6), 5.0)  # type: ignore[arg-type]
    assert run.windows == 6
    assert run.judged == judged and run.seconds == judged * 5.0


def test_each_held_out_session_the_owner_begins_flagged_counts_again() -> None:
    """Two held-out sessions (the default keystroke protocol holds out the end of each
    recording): the owner flagged at the end of the first reads `impostor` from the first
    window of the second, a second alarm."""
    w = KeystrokeEvents(np.zeros(2), np.array([True, False]), np.zeros(2, np.int8))
    account = Account(
        "ann",
        enroll=(),
        genuine=(Segment("fb#heldout", (w,) * 2), Segment("ig#heldout", (w,) * 2)),
        attack=(),
    )
    profile = _Profile(_Trust("trusted"), ["trusted", "impostor", "impostor", "trusted"])
    run = run_genuine(profile, account, 5.0)  # type: ignore[arg-type]
    assert profile.seen == ["fb#heldout"] * 2 + ["ig#heldout"] * 2
    assert run.entries == {"impostor": 2, "suspicious": 2}


def test_a_window_judged_without_a_score_is_genuine_time() -> None:
    """The window whose new session makes a modality active is judged (its level is the
    trust level) before its context holds a score: time at risk all the same."""

    class _NoScoreYet(_Profile):
        def assess(self, keys: object, mouse: object, session: str) -> _Verdict:
            super().assess(keys, mouse, session)
            return _Verdict(self.trust.level, None, None, judged=len(self.seen) > 1)

    profile = _NoScoreYet(_Trust("trusted"), ["uncertain", "trusted", "trusted"])
    run = run_genuine(profile, _account(3), 5.0)  # type: ignore[arg-type]
    assert run.windows == 3 and run.judged == 2 and run.seconds == 10.0
    assert run.scores == []
