"""``cadence collect``: run the workstation capture agent until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from collectors.spool.copies import DEFAULT_QUARANTINE_DAYS
from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument(
        "--topic", default=None, help="default: env CADENCE_EVENTS_TOPIC, else cadence.events.v1"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="device id and spool live here (default: $XDG_STATE_HOME/cadence)",
    )
    parser.add_argument(
        "--spool",
        type=Path,
        default=None,
        metavar="PATH",
        help="spool file (default: STATE_DIR/spool.db)",
    )
    parser.add_argument(
        "--memory-spool",
        action="store_true",
        help="keep unsent batches in memory only (loses them on a crash; tests/benchmarks)",
    )
    parser.add_argument("--spool-max-mb", type=float, default=256.0, help="spool bound in MiB")
    parser.add_argument(
        "--spool-max-batches", type=int, default=1_000_000, help="spool bound in batches"
    )
    parser.add_argument(
        "--spool-quarantine-days",
        type=float,
        default=DEFAULT_QUARANTINE_DAYS,
        metavar="DAYS",
        help="delete a damaged spool moved aside after DAYS (0: at once; default 7)",
    )
    parser.add_argument(
        "--no-fsync", action="store_true", help="survive agent crashes but not power loss (cheaper)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, metavar="N", help="serve metrics on 127.0.0.1:N"
    )
    parser.add_argument(
        "--key-identity",
        action="store_true",
        help="AUDITED: also send a keyed hash of each key's identity (off by default)",
    )
    parser.add_argument(
        "--no-pointer",
        action="store_true",
        help="capture keys only, never the mouse (desks where the pointer types: "
        "on-screen keyboards, PIN pads; docs/privacy.md)",
    )
    parser.add_argument(
        "--idle-minutes", type=float, default=15.0, help="new session after this idle time"
    )
    parser.add_argument(
        "--login", default=None, help=argparse.SUPPRESS
    )  # tests: pseudonymise this login
    parser.add_argument(
        "--flush-timeout", type=float, default=10.0, help="seconds to flush on exit"
    )
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from collectors.agent import AgentConfig, build_agent, default_state_dir
    from collectors.batch_auth import KeyFileError
    from collectors.identity import MissingPseudonymKey
    from collectors.spool import SpoolError
    from streams.commands._args import positive, refuse
    from streams.topics import EVENTS

    if refuse(
        "collect",
        [
            (
                args.log_level.upper() in logging.getLevelNamesMapping(),
                "--log-level must be one of debug, info, warning, error, critical",
            ),
            (positive(args.spool_max_mb), "--spool-max-mb must be a positive number"),
            (args.spool_max_batches >= 1, "--spool-max-batches must be at least 1"),
            (
                positive(args.spool_quarantine_days) or args.spool_quarantine_days == 0,
                "--spool-quarantine-days must be a number of days, 0 or more",
            ),
            # 0 or less starts a session with every batch; NaN would switch the rule off.
            (positive(args.idle_minutes), "--idle-minutes must be a positive number"),
            (
                positive(args.flush_timeout) or args.flush_timeout == 0,
                "--flush-timeout must be a number of seconds, 0 or more",
            ),
            (
                args.metrics_port is None or 1 <= args.metrics_port <= 65535,
                "--metrics-port must be a port number, 1 to 65535",
            ),
        ],
    ):
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = AgentConfig(
        bootstrap=args.kafka_config["bootstrap.servers"],
        kafka_extra={k: v for k, v in args.kafka_config.items() if k != "bootstrap.servers"},
        topic=args.topic or EVENTS.name,
        state_dir=args.state_dir or default_state_dir(),
        spool_path=args.spool,
        memory_spool=args.memory_spool,
        spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
        spool_max_batches=args.spool_max_batches,
        spool_quarantine_days=args.spool_quarantine_days,
        fsync=not args.no_fsync,
        metrics_port=args.metrics_port,
        key_identity=args.key_identity,
        pointer=not args.no_pointer,
        idle_ms=args.idle_minutes * 60_000.0,
        login=args.login,
        flush_timeout=args.flush_timeout,
    )
    try:
        agent, capture = build_agent(config)
    except (MissingPseudonymKey, KeyFileError, SpoolError, OSError, KafkaException) as exc:
        # A spool that cannot be opened is locked by another agent on this state
        # directory, or unreadable (permissions); a damaged one was moved aside already.
        # OSError: a state directory that cannot be made, a metrics port in use;
        # KafkaException: a Kafka setting librdkafka refuses (a CA file that is not there).
        print(f"cadence collect: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGHUP"):  # not on Windows
        # The terminal or session that started the agent went away: stop as for SIGTERM
        # (flush the open batch to the spool) rather than die with it unsent.
        signal.signal(signal.SIGHUP, on_signal)
    try:
        agent.run(stop, capture, flush_timeout=config.flush_timeout)
    except RuntimeError as exc:
        print(f"cadence collect: {exc}", file=sys.stderr)
        return 1
    return 0
