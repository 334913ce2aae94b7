"""``cadence keys revoke LOGIN``: refuse a user's keys from now on, and issue their next.

For a copied key (a stolen laptop, a leaver): appends ``PSEUDONYM N`` to the revocation
file (``CADENCE_BATCH_AUTH_REVOKED_FILE``, created if absent), N being one past the
user's current generation, so that every key of theirs issued so far is refused, and
issues their key of generation N as ``cadence keys issue`` does. Nobody else's key
changes. The workers refuse the old keys once they read the file again: put it where
they read it (docs/collectors.md, "Revoking one user's key").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from streams.commands._keys import add_user_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_user_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from collectors.batch_auth import MAX_GENERATION
    from streams.commands._keys import (
        Refused,
        create_key_file,
        current_secret,
        deliver_key,
        user_of,
    )
    from streams.revocations import REVOKED_FILE_ENV, RevocationFileError, append, load

    fd = None
    try:
        secret = current_secret()
        user = user_of(args)
        path = os.environ.get(REVOKED_FILE_ENV)
        if not path:
            raise Refused(f"set {REVOKED_FILE_ENV} to the workers' revocation file")
        try:
            # A file that does not parse is not appended to: the workers would refuse it.
            minimum = load(path).min_generation(user) if os.path.exists(path) else 0
        except RevocationFileError as exc:
            raise Refused(str(exc)) from None
        generation = minimum + 1
        if generation > MAX_GENERATION:
            raise Refused("this user's keys are revoked up to the last generation there is")
        # Before the revocation is written: a key file that cannot be created stops the
        # command with nothing changed.
        fd = None if args.out is None else create_key_file(args.out)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            append(path, user, generation, f"{stamp} cadence keys revoke")
        except OSError as exc:
            if fd is not None:  # the key file just created, empty: not left behind
                os.close(fd)
                Path(args.out).unlink(missing_ok=True)
            raise Refused(f"cannot write the revocation file {path}: {exc.strerror}") from None
    except Refused as exc:
        print(f"cadence keys revoke: {exc}", file=sys.stderr)
        return 2
    print(
        f"revoked the keys of {user[:12]}... below generation {generation} in {path}: "
        "the workers refuse them once they read it (docs/collectors.md, "
        '"Revoking one user\'s key")',
        file=sys.stderr,
    )
    deliver_key(secret, user, generation, args.out, fd)
    return 0
