"""Output files of the evaluation commands.

Held-out runs name output paths in directories that do not exist yet; a path that
cannot be written is a clear error (exit status 2), not a traceback after minutes of work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def write_output(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path``, creating its directory; exit with status 2 if it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
    except OSError as exc:
        print(f"cannot write {path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def write_plot(path: Path, draw: Callable[[Path], None]) -> bool:
    """Draw a figure into ``path`` with ``draw``; False (and a message) if it cannot be written.

    A figure is secondary to the figures on stdout and in the JSON: a command whose plot
    cannot be written still prints its summary, then exits with status 2.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        draw(path)
    except OSError as exc:
        print(f"cannot write {path}: {exc}", file=sys.stderr)
        return False
    return True
