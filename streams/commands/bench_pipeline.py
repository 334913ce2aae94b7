"""``cadence bench pipeline``: events/s of one worker against a plain consumer, latency, memory.

Needs a broker (``make kafka-up``); uses its own topics and deletes them afterwards.
See docs/performance.md for what each figure means. A benchmark, not a test: it
reports, it does not pass or fail.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser, operator=True)
    parser.add_argument("--users", type=int, default=1000, help="simulated users (default 1000)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=120.0,
        help="simulated seconds per user pre-loaded before the worker starts (default 120)",
    )
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument("--partitions", type=int, default=12, help="events topic partitions")
    parser.add_argument(
        "--paced-seconds", type=float, default=60.0, help="real-time phase length (default 60)"
    )
    parser.add_argument(
        "--paced-load",
        type=float,
        default=0.25,
        help="real-time event rate as a share of the measured throughput (default 0.25)",
    )
    parser.add_argument("--paced-users", type=int, default=None, help="overrides --paced-load")
    parser.add_argument(
        "--batch-age-ms",
        type=float,
        default=None,
        help="simulated agents close a batch this long after its first event "
        "(default: the agent's, collectors/batcher.py)",
    )
    parser.add_argument(
        "--batch-max-events",
        type=int,
        default=None,
        help="... or at this many events (default: the agent's)",
    )
    parser.add_argument(
        "--store",
        choices=("memory://", "rocksdb://"),
        default="memory://",
        help="the worker's table store (default memory://; prod runs rocksdb://)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write figures")
    parser.add_argument("--work-dir", type=Path, default=None, help="worker log and data")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete run topics")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="OUT",
        help="sample the worker with py-spy during the drain (collapsed stacks to OUT)",
    )


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written (tried, and left as it was), or None if it can."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with path.open("a"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException
    from rich.console import Console
    from rich.table import Table

    from streams.admin import TopicsNotCreated
    from streams.bench import BenchConfig, BenchRefused, run_bench
    from streams.bench_worker import py_spy_path
    from streams.commands._args import positive, refuse
    from streams.commands._kafka import client_settings, context, unreachable

    console = Console(stderr=True)
    # Before any topic is created or worker started. None: the default applies.
    if refuse(
        "bench pipeline",
        [
            (args.users >= 1, "--users must be at least 1"),
            (positive(args.seconds), "--seconds must be positive"),
            (args.partitions >= 1, "--partitions must be at least 1"),
            (
                math.isfinite(args.paced_seconds) and args.paced_seconds >= 0,
                "--paced-seconds must be a number, 0 or more",
            ),
            (positive(args.paced_load), "--paced-load must be a positive number"),
            (args.paced_users is None or args.paced_users >= 1, "--paced-users must be >= 1"),
            (
                args.batch_max_events is None or args.batch_max_events >= 1,
                "--batch-max-events must be at least 1",
            ),
            (
                args.batch_age_ms is None or positive(args.batch_age_ms),
                "--batch-age-ms must be positive",
            ),
        ],
    ):
        return 2
    # Not after minutes of measuring: the figures would be lost.
    problem = unwritable(args.json) if args.json is not None else None
    if refuse("bench pipeline", [(problem is None, f"--json {args.json}: {problem}")]):
        return 2
    if args.work_dir is not None:
        try:
            args.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            refuse(
                "bench pipeline", [(False, f"--work-dir {args.work_dir}: {exc.strerror or exc}")]
            )
            return 2
    if args.py_spy is not None:
        try:
            py_spy_path()  # before minutes of loading the broker, not after
        except FileNotFoundError as exc:
            console.print(f"bench: {exc}")
            return 2
    config = BenchConfig(
        users=args.users,
        seconds=args.seconds,
        bootstrap=args.kafka_config["bootstrap.servers"],
        seed=args.seed,
        partitions=args.partitions,
        paced_seconds=args.paced_seconds,
        paced_load=args.paced_load,
        paced_users=args.paced_users,
        work_dir=args.work_dir,
        keep_topics=args.keep_topics,
        py_spy=args.py_spy,
        batch_max_events=args.batch_max_events,
        batch_max_age_ms=args.batch_age_ms,
        store=args.store,
        admin_client=client_settings(),
    )
    try:
        result = run_bench(config, progress=lambda line: console.print(f"bench: {line}"))
    except BenchRefused as exc:
        refuse("bench pipeline", [(False, str(exc))])
        return 2
    except TopicsNotCreated as exc:
        refuse(
            "bench pipeline",
            [
                (
                    False,
                    f"cannot create the run's topics at {config.bootstrap} ({exc})"
                    f"{context()}; is Kafka running?",
                )
            ],
        )
        return 1
    except KafkaException as exc:
        refuse("bench pipeline", [(False, unreachable(args.kafka_config, exc))])
        return 1
    unreliable = (
        "" if result.throughput_reliable else f" (drain {result.drain_s:.2f} s: unreliable)"
    )
    table = Table(
        title=f"cadence bench pipeline: {result.users} users, one worker, {result.store} store"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    rows = [
        ("events pre-loaded", f"{result.events:,}", ""),
        (
            "events per batch (batch age, max events)",
            f"{result.events / max(result.batches, 1):.1f} "
            f"({result.batch_max_age_ms:.0f} ms, {result.batch_max_events})",
            "",
        ),
        ("ceiling (consume + decode)", _fmt(result.ceiling_events_per_s, " ev/s", 0), ""),
        (
            "pipeline (one worker)",
            _fmt(result.pipeline_events_per_s, " ev/s", 0) + unreliable,
            "",
        ),
        ("ratio", _fmt(result.ratio) + (unreliable and " (unreliable)"), ">= 0.5"),
        ("pipeline per worker CPU second", _fmt(result.pipeline_events_per_cpu_s, " ev/s", 0), ""),
        ("ratio per CPU second", _fmt(result.ratio_cpu), ""),
        (
            f"latency p50 / p99 ({result.paced_users} users real time)",
            f"{_fmt(result.latency_p50_s, ' s')} / {_fmt(result.latency_p99_s, ' s')}",
            "p99 <= 2 s",
        ),
        (
            "paced verdicts: emitted / not received (events not consumed)",
            f"{result.paced_verdicts_emitted:,} / {result.paced_verdicts_missing:,} "
            f"({result.paced_events_unconsumed:,})",
            "",
        ),
        ("worker RSS", _fmt(result.rss_bytes / 2**20, " MiB", 1), ""),
        (
            "worker RSS / users (the base included)",
            _fmt(result.rss_bytes / max(result.users, 1) / 1024, " KiB", 1),
            "",
        ),
        (
            f"serialised state per user (last of {result.profile_users:,} users)",
            _fmt(result.profile_bytes_per_user, " B", 0),
            "<= 16 KB",
        ),
        ("active users at the end", f"{result.active_users:,}", ""),
        ("load average (drain)", " ".join(map(str, result.load_average_drain)), ""),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    summary = (
        f"users={result.users} ceiling={result.ceiling_events_per_s:.0f}/s "
        f"pipeline={result.pipeline_events_per_s:.0f}/s ratio={result.ratio:.2f} "
        f"p50={_fmt(result.latency_p50_s, 's')} p99={_fmt(result.latency_p99_s, 's')} "
        f"rss={result.rss_bytes / 2**20:.0f}MiB profile={result.profile_bytes_per_user:.0f}B"
    )
    print(summary)
    sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n")
    return 0
