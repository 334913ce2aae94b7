#!/usr/bin/env python3
"""A/B of the worker: source trees drain the same pre-loaded topic, alternately.

    git archive main | tar -x -C /tmp/ab-main
    .venv/bin/python bench/ab.py --bootstrap 127.0.0.1:9092 /tmp/ab-main . --reps 2
    .venv/bin/python bench/ab.py ... . .:PRODUCER_COMPRESSION_TYPE=snappy   # settings by env
    .venv/bin/python bench/ab.py ... . --batch-age-ms 250 500 1000 --ceiling  # collector batching

On a shared 2-core machine one bench run against another measures the neighbours as
much as the change: here every variant drains the very same backlog (each as a fresh
consumer group with an empty table), one after the other, repeatedly, and the figure
to compare is events per worker CPU second (user and system time of the worker
process from its first consumed event to its last). ``DIR:NAME=VALUE+NAME=VALUE``
runs ``DIR`` with extra environment. Prints one JSON line per drain; a benchmark,
not a test.

``--batch-age-ms A B ...`` pre-loads one backlog per collector batch age (the same
users and activity, cut into batches the way an agent with that ``MAX_AGE_MS`` would,
at most ``--batch-max-events`` events each) and drains each with every tree, in turn,
each repetition going through all ages; ``--ceiling`` also times a plain consumer
(consume + decode, ``streams.bench_kafka.measure_ceiling``) on each backlog every repetition,
so the worker's figure can be read as a ratio of it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collectors.episodes import BATCH_MAX_AGE_MS, BATCH_MAX_EVENTS  # noqa: E402
from collectors.simulate import Workload  # noqa: E402
from streams.bench import load_average  # noqa: E402
from streams.bench_kafka import (  # noqa: E402
    create_run_topics,
    delete_run_topics,
    measure_ceiling,
    produce,
)
from streams.bench_worker import DrainWatch, running_worker, wait_for  # noqa: E402
from streams.topics import IsolatedTopics  # noqa: E402

PARTITIONS = 12
DRAIN_TIMEOUT_S = 1800.0


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
        # A tree that crashes mid-drain or stops consuming must not hang the A/B.
        watch = DrainWatch(events, DRAIN_TIMEOUT_S)
        while True:
            now = time.monotonic()
            if worker.process.poll() is not None:
                raise RuntimeError(f"{tree}: worker exited; see {worker.log}")
            consumed = worker.metrics().get("cadence_events_consumed_total", 0.0)
            if first is None and consumed > 0:
                first = (now, *cpu_times(worker.pid), consumed)
            if consumed >= events:
                break
            watch.check(consumed, now)
            time.sleep(0.1)
        assert first is not None  # consumed >= events > 0
        wall = now - first[0]
        user, system = cpu_times(worker.pid)
    shutil.rmtree(work_dir, ignore_errors=True)  # kept after a failure, for the log
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
    parser.add_argument(
        "--batch-age-ms",
        type=float,
        nargs="+",
        default=[BATCH_MAX_AGE_MS],
        help=f"one backlog per collector batch age (default {BATCH_MAX_AGE_MS:.0f})",
    )
    parser.add_argument(
        "--batch-max-events",
        type=int,
        default=BATCH_MAX_EVENTS,
        help=f"events at which a batch closes (default {BATCH_MAX_EVENTS})",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="time a plain consumer on each backlog too"
    )
    args = parser.parse_args()
    # Event times end a little before now, like a live agent's; the same for every backlog.
    start_wall = time.time() * 1000.0 - (args.seconds + 30.0) * 1000.0
    backlogs: list[tuple[float, IsolatedTopics, int, int]] = []
    try:
        for age in args.batch_age_ms:
            topics = IsolatedTopics(f"ab{uuid.uuid4().hex[:6]}")
            backlogs.append((age, topics, 0, 0))  # first: a creation may fail half-way
            create_run_topics(args.bootstrap, topics, PARTITIONS)
            workload = Workload(
                args.users,
                seed=0,
                run=topics.prefix,
                start_wall_ms=start_wall,
                batch_max_events=args.batch_max_events,
                batch_max_age_ms=age,
            )
            stats = produce(
                args.bootstrap, topics.events, workload.batches(until_s=args.seconds), math.inf
            )
            backlogs[-1] = (age, topics, stats.events, stats.batches)
            print(
                json.dumps(
                    {
                        "batch_age_ms": age,
                        "batch_max_events": args.batch_max_events,
                        "events": stats.events,
                        "batches": stats.batches,
                        "events_per_batch": round(stats.events / max(stats.batches, 1), 1),
                    }
                ),
                flush=True,
            )
        for rep in range(args.reps):
            for age, topics, events, batches in backlogs:
                if args.ceiling:
                    counted, wall, cpu = measure_ceiling(args.bootstrap, topics.events, batches)
                    ceiling = {
                        "ceiling_events_per_s": round(counted / max(wall, 1e-9)),
                        "ceiling_events_per_cpu_s": round(counted / max(cpu, 1e-9)),
                    }
                    print(
                        json.dumps(
                            {"batch_age_ms": age, "rep": rep, **ceiling, "load": load_average()}
                        ),
                        flush=True,
                    )
                for index, spec in enumerate(args.trees):
                    tree, _, extra = spec.partition(":")
                    env_extra = dict(e.split("=", 1) for e in extra.split("+") if e)
                    row = drain(
                        args.bootstrap,
                        topics,
                        events,
                        Path(tree).resolve(),
                        env_extra,
                        f"v{index}-{rep}",
                    )
                    line = {"tree": spec, "batch_age_ms": age, "rep": rep, **row}
                    print(json.dumps({**line, "load": load_average()}), flush=True)
    finally:
        for _, topics, _, _ in backlogs:
            try:
                delete_run_topics(args.bootstrap, topics)
            except Exception as exc:  # the other backlogs' topics still go
                print(f"ab: {topics.prefix}.* not deleted: {exc!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
