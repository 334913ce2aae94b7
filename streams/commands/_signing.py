"""``--sign`` for the commands that publish batches from the operator's side (simulate,
replay): each user's tag derived from the workers' own signing secret, so that a worker
set to ``CADENCE_BATCH_AUTH=require`` judges them. A desk signs with its user's key only
(collectors.batch_auth); the secret never goes to a desk."""

from __future__ import annotations

import argparse
import sys

from collectors.batch_auth import (
    SECRET_FILE_ENV,
    KeyFileError,
    Signer,
    secret_signer,
    signing_secret,
)
from streams import revocations
from streams.revocations import RevocationFileError


def add_sign_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sign",
        action="store_true",
        help=f"tag each batch with its user's key from the signing secret in {SECRET_FILE_ENV} "
        "(for workers with CADENCE_BATCH_AUTH=require; a user named in "
        "CADENCE_BATCH_AUTH_REVOKED_FILE signs with their current key generation)",
    )


def signer_or_exit(args: argparse.Namespace, command: str) -> Signer | None | int:
    """The signer ``--sign`` asks for (None without it), or 2 after a one-line error."""
    if not args.sign:
        return None
    try:
        secret = signing_secret()
    except KeyFileError as exc:
        print(f"cadence {command}: {exc}", file=sys.stderr)
        return 2
    if secret is None:
        print(f"cadence {command}: --sign needs {SECRET_FILE_ENV}", file=sys.stderr)
        return 2
    try:
        # A user the workers' revocation list names signs with their current generation,
        # as `cadence keys issue` would issue it (generation 0 would be refused).
        revoked = revocations.from_env()
    except RevocationFileError as exc:
        print(f"cadence {command}: {exc}", file=sys.stderr)
        return 2
    return (
        secret_signer(secret) if revoked is None else secret_signer(secret, revoked.min_generation)
    )
