"""What the free-text keystroke reader left out of a directory, on stderr.

``evaluate keystrokes`` and ``evaluate takeover --keystrokes`` read the same
layout and must say the same: a refused file by name with its reason, then per
directory the rows that did not parse and the repeated rows dropped. Silently,
either would move the figures (a file in ms reads as an absurdly slow typist; a
file concatenated with itself doubles every hold).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from collectors.datasets.freetext import FreeTextSession


def reported(
    root: Path, sessions: Iterable[tuple[str, str, FreeTextSession]]
) -> Iterator[tuple[str, str, FreeTextSession]]:
    """Pass ``sessions`` (read under ``root``) through; report on stderr what was left out.

    A refused file is named as it is met; the row counts follow once all are read.
    """
    bad_rows = duplicates = 0
    for user, session, s in sessions:
        if s.refused:
            # tqdm.write: the progress bar of the read is still on the line.
            where = f"{user}/{session} under {root}"
            tqdm.write(f"skipped file {where} ({s.skipped} rows): {s.refused}", file=sys.stderr)
        else:
            bad_rows += s.skipped
        duplicates += s.duplicates
        yield user, session, s
    if bad_rows:
        print(f"{root}: skipped {bad_rows} rows that did not parse", file=sys.stderr)
    if duplicates:
        print(
            f"{root}: skipped {duplicates} duplicate rows (same t_ns, type and key as an"
            " earlier row of the file)",
            file=sys.stderr,
        )
