"""The worker's stored per-user state when the table holds bytes it cannot read."""

from __future__ import annotations

import pytest

from streams.app import create_app
from streams.settings import WorkerSettings
from streams.state import UserState
from streams.windows import Cursor


@pytest.mark.parametrize(
    "stored",
    [b"garbage", b"CUS", b"\x00" * 64, UserState().to_bytes().replace(b'"w":0', b'"w":x')],
    ids=["foreign", "short", "zeros", "bad-json"],
)
def test_an_unreadable_stored_state_starts_the_user_over_and_is_counted(stored: bytes) -> None:
    # Raising would dead-letter every later batch of the user, for good.
    worker = create_app(WorkerSettings(app_id="cadence-test-state", store="memory://"))
    worker.user_profiles.data[b"u"] = stored
    before = worker.metrics.profile_resets._value.get()
    assert worker._load_state("u") == UserState()
    assert worker.metrics.profile_resets._value.get() == before + 1


def test_a_readable_stored_state_is_loaded() -> None:
    worker = create_app(WorkerSettings(app_id="cadence-test-state", store="memory://"))
    state = UserState(cursors={"d": Cursor("s", 7)}, windows=3)
    worker.user_profiles.data[b"u"] = state.to_bytes()
    assert worker._load_state("u") == state
    assert worker._load_state("nobody") is None
