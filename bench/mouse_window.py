#!/usr/bin/env python3
"""CPU cost of one 30-action window for the histogram mouse detectors: score + learn.

Two paths: ``score_many`` + ``learn_many`` (what ``cadence evaluate mouse`` times, each
quantising the window) and ``bins`` + ``score_bins`` + ``learn_bins`` (what the profile
does: quantise once). Real actions (the first sessions of one Balabit account), a
detector that has learned 2 000 actions, min and median over ``--repeat`` runs, several
rounds alternated; the min is the figure to compare on a shared machine.

    .venv/bin/python bench/mouse_window.py --data ../shared/datasets/balabit
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.datasets import balabit  # noqa: E402
from profiles.detectors.histogram_ratio import HistogramRatio  # noqa: E402
from profiles.detectors.typed_histogram_ratio import TypedHistogramRatio  # noqa: E402
from profiles.mouse import TYPE_COLUMNS, action_types, extract  # noqa: E402
from profiles.population import Population  # noqa: E402
from streams.recordings import balabit_to_mouse_events  # noqa: E402


def _timed(det: Any, step: Callable[[Any], None], learned: np.ndarray, repeat: int) -> list[float]:
    det.learn_many(learned)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step(det)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/balabit"))
    ap.add_argument("--account", default="user7")
    ap.add_argument("--repeat", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sessions = sorted((args.data / "training_files" / args.account).glob("session_*"))[:3]
    X = np.vstack([extract(balabit_to_mouse_events(balabit.read_session(p))) for p in sessions])
    pop = Population.fit(X, groups=action_types(X))
    window, learned = X[:30], X[:2000]

    def many(d: Any) -> None:
        d.score_many(window)
        d.learn_many(window)

    def via_bins(d: Any) -> None:
        b = d.bins(window)
        d.score_bins(b)
        d.learn_bins(b)

    factories: dict[str, Callable[[], Any]] = {
        "histogram_ratio": lambda: HistogramRatio(pop),
        "typed_histogram_ratio": lambda: TypedHistogramRatio(pop, TYPE_COLUMNS),
    }
    for r in range(args.rounds):
        for name, make in factories.items():
            cells = []
            for path, step in (("score_many+learn_many", many), ("bins+score+learn", via_bins)):
                t = _timed(make(), step, learned, args.repeat)
                cells.append(f"{path} {min(t):6.1f} / {float(np.median(t)):6.1f}")
            print(f"round {r + 1} {name:22s} " + "   ".join(cells) + "  (us, min / median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
