#!/usr/bin/env python3
"""What Faust costs: the worker's judging behind a plain consumer, on the ratio's backlog.

    .venv/bin/python bench/bare_pipeline.py --bootstrap 127.0.0.1:9092 --reps 2

Issue #5's ratio compares one worker with a plain confluent-kafka consumer that only
decodes (``streams.bench_kafka.measure_ceiling``). This script asks how much of the gap is
the judging itself and how much Faust's agent model: on one pre-loaded backlog it
times, alternately, (1) the ceiling, (2) a *bare pipeline* in this process: the same
consumer, ``decode_batch``, :class:`streams.pipeline.Pipeline` (windows, profiles,
verdicts; windows judged together as the worker does) and a confluent-kafka producer
for the verdicts and the serialised states, with the worker's GC setting, and (3) the
real ``cadence worker`` (``bench/ab.py``'s drain). The bare pipeline has none of the
worker's guarantees (no acks, no commits, no changelog table, no rebalance handling):
it is a bound on what any Kafka front end of the same judging could reach, not a
product. A benchmark, not a test: prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ab import PARTITIONS, drain  # noqa: E402

from collectors.simulate import Workload  # noqa: E402
from collectors.wire import WireError, decode_batch  # noqa: E402
from streams.bench import load_average  # noqa: E402
from streams.bench_kafka import (  # noqa: E402
    create_run_topics,
    delete_run_topics,
    measure_ceiling,
    produce,
)
from streams.bench_worker import FAST_ENROLLMENT  # noqa: E402
from streams.commands.worker import GC_GEN0_THRESHOLD, tune_gc  # noqa: E402
from streams.pipeline import Judged, Pipeline  # noqa: E402
from streams.topics import IsolatedTopics  # noqa: E402
from streams.verdict import encode_verdict  # noqa: E402

JUDGE_BATCH = 16  # as streams.app: judge once this many windows wait


def state_topic(topics: IsolatedTopics) -> str:
    """Where the bare pipeline writes states (deleted with the run's topics)."""
    return f"{topics.prefix}.bare-states"


def bare_drain(bootstrap: str, topics: IsolatedTopics, expected_batches: int) -> dict[str, float]:
    """Consume, decode, window, judge and produce verdicts and states, in this process."""
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
    pipeline: Pipeline[None] = Pipeline(lambda user: None)
    events = batches = verdicts = 0

    def publish(judged: list[Judged[None]]) -> None:
        nonlocal verdicts
        for j in judged:
            key = j.window.user.encode()
            if j.verdict is not None:
                producer.produce(topics.verdicts, encode_verdict(j.verdict), key)
                verdicts += 1
            producer.produce(state_topic(topics), j.state_bytes, key)
        producer.poll(0)

    consumer.subscribe([topics.events])
    started: float | None = None
    cpu_started = 0.0
    deadline = time.monotonic() + 600
    try:
        while batches < expected_batches and time.monotonic() < deadline:
            # A short timeout: the last call waits it out (see streams.bench_kafka.measure_ceiling).
            for msg in consumer.consume(1000, timeout=0.02):
                if msg.error():
                    continue
                if started is None:
                    started, cpu_started = time.perf_counter(), time.process_time()
                batches += 1
                try:
                    batch = decode_batch(msg.value() or b"")
                except WireError:
                    continue
                events += len(batch.events)
                pipeline.close(batch, None)
                if len(pipeline.closed) >= JUDGE_BATCH:
                    publish(pipeline.judge_closed())
            publish(pipeline.judge_closed())
        producer.flush(60)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        cpu = time.process_time() - cpu_started
    finally:
        consumer.close()
    return {
        "events_per_s": round(events / max(elapsed, 1e-9)),
        "events_per_cpu_s": round(events / max(cpu, 1e-9)),
        "wall_s": round(elapsed, 1),
        "verdicts": verdicts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--no-worker", action="store_true", help="skip the real worker's drain")
    args = parser.parse_args()
    tune_gc(GC_GEN0_THRESHOLD)
    # Judge as the worker it is compared with does (streams.judge reads these once):
    # with the default policy no profile turns active within the run, and an enrolling
    # profile is cheaper to judge.
    os.environ.update(FAST_ENROLLMENT)
    topics = IsolatedTopics(f"bare{uuid.uuid4().hex[:6]}")
    try:
        create_run_topics(args.bootstrap, topics, PARTITIONS)
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        new = NewTopic(state_topic(topics), num_partitions=PARTITIONS, replication_factor=1)
        for future in admin.create_topics([new]).values():
            future.result(timeout=30)
        workload = Workload(
            args.users,
            seed=0,
            run=topics.prefix,
            start_wall_ms=time.time() * 1000.0 - (args.seconds + 30.0) * 1000.0,
        )
        stats = produce(
            args.bootstrap, topics.events, workload.batches(until_s=args.seconds), math.inf
        )
        print(json.dumps({"events": stats.events, "batches": stats.batches}), flush=True)
        for rep in range(args.reps):
            counted, wall, cpu = measure_ceiling(args.bootstrap, topics.events, stats.batches)
            ceiling = {
                "events_per_s": round(counted / max(wall, 1e-9)),
                "events_per_cpu_s": round(counted / max(cpu, 1e-9)),
            }
            print(json.dumps({"run": "ceiling", "rep": rep, **ceiling, "load": load_average()}))
            bare = bare_drain(args.bootstrap, topics, stats.batches)
            print(json.dumps({"run": "bare", "rep": rep, **bare, "load": load_average()}))
            if not args.no_worker:
                worker = drain(args.bootstrap, topics, stats.events, REPO, {}, f"w{rep}")
                print(json.dumps({"run": "worker", "rep": rep, **worker, "load": load_average()}))
            sys.stdout.flush()
    finally:
        delete_run_topics(args.bootstrap, topics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
