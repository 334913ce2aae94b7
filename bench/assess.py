#!/usr/bin/env python3
"""Per-window cost of ``UserProfile.assess``: CPU µs by window kind, split by stage.

The worker calls :meth:`profiles.user.UserProfile.assess` once per closed window and
serialises the profile after it. This drives real profiles with realistic windows and
reports CPU time per window (``time.process_time_ns``), split into

- ``kb`` / ``ms``: keyboard / mouse evidence from the window's features (summary,
  scoring against the model, rolling context); the features themselves (pairing,
  flights and cells; pointer actions) depend on the events only and are computed
  before, for many windows at once in ``--batch`` mode: they are in ``other``;
- ``learn``: model, calibration ring and summaries updated from a trusted window;
- ``other``: the rest of ``assess`` (features, calibration, evidence, trust, reasons);
- ``to_bytes`` / ``from_bytes``: serialising the state after the window, and decoding it.

Sources (``--source``, several allowed):

- ``keyboard``: free-text recordings (``DATA/keystrokes-freetext``), each user's
  recordings in turn, one session each, cut into 5 s windows like the worker's;
- ``mouse``: Balabit training sessions (``DATA/balabit``), same windows;
- ``sim``: the simulator's workload through the worker's own windowing and window ->
  array conversion (keyboard, mouse and mixed windows), with the benchmark's fast
  enrolment so that most windows are judged by active profiles.

``--batch N`` judges window i of N users' streams in one
:func:`~profiles.user.assess_many` call, as the worker does when many windows close
together; a window's cost is then the call's divided by its windows.

Each stream is replayed ``--reps`` times with fresh profiles (identical work each
time); a window's cost is the median over the repetitions, then the table gives the
mean and median over windows. Benchmarks, not tests: nothing passes or fails.

    .venv/bin/python bench/assess.py                       # all sources, ~2 min
    .venv/bin/python bench/assess.py --source sim --cprofile 25   # where the time goes
    .venv/bin/python bench/assess.py --batch 10 --users 10      # judged 10 at a time
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from profiles.background import Background  # noqa: E402
from profiles.keystrokes import KeystrokeEvents  # noqa: E402
from profiles.mouse import MouseEvents  # noqa: E402
from profiles.user import EnrollmentPolicy, UserProfile, assess_many  # noqa: E402

WINDOW_S = 5.0
#: Stages timed inside ``assess`` (method names of ``UserProfile``).
STAGES = {"kb": "_keyboard_evidence", "ms": "_mouse_evidence", "learn": "_learn"}
#: The benchmark worker's enrolment (streams/bench_worker.py FAST_ENROLLMENT).
FAST = EnrollmentPolicy(min_presses=200, min_actions=40, min_sessions=1)

Window = tuple[KeystrokeEvents | None, MouseEvents | None, str]


@dataclass
class Stream:
    """One user's windows, in order, with the enrolment policy to judge them with."""

    name: str
    windows: list[Window]
    policy: EnrollmentPolicy = field(default_factory=EnrollmentPolicy)


def keyboard_streams(root: Path, users: int) -> list[Stream]:
    from collectors.datasets.freetext import iter_sessions
    from profiles.evaluation.takeover import windows_of

    by_user: dict[str, list[Window]] = defaultdict(list)
    for user, session, s in iter_sessions(root):
        if s.t_ns.size and (user in by_user or len(by_user) < users):
            ev = KeystrokeEvents.from_ns(s.t_ns, s.is_down, s.key_class)
            for w in windows_of(ev, WINDOW_S):
                assert isinstance(w, KeystrokeEvents)
                by_user[user].append((w, None, session))
    return [Stream(f"keyboard/{u}", ws) for u, ws in by_user.items()]


def mouse_streams(root: Path, users: int, per_session: int) -> list[Stream]:
    from collectors.datasets.balabit import iter_sessions, read_session
    from profiles.evaluation.takeover import windows_of
    from streams.recordings import balabit_to_mouse_events

    by_user: dict[str, list[Window]] = defaultdict(list)
    for ref in iter_sessions(root, "training_files"):
        if ref.account not in by_user and len(by_user) >= users:
            continue
        ev = balabit_to_mouse_events(read_session(ref.path))
        for w in windows_of(ev, WINDOW_S)[:per_session]:
            assert isinstance(w, MouseEvents)
            by_user[ref.account].append((None, w, ref.session_id))
    return [Stream(f"mouse/{u}", ws) for u, ws in by_user.items()]


def sim_streams(users: int, seconds: float, seed: int) -> list[Stream]:
    from collectors.simulate import Workload
    from streams.judge import keystroke_events, mouse_events
    from streams.windows import Cursor, Windower

    windower: Windower[None] = Windower(window_ms=WINDOW_S * 1000.0)
    cursors: dict[str, dict[str, Cursor]] = defaultdict(dict)
    by_user: dict[str, list[Window]] = defaultdict(list)

    def keep(w: Any) -> None:
        keys = keystroke_events(w.key_events) if w.key_events else None
        mouse = mouse_events(w.mouse_events) if w.mouse_events else None
        by_user[w.user].append((keys, mouse, w.session))

    for _, batch in Workload(users=users, seed=seed).batches(until_s=seconds):
        for w in windower.add(batch, cursors[batch.user], token=None).closed:
            keep(w)
    return [Stream(f"sim/{u[:8]}", ws, FAST) for u, ws in by_user.items()]


def kind(w: Window) -> str:
    keys, mouse, _ = w
    if keys is not None and mouse is not None:
        return "mixed"
    return "keyboard" if keys is not None else "mouse"


class Timers:
    """Wraps the stage methods of ``UserProfile`` to add their CPU time per window."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = defaultdict(int)
        self._saved: dict[str, Callable[..., Any]] = {}

    def __enter__(self) -> Timers:
        for stage, name in STAGES.items():
            original = getattr(UserProfile, name)
            self._saved[name] = original
            setattr(UserProfile, name, self._timed(stage, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            setattr(UserProfile, name, original)

    def _timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        spent, clock = self.spent, time.process_time_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[stage] += clock() - t0

        return timed


COLUMNS = ("assess", "kb", "ms", "learn", "other", "to_bytes", "from_bytes")


def run_stream(stream: Stream, background: Background, timers: Timers) -> list[dict[str, float]]:
    """Per window: ns per column, the state size and whether the profile was active."""
    clock = time.process_time_ns
    profile = UserProfile(background, stream.policy)
    rows: list[dict[str, float]] = []
    for keys, mouse, session in stream.windows:
        timers.spent.clear()
        t0 = clock()
        profile.assess(keys, mouse, session=session)
        t1 = clock()
        data = profile.to_bytes()
        t2 = clock()
        UserProfile.from_bytes(data, background, stream.policy)
        t3 = clock()
        row = {"assess": float(t1 - t0), "to_bytes": float(t2 - t1), "from_bytes": float(t3 - t2)}
        for stage in STAGES:
            row[stage] = float(timers.spent.get(stage, 0))
        row["other"] = row["assess"] - row["kb"] - row["ms"] - row["learn"]
        row["bytes"] = float(len(data))
        row["active"] = float(profile.enrollment == "active")
        rows.append(row)
    return rows


def run_group(
    streams: list[Stream], background: Background, timers: Timers
) -> list[list[dict[str, float]]]:
    """:func:`run_stream` for several streams at once, window i of each in one call."""
    clock = time.process_time_ns
    profiles = [UserProfile(background, s.policy) for s in streams]
    rows: list[list[dict[str, float]]] = [[] for _ in streams]
    for i in range(max(len(s.windows) for s in streams)):
        live = [j for j, s in enumerate(streams) if i < len(s.windows)]
        timers.spent.clear()
        t0 = clock()
        assess_many([(profiles[j], *streams[j].windows[i]) for j in live])
        spent = (clock() - t0) / len(live)
        stages = {stage: timers.spent.get(stage, 0) / len(live) for stage in STAGES}
        for j in live:
            t1 = clock()
            data = profiles[j].to_bytes()
            t2 = clock()
            UserProfile.from_bytes(data, background, streams[j].policy)
            t3 = clock()
            row = {"assess": spent, "to_bytes": float(t2 - t1), "from_bytes": float(t3 - t2)}
            row |= stages
            row["other"] = row["assess"] - row["kb"] - row["ms"] - row["learn"]
            row["bytes"] = float(len(data))
            row["active"] = float(profiles[j].enrollment == "active")
            rows[j].append(row)
    return rows


def measure(
    streams: list[Stream], background: Background, reps: int, batch: int = 1
) -> list[dict[str, Any]]:
    """One record per window: its kind, median cost per column over ``reps`` replays."""
    out: list[dict[str, Any]] = []
    with Timers() as timers:
        for g in range(0, len(streams), batch):
            group = streams[g : g + batch]
            if batch == 1:
                runs = [[run_stream(group[0], background, timers)] for _ in range(reps)]
            else:
                runs = [run_group(group, background, timers) for _ in range(reps)]
            for j, stream in enumerate(group):
                for i, w in enumerate(stream.windows):
                    rec: dict[str, Any] = {
                        c: statistics.median(r[j][i][c] for r in runs) for c in COLUMNS
                    }
                    rec |= {"kind": kind(w), "bytes": runs[0][j][i]["bytes"]}
                    rec |= {"active": bool(runs[0][j][i]["active"]), "source": stream.name}
                    out.append(rec)
    return out


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        src = r["source"].split("/")[0]
        phase = "active" if r["active"] else "enrolling"
        for key in ((src, r["kind"]), (src, f"{r['kind']}, {phase}")):
            groups[key].append(r)
    table = []
    for (src, k), rs in sorted(groups.items()):
        row: dict[str, Any] = {"source": src, "windows": k, "n": len(rs)}
        for c in COLUMNS:
            v = np.array([r[c] for r in rs]) / 1000.0
            row[c] = (float(v.mean()), float(np.median(v)))
        b = np.array([r["bytes"] for r in rs])
        row["bytes"] = (float(np.median(b)), float(b.max()))
        table.append(row)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    head = f"{'source':8} {'windows':20} {'n':>6} " + " ".join(f"{c:>13}" for c in COLUMNS)
    print(head + f" {'bytes med/max':>14}")
    print("-" * len(head) + "-" * 15)
    for row in table:
        cells = " ".join(f"{row[c][0]:6.0f}/{row[c][1]:6.0f}" for c in COLUMNS)
        b = row["bytes"]
        print(
            f"{row['source']:8} {row['windows']:20} {row['n']:6d} {cells} {b[0]:6.0f}/{b[1]:6.0f}"
        )
    print("(µs CPU per window, mean/median over windows; each window: median of the repetitions)")


def load(args: argparse.Namespace) -> Iterator[tuple[str, list[Stream]]]:
    data = Path(args.data)
    for source in args.source:
        if source == "keyboard":
            yield source, keyboard_streams(data / "keystrokes-freetext", args.users)
        elif source == "mouse":
            yield source, mouse_streams(data / "balabit", args.users, args.mouse_windows)
        elif source == "sim":
            yield source, sim_streams(args.sim_users, args.sim_seconds, args.seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", nargs="+", default=["keyboard", "mouse", "sim"])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "datasets"))
    ap.add_argument("--users", type=int, default=4, help="dataset users per source")
    ap.add_argument("--mouse-windows", type=int, default=120, help="windows per mouse session")
    ap.add_argument("--sim-users", type=int, default=20)
    ap.add_argument("--sim-seconds", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1, help="users' windows judged per call")
    ap.add_argument("--cprofile", type=int, default=0, help="print the top N functions instead")
    ap.add_argument("--json", help="write the table (and load average) here")
    args = ap.parse_args(argv)
    background = Background.default()
    sources = list(load(args))
    load_before = os.getloadavg()
    if args.cprofile:
        prof = cProfile.Profile()
        prof.enable()
        for _, streams in sources:
            for stream in streams:
                profile = UserProfile(background, stream.policy)
                for keys, mouse, session in stream.windows:
                    profile.assess(keys, mouse, session=session)
                    UserProfile.from_bytes(profile.to_bytes(), background, stream.policy)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.cprofile)
        print(buf.getvalue())
        return 0
    records: list[dict[str, Any]] = []
    for _, streams in sources:
        records += measure(streams, background, args.reps, max(1, args.batch))
    table = summarise(records)
    print_table(table)
    if args.batch > 1:
        print(f"(judged {args.batch} users' windows per assess_many call)")
    load_after = os.getloadavg()
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"table": table, "load": [load_before, load_after]}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
