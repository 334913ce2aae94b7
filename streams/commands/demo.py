"""``cadence demo``: the whole flow, live, on one machine.

A simulated office of ``--users`` people types and mouses (``collectors.simulate``);
their batches go through the collector's delivery path (``BatchSender``) into
Kafka; a real ``cadence worker`` process judges them; this command reads the
verdict topic and shows one line per account. Part-way through, another person
takes over one account: its line turns suspicious, then impostor.

Ctrl-C stops the workload and the worker this command started. ``make demo``
also starts (and afterwards stops) the local Kafka broker when none is running.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from collectors.simulate import Takeover, Workload
    from collectors.wire import EventBatch

from streams.children import dies_with_this_thread
from streams.config import add_kafka_arguments

# Profiles must become active within a demo's minutes, not a workday's hours.
DEMO_ENROLLMENT = {
    "CADENCE_ENROLL_MIN_PRESSES": "200",
    "CADENCE_ENROLL_MIN_ACTIONS": "40",
    "CADENCE_ENROLL_MIN_SESSIONS": "1",
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument("--users", type=int, default=20, help="simulated people (default 20)")
    parser.add_argument("--seed", type=int, default=7, help="workload seed")
    parser.add_argument(
        "--takeover",
        default="4@150",
        metavar="USER_INDEX@SECONDS",
        help="account taken over and when, in simulated seconds (default 4@150)",
    )
    parser.add_argument(
        "--rate", type=float, default=2.0, help="simulated seconds per real second (default 2)"
    )
    parser.add_argument(
        "--seconds", type=float, default=600.0, help="simulated duration (default 600)"
    )
    parser.add_argument("--web-port", type=int, default=6066, help="the worker's web port")
    parser.add_argument(
        "--no-worker", action="store_true", help="use a worker that is already running"
    )


@dataclass
class AccountRow:
    label: str
    events: int = 0
    verdicts: int = 0
    enrollment: str = "enrolling"
    level: str = "-"
    trust: float = 100.0
    keyboard: float | None = None
    mouse: float | None = None
    reasons: tuple[str, ...] = ()
    truth: str = "owner"


@dataclass
class DemoState:
    rows: dict[str, AccountRow] = field(default_factory=dict)
    published_batches: int = 0
    published_events: int = 0
    sim_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)
    dead_letters: int = 0
    error: str = ""


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException
    from rich.console import Console
    from rich.live import Live

    from collectors.publish import start_ending_now
    from collectors.simulate import Takeover, Workload
    from streams.admin import create_topics
    from streams.commands._args import positive, refuse

    console = Console()
    if refuse(
        "demo",
        [
            (positive(args.rate), "--rate must be a positive number"),
            (positive(args.seconds), "--seconds must be a positive number"),
        ],
    ):
        return 2
    try:
        # Event time never runs ahead of the real clock, however fast the simulation (a
        # slower-than-real demo starts now and stays behind it).
        start_wall_ms = start_ending_now(args.seconds, args.rate)
        takeover = Takeover.parse(args.takeover)
        # Checks the users and the takeover against them (index, time).
        workload = Workload(
            users=args.users,
            seed=args.seed,
            takeovers=[takeover],
            run=f"demo-{int(time.time())}",
            # Its own accounts: an earlier demo's events on the same broker (a new worker
            # group reads them from the start) must not become these people's profiles.
            run_users=True,
            start_wall_ms=start_wall_ms,
        )
    except ValueError as exc:
        print(f"cadence demo: {exc}", file=sys.stderr)
        return 2
    state = DemoState()
    for user in workload.users:
        state.rows[user.user] = AccountRow(label=f"{user.index:>2} {user.user[:10]}")
    victim = workload.users[takeover.user_index].user

    console.print(
        f"[bold]cadence demo[/]: {args.users} simulated people, Kafka at "
        f"{args.kafka_config['bootstrap.servers']}"
    )
    try:
        for name, outcome in create_topics(args.kafka_config).items():
            console.print(f"  topic {name}: {outcome}")
    except (KafkaException, TimeoutError, RuntimeError) as exc:
        reason = str(exc) or "no answer within 30 s"
        print(
            f"cadence demo: cannot create the topics ({reason}); is Kafka running?", file=sys.stderr
        )
        return 2

    workers: list[subprocess.Popen[bytes]] = []  # filled as soon as it exists, for finally
    stop = threading.Event()
    # Closing the terminal or `kill` must stop the worker too, as Ctrl-C does.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        if not args.no_worker:
            _start_worker(args, console, workers)
        worker = workers[0] if workers else None
        publisher = threading.Thread(
            target=_publish_or_report,
            args=(workload, args, state, stop),
            name="workload",
            daemon=True,
        )
        reader = threading.Thread(
            target=_read_verdicts, args=(args, state, stop), name="verdicts", daemon=True
        )
        publisher.start()
        reader.start()
        with Live(
            _render(state, args, takeover, console.width), console=console, refresh_per_second=2
        ) as live:
            while not stop.is_set():
                now_sim = state.sim_seconds
                row = state.rows[victim]
                row.truth = "IMPOSTOR" if now_sim >= takeover.at_s else "owner"
                state.dead_letters = _dead_letters(args.web_port)
                live.update(_render(state, args, takeover, console.width))
                if worker is not None and worker.poll() is not None:
                    state.error = f"worker exited with status {worker.returncode}"
                    break
                if state.error:
                    break
                if not publisher.is_alive() and time.monotonic() - state.started > 5:
                    # Workload finished: leave the table up a few more seconds for late verdicts.
                    time.sleep(8)
                    live.update(_render(state, args, takeover, console.width))
                    break
                time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        stop.set()
        for started in workers:
            _stop_worker(started)
    if not console.is_terminal:
        # Into a file or a pipe, Live's last table ends without a newline: the lines
        # below would continue its caption.
        console.line()
    if state.error:
        console.print(f"[red]{state.error}[/] (see .cache/demo-worker.log)")
        return 1
    row = state.rows[victim]
    console.print(
        f"account {row.label.strip()}, taken over at {takeover.at_s:.0f} s (simulated): "
        f"[bold]{row.level}[/], trust {row.trust:.0f}"
    )
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _start_worker(
    args: argparse.Namespace, console: Any, workers: list[subprocess.Popen[bytes]]
) -> None:
    env = {
        **os.environ,
        **DEMO_ENROLLMENT,
        "CADENCE_KAFKA_BOOTSTRAP": args.kafka_config["bootstrap.servers"],
        "CADENCE_WEB_PORT": str(args.web_port),
        "CADENCE_APP_ID": os.environ.get("CADENCE_APP_ID", f"cadence-demo-{int(time.time())}"),
    }
    os.makedirs(".cache", exist_ok=True)
    log = open(".cache/demo-worker.log", "wb")  # noqa: SIM115 - the child owns it until exit
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: Ctrl-C here stops it via us
        # and a demo killed outright (kill -9, the OOM killer) takes it along, instead of
        # leaving it consuming and holding the web port the next demo needs.
        preexec_fn=dies_with_this_thread(),
    )
    workers.append(worker)  # from here on the caller's finally stops it, whatever happens
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"worker exited with {worker.returncode}; see .cache/demo-worker.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.web_port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("worker not ready after 90 s; see .cache/demo-worker.log")


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def _publish_or_report(
    workload: Workload, args: argparse.Namespace, state: DemoState, stop: threading.Event
) -> None:
    try:
        _publish(workload, args, state, stop)
    except Exception as exc:  # noqa: BLE001 - shown instead of a silent "finished"
        state.error = f"the workload stopped: {exc}"


def _publish(
    workload: Workload, args: argparse.Namespace, state: DemoState, stop: threading.Event
) -> None:
    from collectors.delivery import BatchSender
    from collectors.simulate import pace
    from streams.topics import EVENTS

    sender = BatchSender(
        bootstrap=args.kafka_config["bootstrap.servers"],
        topic=EVENTS.name,  # CADENCE_EVENTS_TOPIC, as the worker reads
        extra_config={k: v for k, v in args.kafka_config.items() if k != "bootstrap.servers"},
    )
    timed = workload.batches(until_s=args.seconds)

    def clocked() -> Iterator[tuple[float, EventBatch]]:
        for t, batch in timed:
            state.sim_seconds = t
            yield t, batch

    try:
        for batch in pace(clocked(), args.rate, wait=lambda s: sender.poll(min(s, 0.1))):
            if stop.is_set():
                break
            sender.send(batch)
            state.published_batches += 1
            state.published_events += len(batch.events)
            row = state.rows.get(batch.user)
            if row is not None:
                row.events += len(batch.events)
        sender.flush(10)
    finally:
        sender.close()


def _read_verdicts(args: argparse.Namespace, state: DemoState, stop: threading.Event) -> None:
    import uuid

    from confluent_kafka import Consumer

    from streams.topics import VERDICTS
    from streams.verdict import decode_verdict

    consumer = Consumer(
        {
            **args.kafka_config,
            "group.id": f"cadence-demo-view-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([VERDICTS.name])
    try:
        while not stop.is_set():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                v = decode_verdict(msg.value() or b"")
            except ValueError:
                continue
            row = state.rows.get(v.user)
            if row is None:
                continue
            row.verdicts += 1
            row.enrollment, row.level, row.trust = v.enrollment, v.level, v.trust
            row.keyboard = v.keyboard_score if v.keyboard_score is not None else row.keyboard
            row.mouse = v.mouse_score if v.mouse_score is not None else row.mouse
            row.reasons = v.reasons
    finally:
        consumer.close()


def _dead_letters(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return 0
    return int(
        sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("cadence_dead_letters_total{")
        )
    )


_LEVEL_STYLE = {
    "trusted": "green",
    "uncertain": "yellow",
    "suspicious": "bold dark_orange",
    "impostor": "bold white on red",
    "-": "dim",
}


#: Console columns from which each account's event count, and the reasons of its last
#: verdict, are shown too (below, neither fits beside the rest without cutting cells).
EVENTS_FROM_WIDTH = 84
REASONS_FROM_WIDTH = 140


def _render(
    state: DemoState, args: argparse.Namespace, takeover: Takeover, width: int = 80
) -> Table:
    """The demo's table, laid out to fit ``width`` columns (80 is a plain terminal's):
    the events and reasons columns only where there is room for them."""
    from rich import box
    from rich.table import Table

    elapsed = time.monotonic() - state.started
    table = Table(
        title=(
            f"cadence — {len(state.rows)} accounts · simulated {state.sim_seconds:5.0f} s "
            f"(x{args.rate:g}) · {state.published_events} events in "
            f"{state.published_batches} batches · {elapsed:4.0f} s · dead letters "
            f"{state.dead_letters}"
        ),
        caption="scores: 0 = typical of the owner, 1 = beyond anything the owner did "
        "while enrolling · truth is the simulation's, shown for the demo only",
        # No borders: ten columns fit an 80-column terminal only without them.
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    with_events = width >= EVENTS_FROM_WIDTH
    columns = [
        ("account", "left"),
        *([("events", "right")] if with_events else []),
        ("verdicts", "right"),
        ("state", "left"),
        ("level", "left"),
        ("trust", "right"),
        ("keys", "right"),
        ("mouse", "right"),
        ("truth", "left"),
    ]
    with_reasons = width >= REASONS_FROM_WIDTH
    if with_reasons:
        columns.append(("reasons", "left"))
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name != "reasons")  # type: ignore[arg-type]
    for row in state.rows.values():
        style = _LEVEL_STYLE.get(row.level, "")
        cells = [
            row.label,
            *([str(row.events)] if with_events else []),
            str(row.verdicts),
            row.enrollment,
            f"[{style}]{row.level}[/]" if style else row.level,
            f"{row.trust:.0f}",
            "-" if row.keyboard is None else f"{row.keyboard:.2f}",
            "-" if row.mouse is None else f"{row.mouse:.2f}",
            "[bold red]IMPOSTOR[/]" if row.truth == "IMPOSTOR" else "owner",
        ]
        if with_reasons:
            cells.append("; ".join(row.reasons)[:60])
        table.add_row(*cells)
    return table
