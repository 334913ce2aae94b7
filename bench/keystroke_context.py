#!/usr/bin/env python3
"""Keystroke takeover against the rolling context's length and the CUSUM threshold.

Offline measurement behind docs/evaluation.md, "Keystroke context length" (not
adopted). Each variant ``CELLS,H`` runs the protocol of ``cadence evaluate takeover
--keystrokes`` with ``EnrollmentPolicy(keyboard_cells=CELLS)`` and
``TrustPolicy(threshold=H)``, everything else as shipped, and prints the CLI's summary,
the owners whose held-out typing entered ``suspicious`` or worse, and the null
false-alarm rate of that context and threshold (:func:`false_alarm_contexts`).

    .venv/bin/python bench/keystroke_context.py --data ../shared/datasets/keystrokes-freetext \\
        300,5 250,5 200,6 200,5 150,6 150,5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiles.background import Background  # noqa: E402
from profiles.evaluation.takeover import evaluate_takeover  # noqa: E402
from profiles.trust import TrustPolicy, false_alarm_contexts  # noqa: E402
from profiles.user import EnrollmentPolicy  # noqa: E402
from streams.commands.evaluate_takeover import _keystroke_accounts, configure  # noqa: E402

#: Timing cells per hour of active typing (~120 contexts of 300), and per 5 s window:
#: what the null simulation needs to turn contexts between alarms into alarms per 8 h.
CELLS_PER_HOUR = 36_000
CELLS_PER_WINDOW = 55


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="free-text DIR/<user>/<session>.csv"
    )
    parser.add_argument("variants", nargs="+", help="CELLS,H pairs, e.g. 300,5")
    args = parser.parse_args()
    cli = argparse.ArgumentParser()
    configure(cli)
    accounts = _keystroke_accounts(args.data, cli.parse_args(["--keystrokes", str(args.data)]))
    background = Background.default()
    for variant in args.variants:
        cells, threshold = int(variant.split(",")[0]), float(variant.split(",")[1])
        trust = TrustPolicy(threshold=threshold)
        result = evaluate_takeover(
            accounts,
            background,
            "keystrokes",
            enrollment=EnrollmentPolicy(keyboard_cells=cells),
            trust_policy=trust,
        )
        between = false_alarm_contexts(trust, context=cells, new_per_window=CELLS_PER_WINDOW)
        null_per_8h = 8 * CELLS_PER_HOUR / cells / between
        alarmed = [
            (g.owner, g.entries["suspicious"], g.entries["impostor"])
            for g in result.genuine
            if g.entries["suspicious"]
        ]
        print(f"{variant}: {result.summary()}")
        print(
            f"  null false alarms {null_per_8h:.2f} per 8 h; (owner, suspicious, impostor) {alarmed}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
