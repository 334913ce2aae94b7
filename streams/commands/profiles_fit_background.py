"""``cadence profiles fit-background``: fit the population models on enrollment recordings.

The result replaces the shipped ``profiles/data/background.bin`` when given to
the worker as ``CADENCE_BACKGROUND``. Use enrollment recordings only: never the
sessions you will judge.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keystrokes", type=Path, required=True, help="DIR of <user>/<session>.csv (type,key,t_ns)"
    )
    parser.add_argument(
        "--mouse",
        type=Path,
        required=True,
        help="DIR of <user>/session_* in the Balabit layout (e.g. balabit/training_files)",
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the model")


def run(args: argparse.Namespace) -> int:
    from collectors.datasets import balabit, freetext
    from profiles.background import fit_background
    from profiles.keystrokes import KeystrokeEvents
    from profiles.mouse import MouseEvents
    from streams.recordings import balabit_to_mouse_events, freetext_to_keystroke_events

    keystrokes: list[KeystrokeEvents] = [
        freetext_to_keystroke_events(s) for _, _, s in freetext.iter_sessions(args.keystrokes)
    ]
    mouse: list[MouseEvents] = [
        balabit_to_mouse_events(balabit.read_session(path))
        for path in sorted(args.mouse.glob("*/session_*"))
    ]
    if not keystrokes or not mouse:
        print(f"no recordings found ({len(keystrokes)} keystroke, {len(mouse)} mouse sessions)")
        return 2
    background = fit_background(keystrokes, mouse)
    data = background.to_bytes()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(
        f"background: {len(keystrokes)} keystroke and {len(mouse)} mouse sessions"
        f" -> {args.out} ({len(data)} bytes)"
    )
    return 0
