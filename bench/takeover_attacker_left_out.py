#!/usr/bin/env python3
"""Takeover detection with each attacker left out of the population background.

Offline measurement behind docs/evaluation.md, "Time no alarm could be raised in" (point 2,
the attacker in the population). ``cadence evaluate takeover`` fits one background on every
account's enrolment segments, the attacker's included; a deployed product's population is
strangers. Here each takeover is judged by a profile enrolled (and run through its genuine
part, as the CLI does) on a background fitted without that attacker's recordings (for a desk,
without both of the attacker's: typing and pointing). Everything else is the CLI's: the same
accounts and splits (its own parser and readers), enrolment policy, windows, trust. Printed
per modality: the CLI's detection figures and the attacker-left-out ones, and how many pairs
each way differ. False alarms are not re-counted (no attacker in a genuine run). The CLI's
``--users``, ``--json`` and ``--plot`` are accepted (its parser) but not used: every account
is run and the figures are printed only.

    D=$(realpath ../shared/datasets)
    .venv/bin/python bench/takeover_attacker_left_out.py --keystrokes $D/keystrokes-freetext \\
        --mouse $D/balabit --desk
    .venv/bin/python bench/takeover_attacker_left_out.py --keystrokes $D/keystrokes-freetext \\
        --keystroke-holdout file

About 50 s for keystrokes, 160 s for the mouse and 165 s for the desk on a 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiles.background import Background  # noqa: E402
from profiles.evaluation.takeover import (  # noqa: E402
    Account,
    _q,
    desk_account,
    enrolment_background,
    evaluate_takeover,
)
from streams.commands import evaluate_takeover as command  # noqa: E402


def figures(seconds: np.ndarray) -> str:
    s = np.asarray(seconds, dtype=np.float64)
    return (
        f"median {_q(s, 0.5):.0f} s, p90 {_q(s, 0.9):.0f} s, within 60 s {np.mean(s <= 60):.0%},"
        f" within 300 s {np.mean(s <= 300):.0%}, ever {np.mean(np.isfinite(s)):.0%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    command.configure(parser)  # the CLI's own options and defaults
    args = parser.parse_args()
    with contextlib.redirect_stderr(io.StringIO()):  # the readers' progress bars
        typists = command._keystroke_accounts(args.keystrokes, args) if args.keystrokes else []
        pointers = command._mouse_accounts(args.mouse, args) if args.mouse else []
    shipped = Background.default()
    policy = command._typing_enrolment(typists) if args.keystroke_holdout == "file" else None
    runs: dict[str, tuple[list[Account], list[Background]]] = {}
    if typists:
        runs["keystrokes"] = (
            typists,
            [
                enrolment_background([k for k in typists if k is not a], pointers, shipped)
                for a in typists
            ],
        )
    if pointers:
        runs["mouse"] = (
            pointers,
            [
                enrolment_background(typists, [m for m in pointers if m is not a], shipped)
                for a in pointers
            ],
        )
    if args.desk and typists and pointers:
        pairs = list(zip(typists, pointers, strict=False))
        runs["desk"] = (
            [desk_account(k, m) for k, m in pairs],
            [
                enrolment_background(
                    [k for k in typists if k is not t], [m for m in pointers if m is not p], shipped
                )
                for t, p in pairs
            ],
        )
    everyone = enrolment_background(typists, pointers, shipped)
    for modality, (accounts, backgrounds) in runs.items():
        run = functools.partial(
            evaluate_takeover,
            accounts,
            everyone,
            modality,
            enrollment=None if modality == "mouse" else policy,
            window_s=args.window_seconds,
            max_impostor_s=args.max_impostor_seconds,
        )
        with_attacker = {(t.owner, t.attacker): t.seconds for t in run().takeovers}
        by_attacker = {a.name: bg for a, bg in zip(accounts, backgrounds, strict=True)}
        left_out = run(
            background_for=lambda owner, attacker, bgs=by_attacker: (
                everyone if attacker is None else bgs[attacker.name]
            )
        )
        without = {(t.owner, t.attacker): t.seconds for t in left_out.takeovers}
        keys = sorted(with_attacker)
        a = np.array([with_attacker[k] for k in keys])
        b = np.array([without[k] for k in keys])
        print(f"{modality}: attacker in the background (the CLI): {figures(a)}")
        print(f"{modality}: attacker left out:                   {figures(b)}")
        print(
            f"{modality}: {len(keys)} pairs, slower when left out {int(np.sum(b > a))},"
            f" faster {int(np.sum(b < a))}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
