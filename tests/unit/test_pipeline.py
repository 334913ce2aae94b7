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


def test_each_judged_window_carries_the_state_right_after_it() -> None:
    from collectors.wire import EventBatch, KeyEvent

    def batch(seq: int, t0: float, session: str) -> EventBatch:
        return EventBatch(
            device="d",
            user="u",
            session=session,
            seq=seq,
            sent_at_ms=1.7e12,
            clock_offset_ms=1.7e12 - 1e7,
            events=(KeyEvent("kd", t0, 1), KeyEvent("ku", t0 + 80.0, 1)),
        )

    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    pipeline.add(batch(0, 0.0, "s"), None)
    # One batch closes two windows: the open one (session change) and its own (span).
    pipeline.add(batch(1, 0.0, "t"), None)
    _, judged = pipeline.add(batch(2, 6000.0, "t"), None)
    assert [j.window.reason for j in judged] == ["span"]
    _, judged = pipeline.add(batch(3, 0.0, "u"), None)
    pipeline.windower.window_ms = 0.0
    _, both = pipeline.add(batch(4, 10.0, "v"), None)
    assert [j.window.reason for j in both] == ["session_change", "span"]
    first, second = (UserState.from_bytes(j.state_bytes) for j in both)
    # What is persisted for the first window must not already contain the second.
    assert first.cursors["d"].last_seq == 3 and first.windows == second.windows - 1
    assert second.cursors["d"].last_seq == 4


class DecodingPipeline(Pipeline[None]):
    """The worker as it was: the profile decoded from its bytes for every window."""

    def judge(self, window):  # type: ignore[no-untyped-def]
        self.state_of(window.user).decoded = None
        return super().judge(window)


def _judged(pipeline: Pipeline[None], batches: list) -> list:
    return [j for b in batches for j in pipeline.add(b, None)[1]]


def test_profiles_kept_in_memory_judge_as_profiles_decoded_for_every_window(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from collectors.simulate import Takeover
    from profiles.user import EnrollmentPolicy
    from streams import judge

    # The demo's short enrolment, so that profiles judge (and the victim is flagged).
    fast = EnrollmentPolicy(min_presses=200, min_actions=40, min_sessions=1)
    monkeypatch.setattr(judge, "enrollment_policy", lambda: fast)
    wl = Workload(users=5, seed=7, takeovers=[Takeover(user_index=4, at_s=150.0)])
    batches = [b for _, b in wl.batches(until_s=420)]
    kept = _judged(Pipeline(lambda user: None, clock_ms=lambda: 0.0), batches)
    decoded = _judged(DecodingPipeline(lambda user: None, clock_ms=lambda: 0.0), batches)
    assert len(kept) == len(decoded) > 50
    assert [j.verdict for j in kept] == [j.verdict for j in decoded]
    assert [j.state_bytes for j in kept] == [j.state_bytes for j in decoded]
    assert {"trusted", "impostor"} <= {j.verdict.level for j in kept if j.verdict}


def test_a_window_that_fails_leaves_the_profile_as_last_persisted(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from profiles.user import UserProfile

    batches = [b for _, b in Workload(users=1, seed=3).batches(until_s=60)]
    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    judged = _judged(pipeline, batches[: len(batches) // 2])
    state = pipeline.states[batches[0].user]
    persisted = judged[-1].state_bytes
    assert state.decoded is not None

    def fail(self, *args):  # type: ignore[no-untyped-def]
        raise RuntimeError("learning failed after the evidence was taken")

    monkeypatch.setattr(UserProfile, "_learn", fail)
    failed = _judged(pipeline, batches[len(batches) // 2 :])
    assert failed and all(j.error is not None for j in failed)
    # The half-updated profile is dropped; the state is the last one persisted.
    assert state.decoded is None
    assert (
        UserState.from_bytes(failed[-1].state_bytes).profile
        == UserState.from_bytes(persisted).profile
    )
