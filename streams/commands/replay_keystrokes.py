"""``cadence replay keystrokes DIR``: publish free-text keystroke sessions as raw batches.

``DIR/<user>/<session>.csv`` with ``type,key,t_ns`` rows; keys become key classes as
they are read, so key identity never reaches the wire.
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


def run(args: argparse.Namespace) -> int:
    from collectors.replay import keystroke_recordings

    def recordings(
        root: Path, limit: int | None, users: Iterable[str] | None
    ) -> Iterable[Recording]:
        return keystroke_recordings(root, limit_sessions=limit, users=users)

    return run_replay(args, "keystrokes", recordings)
