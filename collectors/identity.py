"""Who and where: the user pseudonym, the device id and the session id.

The login name never leaves the workstation: batches carry HMAC-SHA256(login) under a
deployment secret, so the pipeline can group a user's batches while nobody without
the secret can name the user (and nobody can brute-force a directory of logins
against the pseudonyms, as they could against a plain hash). The secret has no
default on purpose: a default would be the same in every deployment, i.e. public.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path

KEY_FILE_ENV = "CADENCE_PSEUDONYM_KEY_FILE"
KEY_ENV = "CADENCE_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16
DEFAULT_IDLE_MS = 15 * 60 * 1000.0

_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_DEVICE_ID = re.compile(r"dev-[0-9a-f]{32}")

log = logging.getLogger(__name__)


class MissingPseudonymKey(RuntimeError):
    """No deployment secret configured (or one too short to be a secret)."""


def load_pseudonym_key(env: Mapping[str, str] | None = None) -> bytes:
    """The deployment secret, from ``CADENCE_PSEUDONYM_KEY_FILE`` or ``CADENCE_PSEUDONYM_KEY``."""
    env = os.environ if env is None else env
    if path := env.get(KEY_FILE_ENV):
        try:
            key = Path(path).read_bytes().strip()
        except OSError as exc:
            raise MissingPseudonymKey(f"cannot read {KEY_FILE_ENV}={path}: {exc}") from None
        source = f"{KEY_FILE_ENV}={path}"
    elif value := env.get(KEY_ENV):
        key = value.strip().encode()
        source = KEY_ENV
    else:
        raise MissingPseudonymKey(
            f"no pseudonymisation secret: set {KEY_FILE_ENV} to a file holding the deployment's "
            f"secret (preferred), or {KEY_ENV}; e.g. create one with "
            "`python3 -c 'import secrets; print(secrets.token_hex(32))' > /etc/cadence/pseudonym.key`"
        )
    if len(key) < MIN_KEY_BYTES:
        raise MissingPseudonymKey(f"the secret from {source} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def pseudonym(login: str, key: bytes) -> str:
    """HMAC-SHA256 of the login name under the deployment secret, as 64 hex digits."""
    return hmac.new(key, login.encode(), hashlib.sha256).hexdigest()


def current_login() -> str:
    return getpass.getuser()


def _machine_fingerprint() -> str:
    for candidate in _MACHINE_ID_FILES:
        try:
            value = Path(candidate).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return socket.gethostname()


def device_id(key: bytes, state_dir: Path) -> str:
    """A stable opaque id for this workstation, stored under ``state_dir``.

    Derived from the machine id (or host name) under the deployment secret, so the
    pipeline cannot map it back to a host name; stored so that it stays the same when
    the host is renamed. A stored value that is not an id this function writes (a file
    damaged by a crash or a full disk) is replaced by a fresh derivation: batches from a
    garbled id would be refused by every worker while the agent counts them as sent.
    """
    path = state_dir / "device-id"
    try:
        stored = path.read_bytes().decode("ascii").strip()
    except FileNotFoundError:
        stored = ""
    except (OSError, ValueError) as exc:
        log.warning("cannot read the stored device id %s (%s): deriving it again", path, exc)
        stored = ""
    if _DEVICE_ID.fullmatch(stored):
        return stored
    if stored:
        log.warning("the stored device id in %s is damaged: deriving it again", path)
    digest = hmac.new(key, b"device:" + _machine_fingerprint().encode(), hashlib.sha256)
    value = "dev-" + digest.hexdigest()[:32]
    try:
        # This user's only: the spool beside it holds raw batches (collectors.spool).
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="ascii") as out:
            out.write(value + "\n")
            out.flush()
            # Without it a power cut after the rename can leave an empty or zero-filled file.
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        # The derivation is deterministic: an unstored id is only lost on a host rename.
        log.warning("cannot store the device id in %s (%s); using it unstored", path, exc)
    return value


def key_identity_key(key: bytes) -> bytes:
    """Sub-key for the key-identity hashes, so they never equal a pseudonym computation."""
    return hmac.new(key, b"cadence-key-identity-v1", hashlib.sha256).digest()


def suspended_ms() -> float:
    """Milliseconds this machine has spent suspended since boot; 0 where unknown.

    Event times run on ``CLOCK_MONOTONIC``, which stops while the machine sleeps: a lid
    closed for an hour is no gap at all in them. Linux's ``CLOCK_BOOTTIME`` counts the
    sleep too, so the difference is the time spent suspended. Other platforms have no
    such pair of clocks in Python: there the idle rule sees active time only.
    """
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return 0.0
    monotonic = time.monotonic_ns()  # first: the later read of the other is never behind
    return max(0.0, (time.clock_gettime_ns(boottime) - monotonic) / 1e6)


class SessionTracker:
    """The session id: new on agent start (login), on unlock and on resume after idle.

    Idle includes time the machine spent suspended (:func:`suspended_ms`): a laptop
    reopened after a night starts a new session even if its lock went unnoticed.
    """

    def __init__(
        self, idle_ms: float = DEFAULT_IDLE_MS, suspended_ms: Callable[[], float] = suspended_ms
    ) -> None:
        self.idle_ms = idle_ms
        self._suspended_ms = suspended_ms
        # Whole ms: a fractional shift added to both sides of the idle comparison
        # rounds a gap of exactly idle_ms to just under it.
        self._shift_ms = float(int(suspended_ms()))
        self.session = ""
        self.reason = ""
        self._last_input_ms: float | None = None
        self.new_session("login")

    def new_session(self, reason: str) -> str:
        self.session = secrets.token_hex(16)
        self.reason = reason
        return self.session

    def observe(self, first_ms: float, last_ms: float) -> bool:
        """Record input seen between ``first_ms`` and ``last_ms`` (monotonic ms).

        Returns True when this input resumes after an idle period and so starts a new
        session.
        """
        # On a clock that also runs while suspended. Only whole seconds of sleep move it:
        # the two clocks are read apart, and their skew must not decide a gap at the
        # threshold. Events of a batch that spans a suspend are shifted with the rest:
        # the new session starts one batch early.
        suspended = self._suspended_ms()
        if suspended - self._shift_ms >= 1000.0:
            self._shift_ms = float(int(suspended))
        first_ms, last_ms = first_ms + self._shift_ms, last_ms + self._shift_ms
        resumed = self._last_input_ms is not None and first_ms - self._last_input_ms >= self.idle_ms
        if resumed:
            self.new_session("idle-resume")
        if self._last_input_ms is None or last_ms > self._last_input_ms:
            self._last_input_ms = last_ms
        return resumed


def monotonic_ms() -> float:
    return time.monotonic_ns() / 1e6
