"""``cadence pseudonym LOGIN``: the pseudonym under which cadence knows a login.

For an investigator who holds the deployment key (``CADENCE_PSEUDONYM_KEY_FILE``),
e.g. to find a named person's verdicts or to serve an access or erasure request.
There is no reverse command: a pseudonym can only be named by trying logins, which
is why the key must stay with the few people allowed to re-identify (docs/privacy.md).
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("login", nargs="+", help="login name(s) as the workstation sees them")


def run(args: argparse.Namespace) -> int:
    from collectors.identity import MissingPseudonymKey, load_pseudonym_key, pseudonym

    try:
        key = load_pseudonym_key()
    except MissingPseudonymKey as exc:
        print(f"cadence pseudonym: {exc}", file=sys.stderr)
        return 2
    blank = [login for login in args.login if not login.strip()]
    if blank:
        # No login is empty: a pseudonym for "" is one nobody has, and would be looked up
        # (verdicts, erasure) as if it named someone.
        print("cadence pseudonym: an empty login names nobody", file=sys.stderr)
        return 2
    for login in args.login:
        print(f"{pseudonym(login, key)}  {login}" if len(args.login) > 1 else pseudonym(login, key))
    return 0
