"""What the Balabit reader left out of a directory, on stderr.

``evaluate mouse`` (enrolment and test sessions) and ``evaluate takeover --mouse`` read
the same layout and must say the same, as :mod:`streams.commands._freetext` does for
keystrokes: an unusable session by name with its reason, as it is met, then the rows
that did not parse (a refused file is named instead, its rows not counted again).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from collectors.datasets.balabit import BalabitSession, SessionRef


@dataclass
class Reading:
    """Sessions read under one directory, and what they left out."""

    bad_rows: int = 0
    unusable: int = 0

    def load(self, ref: SessionRef, what: str | None) -> BalabitSession:
        """``ref``'s session; an unusable one is counted, and named as ``skipped WHAT
        account/file: why`` unless ``what`` is None (its caller lists it elsewhere)."""
        from collectors.datasets.balabit import load_session

        s = load_session(ref.path)
        self.bad_rows += 0 if s.refused else s.skipped
        self.unusable += bool(s.unusable)
        if s.unusable and what is not None:
            # tqdm.write: the progress bar of the read is still on the line.
            tqdm.write(
                f"skipped {what} {ref.account}/{ref.path.name}: {s.unusable}", file=sys.stderr
            )
        return s

    def report_rows(self, root: Path) -> None:
        if self.bad_rows:
            print(f"{root}: skipped {self.bad_rows} rows that did not parse", file=sys.stderr)
