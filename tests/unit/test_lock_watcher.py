"""Screen unlock -> new session, through a stand-in for systemd's ``loginctl``.

This machine has no logind (no systemd as PID 1), so ``loginctl`` is replaced by
:mod:`tests.loginctl_stub`, which answers from a file what the real one would print. The agent-level check (real X input, a real broker) is in
tests/integration/test_capture_x11.py. The shared unlock rule on its own and the Windows
and macOS probes (against fakes) are in test_unlock.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from collectors.agent import LockWatcher
from tests.loginctl_stub import install_loginctl_stub


@pytest.mark.parametrize("session_env, asked", [("c7", "c7"), (None, "auto")])
def test_reports_each_unlock_once(tmp_path: Path, session_env: str | None, asked: str) -> None:
    state = tmp_path / "locked"
    install_loginctl_stub(tmp_path, state, asked)
    env = {"PATH": str(tmp_path)}
    if session_env:
        env["XDG_SESSION_ID"] = session_env
    watcher = LockWatcher(interval_s=0.0, env=env)
    assert watcher.available
    seen = []
    for hint in ("no", "yes", "yes", "no", "no", "yes", "no"):
        state.write_text(hint + "\n")
        seen.append(watcher.unlocked())
    assert seen == [False, False, False, True, False, False, True]


def test_polls_at_most_once_per_interval(tmp_path: Path) -> None:
    state = tmp_path / "locked"
    install_loginctl_stub(tmp_path, state, "c7")
    watcher = LockWatcher(interval_s=3600.0, env={"PATH": str(tmp_path), "XDG_SESSION_ID": "c7"})
    state.write_text("yes\n")
    assert not watcher.unlocked()  # the first poll: locked
    state.write_text("no\n")
    assert not watcher.unlocked()  # not asked again within the hour


def test_failures_never_read_as_unlocks_and_switch_it_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "locked"
    install_loginctl_stub(
        tmp_path, state, "another-session"
    )  # fails for ours, like a logind without it
    watcher = LockWatcher(interval_s=0.0, env={"PATH": str(tmp_path), "XDG_SESSION_ID": "c7"})
    state.write_text("yes\n")
    with caplog.at_level(logging.WARNING, logger="collectors.agent"):
        assert not any(watcher.unlocked() for _ in range(LockWatcher.MAX_FAILURES + 2))
    assert not watcher.available
    assert "screen-unlock detection off" in caplog.text and "No session" in caplog.text


def test_unavailable_without_loginctl(tmp_path: Path) -> None:
    watcher = LockWatcher(env={"PATH": str(tmp_path), "XDG_SESSION_ID": "c7"})
    assert not watcher.available and not watcher.unlocked()
