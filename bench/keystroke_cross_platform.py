#!/usr/bin/env python3
"""Keystroke takeover with another platform's typing as the owner's held-out part, both ways.

Offline measurement behind docs/evaluation.md, "Another platform's typing". `cadence
evaluate takeover --keystrokes DIR --keystroke-holdout file` holds out each typist's last
file in name order (instagram here); this runs that protocol in both directions (enrol on
facebook, hold out instagram; and the reverse), with everything else as the CLI does it:
the background fitted on the enrolment recordings, the shipped enrolment policy asking one
session (each typist enrols on one recording). Variants ``CELLS,H`` change the rolling
keystroke context and the CUSUM threshold, as bench/keystroke_context.py does.

    .venv/bin/python bench/keystroke_cross_platform.py --data ../shared/datasets/keystrokes-freetext
    .venv/bin/python bench/keystroke_cross_platform.py --data ... 300,5 250,5 200,6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.datasets.freetext import iter_sessions  # noqa: E402
from profiles.background import Background  # noqa: E402
from profiles.enrollment import EnrollmentPolicy  # noqa: E402
from profiles.evaluation.takeover import (  # noqa: E402
    Account,
    enrolment_background,
    evaluate_takeover,
    split_by_session,
)
from profiles.keystrokes import KeystrokeEvents  # noqa: E402
from profiles.trust import TrustPolicy  # noqa: E402


def accounts(root: Path, held_out: str) -> list[Account]:
    """Each typist with two or more files: ``held_out``'s file held out, the rest enrol."""
    by: dict[str, list[tuple[str, KeystrokeEvents]]] = {}
    for user, session, s in iter_sessions(root):
        if s.t_ns.size:
            events = KeystrokeEvents.from_ns(s.t_ns, s.is_down, s.key_class)
            by.setdefault(user, []).append((session, events))
    return [
        split_by_session(user, sorted(recs, key=lambda r: r[0].startswith(held_out)), 5.0, 1)
        for user, recs in sorted(by.items())
        if len(recs) >= 2
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="DIR/<user>/<platform>.csv")
    parser.add_argument("variants", nargs="*", default=["300,5"], help="CELLS,H (default 300,5)")
    args = parser.parse_args()
    for held_out in ("instagram", "facebook"):
        typists = accounts(args.data, held_out)
        background = enrolment_background(typists, [], Background.default())
        for variant in args.variants:
            cells, threshold = int(variant.split(",")[0]), float(variant.split(",")[1])
            result = evaluate_takeover(
                typists,
                background,
                "keystrokes",
                enrollment=EnrollmentPolicy(keyboard_cells=cells, min_sessions=1),
                trust_policy=TrustPolicy(threshold=threshold),
            )
            alarmed = [
                (g.owner, g.entries["suspicious"], g.entries["impostor"])
                for g in result.genuine
                if g.entries["suspicious"]
            ]
            print(f"held out {held_out}, {variant}: {result.summary()}")
            print(f"  (owner, suspicious, impostor) {alarmed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
