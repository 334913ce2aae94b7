"""Screen-unlock detection: one transition rule, one lock probe per platform.

A *probe* answers "is the screen locked right now?": True, False, or None when it
could not tell. :class:`LockWatcher` polls it and turns the answers into unlock
events, the same way on every platform:

* an unlock is a poll answering False after one answering True, reported once;
* a probe that fails (None, or an exception, whose text goes into the warning)
  never counts as an unlock, and does not forget a lock seen before it;
* :attr:`LockWatcher.MAX_FAILURES` failures in a row turn detection off with one
  WARNING -- the idle rule still starts a new session after any lock long enough
  to matter.

Probes, chosen by :func:`platform_probe`:

* Linux: logind's ``LockedHint`` through ``loginctl`` (:class:`LoginctlProbe`).
* Windows: ``OpenInputDesktop`` through ctypes (:class:`InputDesktopProbe`).
* macOS: ``CGSessionCopyCurrentDictionary`` through pyobjc's Quartz
  (:class:`SessionDictProbe`).

Each is a poll rather than a subscription (D-Bus, a hidden window for
``WM_WTSSESSION_CHANGE``, an NSDistributedNotificationCenter observer) because a
poll every 5 s is cheap and needs neither a new dependency nor an event loop of
its own inside the agent.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

LockProbe = Callable[[], bool | None]

DEFAULT_INTERVAL_S = 5.0
# While the screen is locked: whoever unlocks it types at once, and until the next poll
# their input would go out in the owner's session. Polled faster only while locked
# (the desk is idle then), so the cost of a poll (a loginctl run) is paid rarely.
LOCKED_INTERVAL_S = 1.0


class LockWatcher:
    """Notices screen unlocks by polling a platform's :data:`LockProbe`.

    ``probe=None`` picks the running platform's probe (:func:`platform_probe`);
    where there is none, or it cannot be set up, the watcher is unavailable.
    """

    MAX_FAILURES = 3

    def __init__(
        self,
        probe: LockProbe | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        locked_interval_s: float = LOCKED_INTERVAL_S,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.locked_interval_s = min(locked_interval_s, interval_s)
        self._probe = probe if probe is not None else platform_probe(env=env)
        self._what = what or getattr(self._probe, "what", None) or "the lock probe"
        self._locked = False
        self._next = 0.0
        self._failures = 0

    @property
    def available(self) -> bool:
        return self._probe is not None and self._failures < self.MAX_FAILURES

    def unlocked(self) -> bool:
        """True once per lock -> unlock transition."""
        now = time.monotonic()
        if not self.available or now < self._next:
            return False
        self._next = now + self.interval_s
        assert self._probe is not None
        try:
            locked = self._probe()
        except Exception as exc:  # a probe's bug must not stop the capture loop
            return self._failed(str(exc) or type(exc).__name__)
        if locked is None:
            return self._failed("no answer")
        self._failures = 0
        was_locked, self._locked = self._locked, bool(locked)
        if self._locked:
            self._next = now + self.locked_interval_s
        return was_locked and not self._locked

    def _failed(self, why: str) -> bool:
        # No answer is no news: a failed poll must not read as an unlock, and the
        # lock state seen before it stands until a poll answers again.
        self._failures += 1
        if self._failures == self.MAX_FAILURES:
            log.warning(
                "screen-unlock detection off: %s failed %d times (%s); "
                "sessions still change at start and after idle",
                self._what,
                self._failures,
                why.splitlines()[0] if why else "",
            )
        return False


class ProbeFailed(Exception):
    """A probe could not tell; the message says why, for the one warning."""


class LoginctlProbe:
    """Linux: logind's ``LockedHint`` for this session, via ``loginctl``.

    The session is ``XDG_SESSION_ID`` when the agent runs inside the login session,
    else logind's ``auto`` -- the caller's session, or the user's graphical one,
    which is what a systemd *user* unit (the documented way to run the agent, outside
    any session) needs. A logind that cannot answer (no systemd, or one too old for
    ``auto``) fails every poll. A poll costs ~8 ms of CPU, mostly loginctl's own.
    """

    def __init__(self, loginctl: str, session_id: str) -> None:
        self._loginctl = loginctl
        self._session_id = session_id
        self.what = f"`loginctl show-session {session_id}`"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoginctlProbe | None:
        env = os.environ if env is None else env
        loginctl = shutil.which("loginctl", path=env.get("PATH"))
        if loginctl is None:
            return None
        return cls(loginctl, env.get("XDG_SESSION_ID") or "auto")

    def __call__(self) -> bool:
        try:
            done = subprocess.run(
                [self._loginctl, "show-session", self._session_id, "-p", "LockedHint", "--value"],
                capture_output=True,
                text=True,
                timeout=2.0,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ProbeFailed(str(exc)) from exc
        return parse_locked_hint(done.returncode, done.stdout, done.stderr)


def parse_locked_hint(returncode: int, stdout: str, stderr: str) -> bool:
    """``loginctl ... -p LockedHint --value`` output -> locked; ProbeFailed otherwise."""
    out = stdout.strip()
    if returncode != 0 or out not in ("yes", "no"):
        raise ProbeFailed(stderr.strip() or f"answered {out!r}")
    return out == "yes"


# winuser.h: the access right the lock-detection idiom asks for.
DESKTOP_SWITCHDESKTOP = 0x0100


class InputDesktopProbe:
    """Windows: locked when the input desktop cannot be opened.

    While the workstation is locked the input desktop is Winlogon's secure desktop,
    which a user's process may not open, so ``OpenInputDesktop`` returns NULL. The
    UAC consent prompt, the Ctrl+Alt+Del screen and other secure-desktop prompts look
    the same and there is no API to tell them apart: such a prompt reads as a lock,
    and leaving it as an unlock, so it starts a new session. That is harmless -- a
    session boundary the profile does not need -- and preferred, for a rare prompt,
    over ``WTSQuerySessionInformation``'s lock flag, which Microsoft documents as
    reversed on Windows 7 / Server 2008 R2 and which needs a structure layout.

    ``user32`` is ``ctypes.WinDLL("user32")`` with prototypes set (see
    :func:`windows_user32`), or any object with the same two functions (tests).
    """

    what = "OpenInputDesktop"

    def __init__(self, user32: Any) -> None:
        self._user32 = user32

    def __call__(self) -> bool:
        handle = self._user32.OpenInputDesktop(0, False, DESKTOP_SWITCHDESKTOP)
        if not handle:
            return True
        self._user32.CloseDesktop(handle)  # one handle per poll would leak otherwise
        return False


def windows_user32() -> Any:
    """user32 with pointer-sized prototypes, so a 64-bit HDESK is not cut to an int."""
    if sys.platform != "win32":
        raise OSError("user32 exists on Windows only")
    import ctypes
    from ctypes import wintypes

    user32 = ctypes.WinDLL("user32", use_last_error=True)
    user32.OpenInputDesktop.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    user32.OpenInputDesktop.restype = wintypes.HDESK
    user32.CloseDesktop.argtypes = [wintypes.HDESK]
    user32.CloseDesktop.restype = wintypes.BOOL
    return user32


class SessionDictProbe:
    """macOS: the console session's ``CGSSessionScreenIsLocked``.

    The key is present (1) only while the screen is locked. A session switched away
    from with fast user switching (``kCGSSessionOnConsoleKey`` false) counts as
    locked too, so returning to it starts a new session. No session dictionary
    (the agent outside a GUI login session) is no answer.

    ``quartz`` is pyobjc's ``Quartz`` module (a dependency of pynput on macOS),
    or any object with ``CGSessionCopyCurrentDictionary`` (tests).
    """

    what = "CGSessionCopyCurrentDictionary"

    def __init__(self, quartz: Any) -> None:
        self._quartz = quartz

    def __call__(self) -> bool | None:
        info = self._quartz.CGSessionCopyCurrentDictionary()
        if info is None:
            return None
        if not info.get("kCGSSessionOnConsoleKey", True):
            return True
        return bool(info.get("CGSSessionScreenIsLocked", False))


def platform_probe(
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    import_module: Callable[[str], Any] = importlib.import_module,
    user32: Callable[[], Any] = windows_user32,
) -> LockProbe | None:
    """The lock probe for ``platform`` (default: this one), or None with a WARNING."""
    platform = sys.platform if platform is None else platform
    probe: LockProbe | None = None
    why = ""
    if platform.startswith("linux"):
        probe = LoginctlProbe.from_env(env)
        why = "no `loginctl` on PATH (no systemd-logind)"
    elif platform == "win32":
        try:
            probe = InputDesktopProbe(user32())
        except (OSError, AttributeError) as exc:
            why = f"user32 unavailable ({exc})"
    elif platform == "darwin":
        try:
            # Imported here, not at the top: loading Quartz costs start-up time and
            # memory on a platform that needs it, and it exists nowhere else.
            probe = SessionDictProbe(import_module("Quartz"))
        except ImportError as exc:
            why = f"pyobjc's Quartz cannot be imported ({exc})"
    else:
        why = f"no lock probe for {platform}"
    if probe is None:
        log.warning(
            "screen-unlock detection off: %s; sessions still change at start and after idle",
            why,
        )
    return probe
