#!/usr/bin/env python3
"""``make bench``: the pipeline benchmark at 1k and 10k users, and the collector footprint.

Starts a broker of its own (``deploy/local/kafka_local.py up --name bench`` on free
ports) unless ``--bootstrap`` names one, and stops it at the end. Writes
``bench/results/*.json`` (git-ignored) and prints one table. Benchmarks, not tests:
nothing here passes or fails on a figure. Each pipeline run takes a few minutes on
2 cores; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
KAFKA_LOCAL = [sys.executable, str(REPO / "deploy" / "local" / "kafka_local.py")]

# (users, simulated seconds pre-loaded per user): ~1.2M events each, so both drains
# take about as long; 60 s is enough for a part of the 1k users to finish enrolling.
SCENARIOS: tuple[tuple[int, float], ...] = ((1000, 60.0), (10000, 6.0))
# What an interrupted bench needs to stop its worker (SIGTERM, up to 30 s, then SIGKILL)
# and delete its topics (up to 40 s).
CLEANUP_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_child(command: list[str]) -> int:
    """Run ``command`` to its end; its exit status.

    On Ctrl-C it gets SIGINT and up to ``CLEANUP_S`` to clean up before it is killed:
    subprocess.run kills it 0.25 s after a KeyboardInterrupt, before a bench has stopped
    its worker and deleted its topics. A second Ctrl-C kills it at once. (From a terminal
    it has the first SIGINT already; ``cadence bench pipeline`` ignores the repeat.)
    """
    process = subprocess.Popen(command, cwd=REPO)
    try:
        return process.wait()
    except KeyboardInterrupt:
        print(f"bench: interrupted; up to {CLEANUP_S:.0f} s for it to clean up", file=sys.stderr)
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=CLEANUP_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.kill()
            process.wait()
        raise


def run_pipeline(bootstrap: str, users: int, seconds: float, paced_seconds: float) -> Path:
    out = RESULTS / f"pipeline-{users}-users.json"
    command = [
        sys.executable,
        "-m",
        "streams.cli",
        "bench",
        "pipeline",
        "--bootstrap",
        bootstrap,
        "--users",
        str(users),
        "--seconds",
        str(seconds),
        "--paced-seconds",
        str(paced_seconds),
        "--json",
        str(out),
    ]
    status = run_child(command)
    if status != 0:
        raise subprocess.CalledProcessError(status, command)
    return out


def run_footprint(bootstrap: str) -> Path | None:
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    script = REPO / "bench" / "collector_footprint.py"
    if missing or not script.exists():
        print(
            f"bench: skipping the collector footprint ({', '.join(missing) or script} missing; "
            "`make x11-tools` installs them)",
            file=sys.stderr,
        )
        return None
    # The agent sends to cadence.events.v1; on a fresh broker it would only count
    # delivery errors (topics are never auto-created).
    sys.path.insert(0, str(REPO))
    from streams.admin import create_topics

    create_topics({"bootstrap.servers": bootstrap})
    out = RESULTS / "collector_footprint.json"
    status = run_child([sys.executable, str(script), "--bootstrap", bootstrap, "--out", str(out)])
    return out if status == 0 and out.exists() else None


def print_table(pipeline: list[dict[str, Any]], footprint: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: Any, digits: int = 2) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    table = Table(title="cadence benchmarks (one worker; figures, not pass/fail)")
    for column in (
        "users",
        "events",
        "ceiling ev/s",
        "pipeline ev/s",
        "ratio",
        "ev/CPU-s",
        "p50 s",
        "p99 s",
        "paced users",
        "RSS MiB",
        "profile B",
        "load (drain)",
    ):
        table.add_column(column, justify="right")
    for r in pipeline:
        table.add_row(
            f"{r['users']:,}",
            f"{r['events']:,}",
            fmt(r["ceiling_events_per_s"], 0),
            fmt(r["pipeline_events_per_s"], 0),
            fmt(r["ratio"]),
            fmt(r.get("pipeline_events_per_cpu_s"), 0),
            fmt(r["latency_p50_s"]),
            fmt(r["latency_p99_s"]),
            str(r.get("paced_users", "")),
            fmt(r["rss_bytes"] / 2**20, 1),
            fmt(r["profile_bytes_per_user"], 0),
            " ".join(str(x) for x in r.get("load_average_drain", [])),
        )
    # Wide enough for every column even when stdout is a log file, not a terminal.
    Console(width=max(160, shutil.get_terminal_size().columns)).print(table)
    if footprint is not None:
        print("collector footprint:", json.dumps(footprint))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--paced-seconds", type=float, default=45.0)
    parser.add_argument(
        "--users",
        type=int,
        action="append",
        help="run only these scenarios (1000, 10000; repeatable)",
    )
    parser.add_argument("--no-footprint", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = False
    bootstrap = args.bootstrap or os.environ.get("CADENCE_BENCH_BOOTSTRAP")
    instance = ["--name", "bench"]
    if not bootstrap:
        port = free_port()
        instance += ["--port", str(port), "--controller-port", str(free_port())]
        subprocess.run([*KAFKA_LOCAL, "up", *instance], check=True)
        bootstrap, started = f"127.0.0.1:{port}", True
    try:
        results: list[dict[str, Any]] = []
        for users, seconds in SCENARIOS:
            if args.users and users not in args.users:
                continue
            out = run_pipeline(bootstrap, users, seconds, args.paced_seconds)
            results.append(json.loads(out.read_text()))
        footprint = None if args.no_footprint else run_footprint(bootstrap)
        print_table(results, json.loads(footprint.read_text()) if footprint else None)
    finally:
        if started:
            subprocess.run([*KAFKA_LOCAL, "down", "--purge", *instance], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
