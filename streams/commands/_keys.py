"""What ``cadence keys issue`` and ``cadence keys revoke`` share: the user named on the
command line, the signing secret, the revocation list, and the key file written.

Errors are :class:`Refused`: the command prints them as one line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from collectors.batch_auth import (
    SECRET_FILE_ENV,
    KeyFileError,
    format_user_key,
    signing_secret,
    user_key,
)
from collectors.identity import MissingPseudonymKey, load_pseudonym_key, pseudonym
from streams import revocations
from streams.privacy import PSEUDONYM
from streams.revocations import RevocationFileError, RevokedKeys


class Refused(Exception):
    """Why a keys command does nothing: printed as ``cadence keys ...: message``."""


def add_user_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("login", help="login name as the workstation sees it (or a pseudonym)")
    parser.add_argument(
        "--pseudonym",
        action="store_true",
        help="LOGIN is already the user's pseudonym (64 hex digits), as `cadence pseudonym` prints",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the key to FILE (created readable by its owner only; never overwritten) "
        "instead of printing it",
    )


def user_of(args: argparse.Namespace) -> str:
    """The pseudonym of the user the command names."""
    if args.pseudonym:
        if not PSEUDONYM.fullmatch(args.login):
            raise Refused(
                "--pseudonym wants the 64 lowercase hex digits `cadence pseudonym` prints"
            )
        return str(args.login)
    if not args.login.strip():
        raise Refused("an empty login names nobody")
    try:
        return pseudonym(args.login, load_pseudonym_key())
    except MissingPseudonymKey as exc:
        raise Refused(str(exc)) from None


def current_secret() -> bytes:
    """The signing secret keys are issued from (the first of the workers' file)."""
    try:
        secret = signing_secret()
    except KeyFileError as exc:
        raise Refused(str(exc)) from None
    if secret is None:
        raise Refused(f"set {SECRET_FILE_ENV} to the workers' signing secret")
    return secret


def revoked_keys() -> RevokedKeys | None:
    """The revocation list of ``CADENCE_BATCH_AUTH_REVOKED_FILE``, None if unset."""
    try:
        return revocations.from_env()
    except RevocationFileError as exc:
        raise Refused(str(exc)) from None


def create_key_file(path: Path) -> int:
    """A new file for a key, readable by its owner only: its descriptor."""
    try:
        # O_EXCL: an existing key file (perhaps another user's) is never replaced.
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise Refused(f"cannot create {path}: {exc.strerror}") from None


def deliver_key(
    secret: bytes, user: str, generation: int, out: Path | None, fd: int | None
) -> None:
    """Print ``user``'s key of ``generation`` under ``secret`` as its key file holds it, or
    write it to ``out`` (opened as ``fd``)."""
    text = format_user_key(user_key(secret, user, generation), generation)
    if out is None or fd is None:
        print(text)
        return
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(text + "\n")
    print(f"wrote the key of {user[:12]}... (generation {generation}) to {out}", file=sys.stderr)
