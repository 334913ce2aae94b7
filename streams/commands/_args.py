"""Argument checks the commands make before any work (reading data, reaching Kafka).

>>> refuse("demo", [(True, "fine"), (False, "--rate must be a positive number")])
True
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable


def refuse(command: str, checks: Iterable[tuple[bool, str]]) -> bool:
    """Print the first failed check as ``cadence COMMAND: message``; True if one failed.

    The commands then exit with status 2, the usage-error status argparse uses too.
    """
    for ok, message in checks:
        if not ok:
            print(f"cadence {command}: {message}", file=sys.stderr)
            return True
    return False


def positive(value: float) -> bool:
    """A finite number above 0 (NaN and inf pass ``> 0`` comparisons badly or not at all)."""
    return math.isfinite(value) and value > 0
