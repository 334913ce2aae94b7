"""The product story of ``make demo``, offline: the taken-over account is flagged, nobody else is.

The demo's workload (20 simulated people, seed 7, user 4 taken over at 150 s by a
stranger at the unlocked desk, the demo's short enrolment) is replayed through the
worker's own logic (:func:`streams.pipeline.replay`), so what this checks is what the
demo shows, minus Kafka.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from unittest import mock

import pytest

from collectors.simulate import Takeover, Workload
from streams import judge
from streams.pipeline import replay
from streams.verdict import LEVELS

DEMO_ENROLLMENT = {
    "CADENCE_ENROLL_MIN_PRESSES": "200",
    "CADENCE_ENROLL_MIN_ACTIONS": "40",
    "CADENCE_ENROLL_MIN_SESSIONS": "1",
}
VICTIM, AT_S, UNTIL_S = 4, 150.0, 480.0
#: Simulated seconds after the takeover by which the victim must read ``impostor``:
#: the stranger first types ~30 s after sitting down, their typing comes in short
#: bursts, and a context (~100 presses) of it is needed.
DETECT_WITHIN_S = 180.0


@pytest.fixture()
def demo_env() -> Iterator[None]:
    judge.enrollment_policy.cache_clear()
    with mock.patch.dict(os.environ, DEMO_ENROLLMENT):
        yield
    judge.enrollment_policy.cache_clear()


def test_demo_takeover_is_caught_and_nobody_else_is_flagged(demo_env: None) -> None:
    wl = Workload(users=20, seed=7, takeovers=[Takeover(user_index=VICTIM, at_s=AT_S)])
    index = {u.user: u.index for u in wl.users}
    start = wl.start_wall_ms
    first_impostor: float | None = None
    worst: dict[int, int] = {}
    active = set()
    for v in replay(b for _, b in wl.batches(until_s=UNTIL_S)):
        i, t_s = index[v.user], (v.window_end_ms - start) / 1000.0
        if v.enrollment != "active":
            continue
        active.add(i)
        if i == VICTIM and t_s >= AT_S:
            if v.level == "impostor" and first_impostor is None:
                first_impostor = t_s
            continue
        worst[i] = max(worst.get(i, 0), LEVELS.index(v.level))
    assert len(active) >= 15, "most simulated users finish enrolling"
    assert first_impostor is not None, "the taken-over account never read impostor"
    assert first_impostor - AT_S <= DETECT_WITHIN_S
    flagged = {i: LEVELS[r] for i, r in worst.items() if r >= LEVELS.index("suspicious")}
    assert not flagged, f"genuine users flagged: {flagged}"
