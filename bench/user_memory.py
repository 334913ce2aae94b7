#!/usr/bin/env python3
"""Memory a worker's pipeline holds per user, offline, by ``tracemalloc``.

Simulated users are replayed through :class:`streams.pipeline.Pipeline` as the worker
runs it (windows, profiles kept decoded, each window's state record written to a dict
that stands for the table), with the bench's fast enrolment so profiles turn active.
Prints the Python-allocated bytes per user at the end and the largest allocation sites.
RSS (allocator slack, Faust, Kafka clients) is measured by ``cadence bench pipeline``;
this shows where the part cadence controls goes.

    .venv/bin/python bench/user_memory.py --users 60 --seconds 240
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.bench_worker import FAST_ENROLLMENT  # noqa: E402

os.environ.update(FAST_ENROLLMENT)

from collectors.simulate import Workload  # noqa: E402
from streams.pipeline import Pipeline  # noqa: E402
from streams.state import UserState  # noqa: E402


def replay(pipeline: Pipeline[None], table: dict[str, bytes], batches: list) -> None:
    for b in batches:
        for judged in pipeline.add(b, None)[1]:
            table[judged.window.user] = judged.state_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--top", type=int, default=10, help="allocation sites to print")
    args = ap.parse_args()

    def pipeline(table: dict[str, bytes]) -> Pipeline[None]:
        return Pipeline(lambda u: UserState.from_bytes(table[u]) if u in table else None)

    # A first run imports and caches what every user shares (background, lazy modules).
    warm: dict[str, bytes] = {}
    replay(pipeline(warm), warm, [b for _, b in Workload(users=2, seed=99).batches(until_s=60)])
    batches = [b for _, b in Workload(users=args.users, seed=args.seed).batches(args.seconds)]
    table: dict[str, bytes] = {}
    pipe = pipeline(table)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    replay(pipe, table, batches)
    gc.collect()
    after = tracemalloc.take_snapshot()
    users = len(pipe.states)
    active = sum(
        1
        for s in pipe.states.values()
        if s.decoded is not None and s.decoded.enrollment == "active"
    )
    total = sum(d.size_diff for d in after.compare_to(before, "filename"))
    stored = sum(map(len, table.values())) / max(len(table), 1)
    print(f"{users} users ({active} active): {total / users / 1024:.1f} KiB per user held")
    print(f"state record per user (the table's bytes): {stored:.0f} B")
    for d in after.compare_to(before, "lineno")[: args.top]:
        print(f"{d.size_diff / users:8.0f} B per user  {d.traceback}")


if __name__ == "__main__":
    main()
