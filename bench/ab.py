#!/usr/bin/env python3
"""A/B of the worker: source trees drain the same pre-loaded topic, alternately.

    git archive main | tar -x -C /tmp/ab-main
    .venv/bin/python bench/ab.py --bootstrap 127.0.0.1:9092 /tmp/ab-main . --reps 2
    .venv/bin/python bench/ab.py ... . .:PRODUCER_COMPRESSION_TYPE=snappy   # settings by env

On a shared 2-core machine one bench run against another measures the neighbours as
much as the change: here every variant drains the very same backlog (each as a fresh
consumer group with an empty table), one after the other, repeatedly, and the figure
to compare is events per worker CPU second (user and system time of the worker
process from its first consumed event to its last). ``DIR:NAME=VALUE+NAME=VALUE``
runs ``DIR`` with extra environment. Prints one JSON line per drain; a benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collectors.simulate import Workload  # noqa: E402
from streams.bench import (  # noqa: E402
    create_run_topics,
    delete_run_topics,
    load_average,
    produce,
    running_worker,
    wait_for,
)
from streams.topics import IsolatedTopics  # noqa: E402

PARTITIONS = 12


def cpu_times(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def drain(
    bootstrap: str,
    topics: IsolatedTopics,
    events: int,
    tree: Path,
    env_extra: dict[str, str],
    tag: str,
) -> dict[str, float]:
    """Run one worker from ``tree`` over the whole topic; its CPU and wall time."""
    work_dir = Path(tempfile.mkdtemp(prefix=f"{topics.prefix}-{tag}-"))
    # A fresh consumer group and changelog: every variant starts from offset 0, no profiles.
    env = {"CADENCE_APP_ID": f"{topics.prefix}-{tag}", **env_extra}
    with running_worker(bootstrap, topics, PARTITIONS, work_dir, tree, env) as worker:
        wait_for(worker.ready, 120, "the worker to be ready")
        first: tuple[float, float, float, float] | None = None
        while True:
            consumed = worker.metrics().get("cadence_events_consumed_total", 0.0)
            if first is None and consumed > 0:
                first = (time.monotonic(), *cpu_times(worker.pid), consumed)
            if consumed >= events:
                break
            time.sleep(0.1)
        assert first is not None
        wall = time.monotonic() - first[0]
        user, system = cpu_times(worker.pid)
    user, system = user - first[1], system - first[2]
    counted = events - first[3]
    return {
        "wall_s": round(wall, 1),
        "user_s": round(user, 1),
        "sys_s": round(system, 1),
        "events_per_s": round(counted / wall),
        "events_per_cpu_s": round(counted / max(user + system, 1e-9)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", help="source trees, DIR or DIR:NAME=VALUE+...")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    topics = IsolatedTopics(f"ab{uuid.uuid4().hex[:6]}")
    create_run_topics(args.bootstrap, topics, PARTITIONS)
    try:
        start_wall = time.time() * 1000.0 - (args.seconds + 30.0) * 1000.0
        workload = Workload(args.users, seed=0, run=topics.prefix, start_wall_ms=start_wall)
        stats = produce(
            args.bootstrap, topics.events, workload.batches(until_s=args.seconds), math.inf
        )
        print(json.dumps({"events": stats.events, "batches": stats.batches}), flush=True)
        for rep in range(args.reps):
            for index, spec in enumerate(args.trees):
                tree, _, extra = spec.partition(":")
                env_extra = dict(e.split("=", 1) for e in extra.split("+") if e)
                row = drain(
                    args.bootstrap,
                    topics,
                    stats.events,
                    Path(tree).resolve(),
                    env_extra,
                    f"v{index}-{rep}",
                )
                print(
                    json.dumps({"tree": spec, "rep": rep, **row, "load": load_average()}),
                    flush=True,
                )
    finally:
        delete_run_topics(args.bootstrap, topics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
