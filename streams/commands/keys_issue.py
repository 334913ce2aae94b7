"""``cadence keys issue LOGIN``: the key a user's agent signs its batches with.

For the operator who provisions desks: the key is derived from the workers' signing
secret (``CADENCE_BATCH_AUTH_SECRET_FILE``) and the user's pseudonym (from the login
under ``CADENCE_PSEUDONYM_KEY_FILE``, or given with ``--pseudonym``). Put it in the
user's profile on the desks they use, readable by them only, and point the agent at it
with ``CADENCE_USER_KEY_FILE`` (docs/collectors.md, "Signed batches"). Issuing again
gives the same key. The key is of the user's current generation: the one their line of
the revocation file (``CADENCE_BATCH_AUTH_REVOKED_FILE``, if set) names, 0 without one
(``cadence keys revoke`` moves a user to the next); ``--generation`` chooses that one or
the next (to install a key before the old one is revoked), never a revoked one, nor one
further ahead: ``cadence keys revoke`` revokes below the next generation only, so a key
issued beyond it would outlive the revocation meant for it.
"""

from __future__ import annotations

import argparse
import sys

from streams.commands._keys import add_user_arguments


def generation_number(text: str) -> int:
    from collectors.batch_auth import MAX_GENERATION, check_generation

    try:
        value = int(text)
        check_generation(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a key generation is 0 to {MAX_GENERATION}") from None
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    add_user_arguments(parser)
    parser.add_argument(
        "--generation",
        type=generation_number,
        default=None,
        metavar="N",
        help="issue the key of generation N: the user's current one (the default, from "
        "CADENCE_BATCH_AUTH_REVOKED_FILE if set, else 0) or the next",
    )


def run(args: argparse.Namespace) -> int:
    from streams.commands._keys import (
        Refused,
        create_key_file,
        current_secret,
        deliver_key,
        revoked_keys,
        user_of,
    )
    from streams.revocations import REVOKED_FILE_ENV

    try:
        secret = current_secret()
        user = user_of(args)
        revoked = revoked_keys()
        minimum = 0 if revoked is None else revoked.min_generation(user)
        generation = minimum if args.generation is None else args.generation
        if revoked is not None and generation < minimum:
            # Issued, it would be refused by every worker: a desk stopped, not signed.
            raise Refused(
                f"this user's keys below generation {minimum} are revoked ({revoked.path}): "
                f"issue generation {minimum} or {minimum + 1}"
            )
        if generation > minimum + 1:
            # `keys revoke` revokes below minimum + 1: a key further ahead, once copied,
            # would still be accepted after the user's next revocation.
            raise Refused(
                f"generation {generation} would outlive this user's next revocation "
                f"(`cadence keys revoke` moves them to {minimum + 1}): issue generation "
                f"{minimum} or {minimum + 1}"
            )
        fd = None if args.out is None else create_key_file(args.out)
    except Refused as exc:
        print(f"cadence keys issue: {exc}", file=sys.stderr)
        return 2
    if revoked is None and args.generation is None:
        # Without the list this command cannot know a revoked user's generation: their
        # key of generation 0 would be refused by the workers (a rotation re-issuing
        # every key would stop the desks of everyone ever revoked).
        print(
            f"cadence keys issue: {REVOKED_FILE_ENV} is unset: issuing generation 0, "
            "refused for a user the workers' revocation file names",
            file=sys.stderr,
        )
    deliver_key(secret, user, generation, args.out, fd)
    return 0
