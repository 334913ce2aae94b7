"""The Kafka-free worker core: profiles that cannot be read are replaced, not fatal."""

from __future__ import annotations

from collectors.simulate import Workload
from streams.pipeline import Pipeline
from streams.state import UserState


def test_an_unreadable_stored_profile_makes_the_user_enroll_again() -> None:
    batches = [b for _, b in Workload(users=1, seed=3).batches(until_s=30)]
    # What an older model version (or a damaged record) would leave in the table.
    stored = UserState(profile=b"CUP0" + bytes(64))
    pipeline: Pipeline[None] = Pipeline(lambda user: stored)
    judged = [j for b in batches for j in pipeline.add(b, None)[1]]
    assert judged, "30 s of activity closes windows"
    first = judged[0]
    assert first.verdict is not None and first.error is None
    assert first.profile_reset and first.verdict.enrollment == "enrolling"
    # From then on the user has a readable profile again.
    assert not any(j.profile_reset for j in judged[1:])
