"""The shared unlock rule, and each platform probe's reading of its OS answer.

The Windows and macOS probes run here against fakes of ``user32`` and of pyobjc's
``Quartz`` that answer what the documentation says the real ones answer; they are
not exercised on a real Windows or macOS machine (none is available to these
tests). The Linux probe's real-subprocess tests are in test_lock_watcher.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from collectors.unlock import (
    DESKTOP_SWITCHDESKTOP,
    InputDesktopProbe,
    LockWatcher,
    LoginctlProbe,
    ProbeFailed,
    SessionDictProbe,
    parse_locked_hint,
    platform_probe,
    windows_user32,
)


class Scripted:
    """A probe answering from a list: True/False/None, or an exception to raise."""

    what = "scripted probe"

    def __init__(self, answers: Iterable[bool | None | Exception]) -> None:
        self._answers: Iterator[bool | None | Exception] = iter(answers)

    def __call__(self) -> bool | None:
        answer = next(self._answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


def polls(answers: list[bool | None | Exception]) -> list[bool]:
    watcher = LockWatcher(Scripted(answers), interval_s=0.0)
    return [watcher.unlocked() for _ in answers]


def test_one_unlock_per_lock() -> None:
    assert polls([False, True, True, False, False, True, False]) == [
        False,
        False,
        False,
        True,
        False,
        False,
        True,
    ]


def test_starting_unlocked_is_not_an_unlock() -> None:
    assert polls([False, False]) == [False, False]


def test_failures_never_unlock_and_keep_the_lock_seen() -> None:
    # locked, two failures (fewer than MAX_FAILURES), then unlocked: one unlock,
    # reported when an answer comes, not when the probe fails.
    assert polls([True, None, ProbeFailed("busy"), False]) == [False, False, False, True]


def test_a_success_resets_the_failure_count(caplog: pytest.LogCaptureFixture) -> None:
    answers: list[bool | None | Exception] = [None, None, False, None, None, True, False]
    watcher = LockWatcher(Scripted(answers), interval_s=0.0)
    with caplog.at_level(logging.WARNING):
        seen = [watcher.unlocked() for _ in answers]
    assert seen == [False] * 6 + [True]
    assert watcher.available and "detection off" not in caplog.text


def test_consecutive_failures_switch_it_off_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = Scripted([True, None, RuntimeError("boom"), None, False, False])
    watcher = LockWatcher(probe, interval_s=0.0)
    with caplog.at_level(logging.WARNING):
        seen = [watcher.unlocked() for _ in range(6)]
    assert seen == [False] * 6  # the later "unlocked" answers are never asked for
    assert not watcher.available
    warnings = [r for r in caplog.records if "screen-unlock detection off" in r.getMessage()]
    assert len(warnings) == 1 and "scripted probe failed 3 times" in warnings[0].getMessage()


def test_polls_at_most_once_per_interval() -> None:
    watcher = LockWatcher(Scripted([True, False]), interval_s=3600.0)
    assert not watcher.unlocked()
    assert not watcher.unlocked()  # not asked again within the hour (the list would allow it)


# -- Linux --------------------------------------------------------------------


@pytest.mark.parametrize(
    "returncode, stdout, stderr, locked",
    [(0, "yes\n", "", True), (0, "no\n", "", False)],
)
def test_locked_hint_parsing(returncode: int, stdout: str, stderr: str, locked: bool) -> None:
    assert parse_locked_hint(returncode, stdout, stderr) is locked


@pytest.mark.parametrize(
    "returncode, stdout, stderr, why",
    [
        (1, "", "Failed to get session: No session 'c7' known\n", "No session"),
        (0, "\n", "", "answered ''"),
        (0, "maybe\n", "", "answered 'maybe'"),
    ],
)
def test_locked_hint_failures(returncode: int, stdout: str, stderr: str, why: str) -> None:
    with pytest.raises(ProbeFailed, match=why):
        parse_locked_hint(returncode, stdout, stderr)


# -- Windows ------------------------------------------------------------------


class FakeUser32:
    """OpenInputDesktop/CloseDesktop as documented: NULL (None via HDESK) while the
    input desktop is Winlogon's secure desktop, a handle otherwise."""

    def __init__(self) -> None:
        self.locked = False
        self.calls: list[tuple[int, bool, int]] = []
        self.open_handles: set[int] = set()
        self._next = 0x1000

    def OpenInputDesktop(self, flags: int, inherit: bool, access: int) -> int | None:  # noqa: N802
        self.calls.append((flags, inherit, access))
        if self.locked:
            return None
        self._next += 8
        self.open_handles.add(self._next)
        return self._next

    def CloseDesktop(self, handle: int) -> bool:  # noqa: N802
        self.open_handles.remove(handle)
        return True


def test_input_desktop_probe_reads_null_as_locked_and_closes_its_handles() -> None:
    user32 = FakeUser32()
    probe = InputDesktopProbe(user32)
    assert probe() is False
    user32.locked = True
    assert probe() is True
    assert user32.calls == [(0, False, DESKTOP_SWITCHDESKTOP)] * 2
    assert not user32.open_handles


def test_windows_lock_unlock_through_the_watcher() -> None:
    # A UAC prompt looks exactly like this (secure desktop, then back): a new session.
    user32 = FakeUser32()
    watcher = LockWatcher(InputDesktopProbe(user32), interval_s=0.0)
    seen = []
    for locked in (False, True, False, False):
        user32.locked = locked
        seen.append(watcher.unlocked())
    assert seen == [False, False, True, False]
    assert not user32.open_handles


def test_a_raising_user32_is_a_failure_not_an_unlock() -> None:
    class Broken:
        def OpenInputDesktop(self, *args: Any) -> int:  # noqa: N802
            raise OSError("[WinError 5] Access is denied")

    watcher = LockWatcher(InputDesktopProbe(Broken()), interval_s=0.0)
    assert not any(watcher.unlocked() for _ in range(LockWatcher.MAX_FAILURES))
    assert not watcher.available


def test_windows_user32_refuses_off_windows() -> None:
    with pytest.raises(OSError):
        windows_user32()


# -- macOS --------------------------------------------------------------------


class FakeQuartz:
    """``CGSessionCopyCurrentDictionary`` as pyobjc bridges it: a mapping, or None
    outside a GUI login session."""

    def __init__(self, info: dict[str, Any] | None) -> None:
        self.info = info

    def CGSessionCopyCurrentDictionary(self) -> dict[str, Any] | None:  # noqa: N802
        return self.info


@pytest.mark.parametrize(
    "info, locked",
    [
        ({"kCGSSessionOnConsoleKey": 1, "kCGSSessionUserIDKey": 501}, False),
        ({"kCGSSessionOnConsoleKey": 1, "CGSSessionScreenIsLocked": 1}, True),
        ({"kCGSSessionOnConsoleKey": 1, "CGSSessionScreenIsLocked": 0}, False),
        ({"kCGSSessionOnConsoleKey": 0}, True),  # switched away (fast user switching)
        ({}, False),
        (None, None),  # no GUI session: no answer
    ],
)
def test_session_dict_probe(info: dict[str, Any] | None, locked: bool | None) -> None:
    assert SessionDictProbe(FakeQuartz(info))() is locked


def test_macos_lock_unlock_through_the_watcher() -> None:
    quartz = FakeQuartz({"kCGSSessionOnConsoleKey": 1})
    watcher = LockWatcher(SessionDictProbe(quartz), interval_s=0.0)
    seen = []
    for info in (
        {"kCGSSessionOnConsoleKey": 1},
        {"kCGSSessionOnConsoleKey": 1, "CGSSessionScreenIsLocked": 1},
        None,
        {"kCGSSessionOnConsoleKey": 1},
    ):
        quartz.info = info
        seen.append(watcher.unlocked())
    assert seen == [False, False, False, True]


# -- choosing the probe ---------------------------------------------------------


def no_import(name: str) -> Any:
    raise ImportError(f"No module named {name!r}")


def test_macos_picks_quartz_lazily() -> None:
    asked: list[str] = []

    def fake_import(name: str) -> Any:
        asked.append(name)
        return FakeQuartz({})

    probe = platform_probe("darwin", import_module=fake_import)
    assert isinstance(probe, SessionDictProbe) and asked == ["Quartz"]


def test_macos_without_quartz_is_off_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert platform_probe("darwin", import_module=no_import) is None
    assert "screen-unlock detection off" in caplog.text and "Quartz" in caplog.text


def test_windows_picks_user32() -> None:
    user32 = FakeUser32()
    probe = platform_probe("win32", user32=lambda: user32)
    assert isinstance(probe, InputDesktopProbe)
    assert probe() is False


def test_windows_without_user32_is_off_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> Any:
        raise OSError("cannot load user32")

    with caplog.at_level(logging.WARNING):
        assert platform_probe("win32", user32=missing) is None
    assert "screen-unlock detection off" in caplog.text and "user32" in caplog.text


def test_linux_picks_loginctl(tmp_path: Any) -> None:
    loginctl = tmp_path / "loginctl"
    loginctl.write_text("#!/bin/sh\n")
    loginctl.chmod(0o755)
    probe = platform_probe("linux", env={"PATH": str(tmp_path), "XDG_SESSION_ID": "c7"})
    assert isinstance(probe, LoginctlProbe) and "c7" in probe.what


def test_other_platforms_have_none(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert platform_probe("freebsd14", env={"PATH": ""}) is None
    assert "no lock probe for freebsd14" in caplog.text


def test_while_locked_the_probe_is_asked_again_sooner() -> None:
    # Whoever unlocks types at once: at the usual 5 s their input would go out in the
    # owner's session until the next poll.
    watcher = LockWatcher(Scripted([True, False]), interval_s=3600.0, locked_interval_s=0.0)
    assert [watcher.unlocked(), watcher.unlocked()] == [False, True]


class _Sender:
    """What the agent uses of its BatchSender."""

    pending = 0

    def __init__(self) -> None:
        self.batches: list[Any] = []

    def next_seq(self, device: str) -> int:
        return len(self.batches)

    def send(self, batch: Any) -> None:
        self.batches.append(batch)

    def poll(self, timeout: float) -> int:
        return 0


def test_input_due_when_the_unlock_is_seen_goes_out_in_the_new_session() -> None:
    # The unlock was polled after the due batches were sent: the unlocker's first
    # batch went out under the owner's session.
    from collectors.agent import Agent
    from collectors.batcher import Batcher
    from collectors.metrics import CollectorMetrics
    from collectors.wire import KeyEvent

    sender, batcher = _Sender(), Batcher(max_events=2, max_age_ms=10_000)
    watcher = LockWatcher(Scripted([True, False]), interval_s=0.0)
    agent = Agent(
        sender,  # type: ignore[arg-type]
        device="d",
        user="u" * 64,
        metrics=CollectorMetrics(),
        batcher=batcher,
        lock_watcher=watcher,
    )
    agent.step(0)  # the screen is locked
    owner = agent.sessions.session
    batcher.add(KeyEvent("kd", 10.0, 1))
    batcher.add(KeyEvent("ku", 90.0, 1))  # the unlocker's first keystroke: a batch due
    agent.step(0)
    assert [b.session for b in sender.batches] == [agent.sessions.session]
    assert agent.sessions.session != owner
