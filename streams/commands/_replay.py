"""What ``cadence replay mouse`` and ``cadence replay keystrokes`` share: options and the send loop."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from streams.commands._signing import add_sign_argument, signer_or_exit
from streams.config import add_kafka_arguments

if TYPE_CHECKING:
    from collectors.delivery import BatchSender
    from collectors.publish import PublishStats
    from collectors.replay import Recording
    from collectors.wire import EventBatch


def configure_common(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument("dir", type=Path, metavar="DIR", help="dataset root directory")
    parser.add_argument(
        "--user-map",
        action="append",
        default=[],
        metavar="USER=PSEUDONYM|@FILE",
        help="publish a dataset user under this pseudonym (repeatable; FILE: user,pseudonym "
        "rows); default sha256('replay:<user>')",
    )
    parser.add_argument(
        "--users", default=None, metavar="U1,U2", help="replay only these dataset users"
    )
    pacing = parser.add_mutually_exclusive_group()
    pacing.add_argument(
        "--speed", type=float, default=1.0, metavar="X", help="X times real time (default 1)"
    )
    pacing.add_argument("--fast", action="store_true", help="as fast as possible")
    parser.add_argument(
        "--limit-sessions", type=int, default=None, metavar="N", help="first N sessions per user"
    )
    parser.add_argument(
        "--max-idle-s",
        type=float,
        default=60.0,
        metavar="S",
        help="shorten idle gaps inside a recording to S seconds (default 60; 'inf' keeps them)",
    )
    parser.add_argument(
        "--gap-s", type=float, default=1.0, help="pause between a user's sessions (default 1)"
    )
    parser.add_argument(
        "--run-id",
        default=None,
        help="names this run's devices (default: the start time), so reruns are not deduplicated",
    )
    parser.add_argument(
        "--topic", default=None, help="default: env CADENCE_EVENTS_TOPIC, else cadence.events.v1"
    )
    parser.add_argument("--flush-timeout", type=float, default=60.0, help="seconds to flush")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_sign_argument(parser)


def run_replay(
    args: argparse.Namespace,
    name: str,
    recordings: Callable[[Path, int | None, Iterable[str] | None], Iterable[Recording]],
) -> int:
    import time

    from collectors.delivery import BatchSender
    from collectors.publish import start_ending_now
    from collectors.replay import load_user_map, replay_timed
    from streams.commands._args import positive, refuse
    from streams.topics import EVENTS

    if not args.dir.is_dir():
        print(f"cadence replay {name}: {args.dir} is not a directory", file=sys.stderr)
        return 2
    if refuse(
        f"replay {name}",
        [
            (positive(args.speed), "--speed must be a positive number"),
            (math.isfinite(args.gap_s) and args.gap_s >= 0, "--gap-s must be 0 or more seconds"),
            (args.max_idle_s >= 0, "--max-idle-s must be 0 or more seconds (or inf)"),  # NaN too
            (
                args.limit_sessions is None or args.limit_sessions >= 0,
                "--limit-sessions must be >= 0",
            ),
            (args.flush_timeout >= 0, "--flush-timeout must be 0 or more seconds"),
        ],
    ):
        return 2
    try:
        user_map = load_user_map(args.user_map)
    except (OSError, ValueError) as exc:
        print(f"cadence replay {name}: {exc}", file=sys.stderr)
        return 2
    signer = signer_or_exit(args, f"replay {name}")
    if isinstance(signer, int):
        return signer
    users = args.users.split(",") if args.users else None
    max_idle = None if math.isinf(args.max_idle_s) else args.max_idle_s
    run = args.run_id if args.run_id is not None else str(int(time.time()))
    speed = math.inf if args.fast else args.speed

    def timed_from(start_wall_ms: float) -> Iterable[tuple[float, EventBatch]]:
        return replay_timed(
            recordings(args.dir, args.limit_sessions, users),
            user_map=user_map,
            start_wall_ms=start_wall_ms,
            gap_s=args.gap_s,
            max_idle_s=max_idle,
            run=run,
            kind=name,
        )

    start_wall_ms = time.time() * 1000.0
    if speed > 1.0:
        # Placed to end now (start_ending_now), which takes its length: a first, silent read.
        length_s = _length_s(lambda: timed_from(start_wall_ms))
        try:
            start_wall_ms = start_ending_now(length_s, speed, start_wall_ms)
        except ValueError as exc:
            # The free-text recordings with --max-idle-s inf span weeks: nearly every
            # batch would be dead-lettered.
            print(
                f"cadence replay {name}: {exc}; shorten it (--max-idle-s, --limit-sessions, "
                "--users) or replay it in real time (--speed 1)",
                file=sys.stderr,
            )
            return 2
    timed = timed_from(start_wall_ms)
    sender = BatchSender(
        bootstrap=args.kafka_config["bootstrap.servers"],
        topic=args.topic or EVENTS.name,
        extra_config={k: v for k, v in args.kafka_config.items() if k != "bootstrap.servers"},
        signer=signer,
    )

    def report(stats: PublishStats) -> None:
        if not args.quiet:
            print(
                f"replay {name}: t={stats.last_t_s:.1f}s batches={stats.batches} "
                f"events={stats.events} ({stats.events_per_s:.0f}/s) pending={sender.pending}",
                file=sys.stderr,
            )

    return send_and_close(timed, sender, speed, report, args.flush_timeout, f"replay {name}")


def _length_s(timed: Callable[[], Iterable[tuple[float, EventBatch]]]) -> float:
    """The replay clock's last batch time; the readers' warnings come with the real pass."""
    import logging

    logging.disable(logging.WARNING)
    try:
        return max((t for t, _ in timed()), default=0.0)
    finally:
        logging.disable(logging.NOTSET)


def send_and_close(
    timed: Iterable[tuple[float, EventBatch]],
    sender: BatchSender,
    speed: float,
    report: Callable[[PublishStats], None],
    flush_timeout: float,
    label: str,
) -> int:
    """Publish until done, Ctrl-C or an error; always flush what is pending; the exit status.

    0 only when something was sent and all of it delivered: an empty selection (no
    recordings, a user filter that matches nobody) is an error, not a quiet success.
    """
    from collectors.publish import publish

    status = 0
    stats: PublishStats | None = None
    interrupted = _Interrupted(sender)
    try:
        with interrupted:
            stats = publish(timed, interrupted, speed=speed, progress=report)
    except KeyboardInterrupt:
        status = 130
    except Exception as exc:  # noqa: BLE001 - what was sent before it is still delivered
        print(f"{label}: stopped: {exc}", file=sys.stderr)
        status = 1
    finally:
        remaining = sender.close(flush_timeout)
    if stats is not None:
        report(stats)
        if stats.batches == 0:
            print(f"{label}: nothing to send (no events in the selection)", file=sys.stderr)
            status = 1
    if remaining:
        print(f"{label}: {remaining} batches not delivered", file=sys.stderr)
        return 1
    return status


class _Interrupted:
    """The sender, with Ctrl-C raised between two of its calls, never inside one.

    A KeyboardInterrupt that lands inside librdkafka's ``poll`` (where a paced run
    spends its time) comes out as ``SystemError: ... returned NULL``: the command then
    said "stopped: <method 'poll' ...>" and exited 1. SIGINT only sets a flag here; the
    next ``poll`` (every 0.1 s at most while pacing) or ``send`` raises KeyboardInterrupt.
    """

    def __init__(self, sender: BatchSender) -> None:
        self.sender = sender
        self.stop = False
        self._previous: object = None

    def __enter__(self) -> _Interrupted:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.stop = True

    @property
    def pending(self) -> int:
        return self.sender.pending

    def send(self, batch: EventBatch) -> None:
        self.sender.send(batch)
        if self.stop:  # --fast never waits: checked at every batch too
            raise KeyboardInterrupt

    def poll(self, timeout: float = 0) -> None:
        self.sender.poll(timeout)
        if self.stop:
            raise KeyboardInterrupt
