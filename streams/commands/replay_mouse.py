"""``cadence replay mouse DIR``: publish Balabit-layout mouse sessions as raw batches.

``DIR/training_files/<user>/session_*`` (or ``--split test_files``), or
``DIR/<user>/session_*``; each dataset user becomes one device whose sessions play
back to back, all users at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from streams.commands._replay import configure_common, run_replay

if TYPE_CHECKING:
    from collectors.replay import Recording


def configure(parser: argparse.ArgumentParser) -> None:
    configure_common(parser)
    parser.add_argument(
        "--split",
        default="training_files",
        help="subfolder to read when DIR has one (default training_files)",
    )


def run(args: argparse.Namespace) -> int:
    from collectors.replay import mouse_recordings

    def recordings(
        root: Path, limit: int | None, users: Iterable[str] | None
    ) -> Iterable[Recording]:
        return mouse_recordings(root, split=args.split, limit_sessions=limit, users=users)

    return run_replay(args, "mouse", recordings)
