"""Revoked user keys: which key generations of which users the workers refuse.

A copied key (a stolen laptop, a leaver's desk) is revoked for its user alone: the
operator issues the user a key of a later generation (collectors.batch_auth) and writes
one line in the file ``CADENCE_BATCH_AUTH_REVOKED_FILE`` names::

    # 2026-12-08: laptop stolen
    5d41402abc4b2a76b9719d911017c592...  1

``PSEUDONYM MIN_GENERATION``: that user's keys of a generation below it are refused
(outcome ``revoked``); every other user's keys are untouched. Blank lines and lines
starting with ``#`` are skipped; a user named twice keeps the highest generation, so
``cadence keys revoke`` only ever appends. The file is also the record of each user's
current generation: ``cadence keys issue`` issues a revoked user's keys from it. The
format is read (:func:`parse`) and written (:func:`append`) here only.

The workers read the file at start (a file that cannot be read stops them, as the
signing secret's does) and again when it changes (:func:`reload`), so that a revocation
takes effect without a restart. A file that can no longer be read, or no longer parses,
never lifts a revocation: the list read last stays in force until it can be read again.

>>> text = "# note\\n" + "ab" * 32 + " 2\\n\\n" + "ab" * 32 + " 1\\n"
>>> parse(text, "revoked") == {"ab" * 32: 2}
True
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from collectors.batch_auth import GENERATION_DIGITS, MAX_GENERATION
from streams.privacy import PSEUDONYM

REVOKED_FILE_ENV = "CADENCE_BATCH_AUTH_REVOKED_FILE"
#: How often a worker looks whether the file changed (a stat; it is read only then).
RECHECK_SECONDS = 15.0
_GENERATION = re.compile(GENERATION_DIGITS)


class RevocationFileError(ValueError):
    """A revocation file that cannot be read, or holds a line that is not a revocation."""


@dataclass(frozen=True)
class RevokedKeys:
    """The revocations read from ``path``, and what the file was when they were read."""

    path: str
    #: Lowest key generation accepted, per user (a pseudonym); 0 for users not in it.
    minimum: Mapping[str, int]
    # (inode, size, mtime in ns) before it was read: an edit in place changes the mtime,
    # an atomic replace (a Kubernetes Secret update swaps a symlink) the inode.
    stamp: tuple[int, int, int]

    def min_generation(self, user: str) -> int:
        return self.minimum.get(user, 0)


def parse(text: str, path: str | Path) -> dict[str, int]:
    """The lowest accepted generation per user, from the file's ``text``; errors name
    the file and the line."""
    minimum: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = f"the revocation file {path}, line {number}"
        if len(fields) != 2:
            raise RevocationFileError(f"{where}: expected PSEUDONYM MIN_GENERATION")
        user, generation = fields
        # A login or a typo here would revoke nobody while seeming to work: refused.
        if not PSEUDONYM.fullmatch(user):
            raise RevocationFileError(
                f"{where}: the user must be a pseudonym, 64 lowercase hex digits as "
                "`cadence pseudonym LOGIN` prints (not a login)"
            )
        if not _GENERATION.fullmatch(generation):
            raise RevocationFileError(
                f"{where}: MIN_GENERATION must be 1 to {MAX_GENERATION}: keys of a "
                "generation below it are refused"
            )
        minimum[user] = max(minimum.get(user, 0), int(generation))
    return minimum


def append(path: str, user: str, generation: int, note: str) -> None:
    """Add ``# note`` and the line revoking ``user``'s keys below ``generation`` to the
    file at ``path`` (created if absent, readable by its owner only), in one write, after
    a line break if its last line has none (else the new line would be glued to it).
    OSError if it cannot."""
    text = f"# {note}\n{user} {generation}\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = "\n" + text
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _unreadable(path: str, exc: OSError) -> RevocationFileError:
    return RevocationFileError(f"cannot read the revocation file {path}: {exc.strerror or exc}")


def load(path: str) -> RevokedKeys:
    """The revocations of the file at ``path``; RevocationFileError if it cannot be read
    or parsed."""
    try:
        # Stamped before it is read: a change while reading shows at the next look.
        stamp = _stamp(path)
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RevocationFileError(f"the revocation file {path} is not text") from None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return RevokedKeys(path, parse(text, path), stamp)


def reload(current: RevokedKeys) -> RevokedKeys:
    """``current`` if its file has not changed since, else the file read again.

    RevocationFileError if it cannot be: the caller keeps ``current`` in force (a file
    being replaced, or damaged, must not lift the revocations it held) and asks again
    later; a file that stays bad fails every time, so its failures keep being counted."""
    try:
        if _stamp(current.path) == current.stamp:
            return current
    except OSError as exc:
        raise _unreadable(current.path, exc) from None
    return load(current.path)


def from_env(env: Mapping[str, str] | None = None) -> RevokedKeys | None:
    """The revocations of ``CADENCE_BATCH_AUTH_REVOKED_FILE``; None if it is unset."""
    path = (os.environ if env is None else env).get(REVOKED_FILE_ENV)
    return load(path) if path else None
