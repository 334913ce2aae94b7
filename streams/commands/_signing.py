"""``--sign`` for the commands that publish batches from the operator's side (simulate,
replay): each user's tag derived from the workers' own signing secret, so that a worker
set to ``CADENCE_BATCH_AUTH=require`` judges them. A desk signs with its user's key only
(collectors.batch_auth); the secret never goes to a desk."""

from __future__ import annotations

import argparse
import os
import sys

from collectors.batch_auth import KeyFileError, Signer, read_key_file, secret_signer

SECRET_ENV = "CADENCE_BATCH_AUTH_SECRET_FILE"


def add_sign_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sign",
        action="store_true",
        help=f"tag each batch with its user's key from the signing secret in {SECRET_ENV} "
        "(for workers with CADENCE_BATCH_AUTH=require)",
    )


def signer_or_exit(args: argparse.Namespace, command: str) -> Signer | None | int:
    """The signer ``--sign`` asks for (None without it), or 2 after a one-line error."""
    if not args.sign:
        return None
    path = os.environ.get(SECRET_ENV)
    if not path:
        print(f"cadence {command}: --sign needs {SECRET_ENV}", file=sys.stderr)
        return 2
    try:
        return secret_signer(read_key_file(path, f"signing secret ({SECRET_ENV})"))
    except KeyFileError as exc:
        print(f"cadence {command}: {exc}", file=sys.stderr)
        return 2
