#!/usr/bin/env python3
"""Scroll runs and short actions as more mouse action types: the Balabit session AUC.

Offline measurement behind docs/evaluation.md, "Scroll actions" (not adopted). The
challenge protocol of ``cadence evaluate mouse`` (each account enrols on its training
sessions; each labelled test session is scored against its account; one global AUC),
with the pointer actions scored by the shipped detector (``HistogramRatio`` over a
population fitted on the training actions) and, in the scroll variants, every *scroll
run* of the session scored too; a session's score is the mean over all its actions.

A scroll run: consecutive scroll ticks, a new run after a gap over ``SCROLL_GAP_MS``.
Its 9 features use timing, tick counts and direction sign only (never a position),
-1 where undefined; they get their own population (16 quantile bins) and
``HistogramRatio``. The kind term ``log P_pop(kind) - log P_user(kind)`` (pointer action
or scroll run, 2 bins, MAP-adapted with the same relevance) is added to every action's
score in the variants that use it. Variants:

- ``pointer``: the shipped score (``evaluate mouse``'s 0.938);
- ``scroll``: pointer and scroll runs, plus the kind term (the measured candidate);
- ``scroll-no-kind``: scroll runs scored by their features only;
- ``kind-only``: scroll runs scored by the kind term only (how often, not how);
- ``short``: pointer actions and *short actions* (those with fewer than ``MIN_POINTS``
  trajectory points, which the pointer features drop), 9 features defined for 1-3 points
  (:data:`SHORT_FEATURES`), their own population and ratio, a pointer/short kind term;
- ``scroll+short``: all three kinds, a 3-bin kind term.

    .venv/bin/python bench/scroll_actions.py --data ../shared/datasets/balabit
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.datasets import balabit  # noqa: E402
from profiles.detectors.histogram_ratio import HistogramRatio  # noqa: E402
from profiles.metrics import roc_auc  # noqa: E402
from profiles.mouse import (  # noqa: E402
    FEATURE_NAMES,
    MIN_POINTS,
    PAUSE_MS,
    ActionType,
    Button,
    MouseEvents,
    State,
    _segment,
    action_types,
    extract,
    pointer_events,
)
from profiles.population import Population  # noqa: E402
from streams.recordings import balabit_to_mouse_events  # noqa: E402

#: A gap between two ticks longer than this starts a new scroll run.
SCROLL_GAP_MS = 1_000.0
SCROLL_FEATURES = (
    "log_ticks",
    "log_duration_ms",
    "log_interval_mean_ms",
    "log_interval_min_ms",
    "interval_cv",
    "fraction_down",
    "direction_changes",
    "log_pause_before_ms",
    "log_pointer_events_during",
)
#: Short actions: the pointer features that are defined for 1-3 points (types PC and DD,
#: duration, pause before, click hold, points, path, chord), then the mean speed.
SHORT_FEATURES = (*FEATURE_NAMES[1:9], "log_speed")
VARIANTS = ("pointer", "scroll", "scroll-no-kind", "kind-only", "short", "scroll+short")


def scroll_runs(ev: MouseEvents) -> np.ndarray:
    """One row of :data:`SCROLL_FEATURES` per scroll run of a session."""
    tick = (ev.button == Button.SCROLL) & ((ev.state == State.DOWN) | (ev.state == State.UP))
    at = tick.nonzero()[0]
    if at.size == 0:
        return np.empty((0, len(SCROLL_FEATURES)))
    t = ev.t_ms.astype(np.float64)
    ts = t[at]
    gaps = np.diff(ts)
    new_run = np.r_[True, gaps > SCROLL_GAP_MS]
    first = new_run.nonzero()[0]
    k = first.size
    run = new_run.cumsum() - 1
    last = np.r_[first[1:] - 1, at.size - 1]
    ticks = last - first + 1
    inner = ~new_run[1:]
    interval, owner = gaps[inner], run[1:][inner]
    n_int = ticks - 1
    has1, has2 = n_int >= 1, n_int >= 2
    safe = np.maximum(n_int, 1)
    mean = np.bincount(owner, interval, minlength=k) / safe
    var = np.maximum(np.bincount(owner, interval * interval, minlength=k) / safe - mean**2, 0.0)
    int_min = np.full(k, np.inf)
    np.minimum.at(int_min, owner, interval)
    down = ev.state[at] == State.DOWN
    flips = np.bincount(owner, (down[1:] != down[:-1])[inner], minlength=k)
    a0 = at[first]
    pause = np.where(a0 > 0, t[a0] - t[np.maximum(a0 - 1, 0)], 0.0)
    during = (at[last] - a0 + 1) - ticks

    def log(v: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(v, 0.0))

    return np.column_stack(
        [
            np.log(ticks),
            log(ts[last] - ts[first]),
            np.where(has1, log(mean), -1.0),
            np.where(has1, log(np.where(has1, int_min, 0.0)), -1.0),
            np.where(has2, np.sqrt(var) / np.where(mean > 0, mean, 1.0), -1.0),
            np.bincount(run, down, minlength=k) / ticks,
            np.where(has1, flips / safe, -1.0),
            log(np.minimum(pause, 60_000.0)),
            log(during),
        ]
    )


def short_actions(ev: MouseEvents) -> np.ndarray:
    """One row of :data:`SHORT_FEATURES` per action the pointer features drop (fewer
    than ``MIN_POINTS`` trajectory points once equal timestamps collapse)."""
    pe = pointer_events(ev)
    a = _segment(pe, PAUSE_MS)
    if a.kind.size == 0:
        return np.empty((0, len(SHORT_FEATURES)))
    ends = np.where(a.kind == ActionType.PC, a.press + 1, a.stop)
    rows = []
    t_all = pe.t_ms.astype(np.float64)
    for k, s, e, stop, press, pause in zip(
        a.kind.tolist(),
        a.start.tolist(),
        ends.tolist(),
        a.stop.tolist(),
        a.press.tolist(),
        a.pause_before_ms.tolist(),
        strict=True,
    ):
        t = t_all[s:e]
        keep = np.r_[t[1:] != t[:-1], True]
        if keep.sum() >= MIN_POINTS:
            continue
        t, x, y = t[keep], pe.x[s:e][keep].astype(float), pe.y[s:e][keep].astype(float)
        duration = t[-1] - t[0]
        path = float(np.hypot(np.diff(x), np.diff(y)).sum())
        hold = t_all[stop - 1] - t_all[press] if k != ActionType.MM else 0.0
        rows.append(
            [
                float(k == ActionType.PC),
                float(k == ActionType.DD),
                np.log1p(duration),
                np.log1p(min(pause, 60_000.0)),
                np.log1p(max(hold, 0.0)),
                np.log(t.size),
                np.log1p(path),
                np.log1p(np.hypot(x[-1] - x[0], y[-1] - y[0])),
                np.log1p(path / duration * 1000) if duration > 0 else 0.0,
            ]
        )
    return np.array(rows).reshape(-1, len(SHORT_FEATURES))


def kind_population(*counts: int) -> Population:
    """One feature, a bin per kind (pointer action, scroll run[, short action])."""
    kinds = Population(np.arange(len(counts) - 1)[None, :] + 0.5)
    kinds.learn_many(np.repeat(np.arange(len(counts)), counts).astype(float)[:, None])
    return kinds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/balabit"))
    ap.add_argument("--labels", type=Path, help="default: DATA/labels_dev.csv")
    args = ap.parse_args()
    labels = balabit.read_labels_checked(args.labels or args.data / "labels_dev.csv").by_session

    train: dict[str, tuple[list[np.ndarray], ...]] = {}
    extractors: tuple[Callable[[MouseEvents], np.ndarray], ...] = (
        extract,
        scroll_runs,
        short_actions,
    )
    for ref in balabit.iter_sessions(args.data, "training_files"):
        ev = balabit_to_mouse_events(balabit.read_session(ref.path))
        for rows, f in zip(train.setdefault(ref.account, ([], [], [])), extractors, strict=True):
            rows.append(f(ev))
    enrol = {a: tuple(np.vstack(r) for r in rows) for a, rows in sorted(train.items())}
    pooled = [np.vstack([e[i] for e in enrol.values()]) for i in range(3)]
    population = Population.fit(pooled[0], groups=action_types(pooled[0]))
    scroll_population = Population.fit(pooled[1])
    short_population = Population.fit(pooled[2])
    n_pooled = [p.shape[0] for p in pooled]
    # Kind models: pointer/scroll, pointer/short, pointer/scroll/short.
    kind_sets = ((0, 1), (0, 2), (0, 1, 2))
    kind_pops = [kind_population(*(n_pooled[i] for i in ks)) for ks in kind_sets]
    models = {}
    for account, (p, s, h) in enrol.items():
        det, sdet, hdet = (
            HistogramRatio(population),
            HistogramRatio(scroll_population),
            HistogramRatio(short_population),
        )
        det.learn_many(p)
        sdet.learn_many(s)
        hdet.learn_many(h)
        n = (p.shape[0], s.shape[0], h.shape[0])
        terms = []
        for ks, pop in zip(kind_sets, kind_pops, strict=True):
            kd = HistogramRatio(pop)
            kd.learn_many(np.repeat(np.arange(len(ks)), [n[i] for i in ks]).astype(float)[:, None])
            terms.append(kd.score_many(np.arange(len(ks), dtype=float)[:, None]))
        models[account] = (det, sdet, hdet, terms)
        print(f"{account}: {n} pointer actions, scroll runs, short actions", file=sys.stderr)

    scores: dict[str, list[float]] = {v: [] for v in VARIANTS}
    y: list[int] = []
    n_scroll: list[int] = []
    n_short: list[int] = []
    for ref in balabit.iter_sessions(args.data, "test_files"):
        if ref.session_id not in labels or ref.account not in models:
            continue
        ev = balabit_to_mouse_events(balabit.read_session(ref.path))
        det, sdet, hdet, (kind, kind_short, kind3) = models[ref.account]
        p, s, h = extract(ev), scroll_runs(ev), short_actions(ev)
        ps = det.score_many(p) if p.shape[0] else np.zeros(0)
        ss = sdet.score_many(s) if s.shape[0] else np.zeros(0)
        hs = hdet.score_many(h) if h.shape[0] else np.zeros(0)
        n_scroll.append(s.shape[0])
        n_short.append(h.shape[0])
        parts = {
            "pointer": [ps],
            "scroll": [ps + kind[0], ss + kind[1]],
            "scroll-no-kind": [ps, ss],
            "kind-only": [ps + kind[0], np.full(s.shape[0], kind[1])],
            "short": [ps + kind_short[0], hs + kind_short[1]],
            "scroll+short": [ps + kind3[0], ss + kind3[1], hs + kind3[2]],
        }
        for v, arrays in parts.items():
            a = np.concatenate(arrays)
            scores[v].append(float(a.mean()) if a.size else 0.0)
        y.append(labels[ref.session_id])
    lab = np.array(y)
    print(
        f"{lab.size} labelled sessions ({int(lab.sum())} impostor); scroll runs per session:"
        f" median {np.median(n_scroll):.0f}, none in {np.mean(np.array(n_scroll) == 0):.0%};"
        f" short actions per session: median {np.median(n_short):.0f}"
    )
    for v in VARIANTS:
        sc = np.array(scores[v])
        print(f"{v:16} AUC {roc_auc(sc[lab == 0].tolist(), sc[lab == 1].tolist()):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
