"""``cadence keys issue LOGIN``: the key a user's agent signs its batches with.

For the operator who provisions desks: the key is derived from the workers' signing
secret (``CADENCE_BATCH_AUTH_SECRET_FILE``) and the user's pseudonym (from the login
under ``CADENCE_PSEUDONYM_KEY_FILE``, or given with ``--pseudonym``). Put it in the
user's profile on the desks they use, readable by them only, and point the agent at it
with ``CADENCE_USER_KEY_FILE`` (docs/collectors.md, "Signed batches"). Issuing again
gives the same key: rotating keys means a new signing secret.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

_PSEUDONYM = re.compile(r"[0-9a-f]{64}")


def configure(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from collectors.batch_auth import SECRET_FILE_ENV, KeyFileError, signing_secret, user_key
    from collectors.identity import MissingPseudonymKey, load_pseudonym_key, pseudonym

    def fail(message: str) -> int:
        print(f"cadence keys issue: {message}", file=sys.stderr)
        return 2

    try:
        secret = signing_secret()
    except KeyFileError as exc:
        return fail(str(exc))
    if secret is None:
        return fail(f"set {SECRET_FILE_ENV} to the workers' signing secret")
    if args.pseudonym:
        if not _PSEUDONYM.fullmatch(args.login):
            return fail("--pseudonym wants the 64 lowercase hex digits `cadence pseudonym` prints")
        user = args.login
    else:
        if not args.login.strip():
            return fail("an empty login names nobody")
        try:
            user = pseudonym(args.login, load_pseudonym_key())
        except MissingPseudonymKey as exc:
            return fail(str(exc))
    key = user_key(secret, user).hex()
    if args.out is None:
        print(key)
        return 0
    try:
        # O_EXCL: an existing key file (perhaps another user's) is never replaced.
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return fail(f"cannot create {args.out}: {exc.strerror}")
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    print(f"wrote the key of {user[:12]}... to {args.out}", file=sys.stderr)
    return 0
