#!/usr/bin/env python3
"""Fingerprints of what the profile library computes, to show a change leaves it bit for bit.

Prints one sha256 prefix per check; run it on two source trees and compare the lines:

- ``assess``: every :class:`~profiles.user.Assessment` and the state bytes after it, over
  the streams of ``bench/assess.py`` (free-text users, Balabit sessions, the simulator);
- ``pair``: ``pair_presses`` and ``window_cells`` over every free-text recording, whole and
  in 5 s and 1 s windows (what ``cadence evaluate keystrokes`` reads);
- ``extract``: mouse ``extract`` over the Balabit training sessions and every fourth test
  session, whole and in 5 s windows (what ``cadence evaluate mouse`` reads).

    PYTHONPATH=TREE .venv/bin/python TREE/bench/fingerprint.py --data ../shared/datasets
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import assess  # noqa: E402

from profiles.background import Background  # noqa: E402
from profiles.evaluation.takeover import windows_of  # noqa: E402
from profiles.keystrokes import KeystrokeEvents, KeystrokeWindow, pair_presses, window_cells  # noqa: E402
from profiles.mouse import extract  # noqa: E402
from profiles.user import UserProfile  # noqa: E402


def _add(digest: hashlib._Hash, *arrays: np.ndarray) -> None:
    for a in arrays:
        digest.update(str((a.dtype, a.shape)).encode())
        digest.update(a.tobytes())


def fingerprint_assess(data: Path) -> None:
    bg = Background.default()
    sources = [
        ("keyboard", assess.keyboard_streams(data / "keystrokes-freetext", 6)),
        ("mouse", assess.mouse_streams(data / "balabit", 10, 150)),
        ("sim", assess.sim_streams(12, 300.0, 0)),
    ]
    for name, streams in sources:
        digest, n = hashlib.sha256(), 0
        for stream in streams:
            profile = UserProfile(bg, stream.policy)
            for keys, mouse, session in stream.windows:
                digest.update(repr(profile.assess(keys, mouse, session)).encode())
                digest.update(profile.to_bytes())
                n += 1
        print(f"assess {name}: {n} windows {digest.hexdigest()[:16]}", flush=True)


def fingerprint_pairing(data: Path) -> None:
    from collectors.datasets.freetext import iter_sessions

    digest, n = hashlib.sha256(), 0
    for _, _, s in iter_sessions(data / "keystrokes-freetext"):
        if not s.t_ns.size:
            continue
        ev = KeystrokeEvents.from_ns(s.t_ns, s.is_down, s.key_class)
        for w in (ev, *windows_of(ev, 5.0), *windows_of(ev, 1.0)):
            assert isinstance(w, KeystrokeEvents)
            p = pair_presses(w)
            _add(digest, p.t_down_ms, p.dwell_ms, p.key_class)
            if len(p) > 1:
                _add(digest, window_cells(KeystrokeWindow.from_presses(p)))
            n += 1
    print(f"pair+cells: {n} calls {digest.hexdigest()[:16]}", flush=True)


def fingerprint_extract(data: Path) -> None:
    from collectors.datasets.balabit import iter_sessions, read_session
    from streams.recordings import balabit_to_mouse_events

    digest, n = hashlib.sha256(), 0
    for split in ("training_files", "test_files"):
        for i, ref in enumerate(iter_sessions(data / "balabit", split)):
            if split == "test_files" and i % 4:
                continue
            ev = balabit_to_mouse_events(read_session(ref.path))
            for w in (ev, *windows_of(ev, 5.0)):
                _add(digest, extract(w))  # type: ignore[arg-type]
                n += 1
    print(f"extract: {n} calls {digest.hexdigest()[:16]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checks", nargs="*", default=["assess", "pair", "extract"])
    ap.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    args = ap.parse_args(argv)
    data = Path(args.data)
    run = {
        "assess": fingerprint_assess,
        "pair": fingerprint_pairing,
        "extract": fingerprint_extract,
    }
    for check in args.checks:
        run[check](data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
