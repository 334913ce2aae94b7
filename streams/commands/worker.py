"""``cadence worker``: run one stream-processing worker until SIGINT/SIGTERM.

Configuration comes from the environment (see README, "Configuration"); the
flags override the most common settings.
"""

from __future__ import annotations

import argparse
import gc
import os

# Net allocations between young-generation collections (Python's default is 700). The
# worker keeps every event of its users' open windows until they are judged: tens of
# thousands of live tuples, which young collections promote and older ones traverse
# again and again. At the default that was about a fifth of the worker's CPU
# (docs/performance.md, "Garbage collection").
GC_GEN0_THRESHOLD = 200_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument("--web-port", type=int, help="port of /metrics and /health (6066)")
    parser.add_argument("--store", help="table store: memory:// (default) or rocksdb://")
    parser.add_argument("--data-dir", help="where the worker keeps local table data")
    parser.add_argument("--loglevel", default="info", help="debug, info, warning, error")


def run(args: argparse.Namespace) -> int:
    overrides = {
        "CADENCE_KAFKA_BOOTSTRAP": args.bootstrap,
        "CADENCE_WEB_PORT": args.web_port,
        "CADENCE_STORE": args.store,
        "CADENCE_DATA_DIR": args.data_dir,
    }
    for name, value in overrides.items():
        if value is not None:
            os.environ[name] = str(value)
    import sys

    from faust.worker import Worker as FaustWorker

    from streams.admin import copartitioning_problem
    from streams.app import create_app
    from streams.env import env_number
    from streams.judge import background, enrollment_policy
    from streams.kafka_auth import broker_credentials
    from streams.settings import WorkerSettings
    from streams.topics import CONTROL, EVENTS

    # Every setting read before anything starts, so that a mistake is one line and exit
    # 2 (as for the other commands' Kafka settings), not a traceback: the Kafka client
    # settings (OSError: a secret file; ValueError: SASL without a SASL protocol), the
    # worker's login (ValueError: SASL without a password; ssl.SSLError, an OSError: a
    # CA or client certificate file), the population model and enrollment thresholds
    # (SettingError), the garbage collector's threshold.
    try:
        settings = WorkerSettings.from_env()
        broker_credentials(settings.kafka)
        background()
        enrollment_policy()
        gen0_threshold = env_number("CADENCE_GC_GEN0_THRESHOLD", GC_GEN0_THRESHOLD, minimum=0)
    except (OSError, ValueError) as exc:
        print(f"cadence worker: {exc}", file=sys.stderr)
        return 2
    worker = create_app(settings)
    problem = copartitioning_problem(
        worker.settings.kafka,
        [EVENTS.name, CONTROL.name, worker.user_profiles.changelog_topic.get_topic_name()],
        worker.settings.table_partitions,
    )
    if problem:
        # Refused rather than run: erasures would be reported done and silently missed.
        print(f"cadence worker: {problem}", file=sys.stderr)
        return 2
    # Only the worker process may exit on its own when a stop hangs (never a test run).
    worker.owns_process = True
    faust_worker = FaustWorker(worker.app, loglevel=args.loglevel)
    # At --loglevel warning or above Faust turns a terminal spinner for every log record:
    # it lowers the root logger to DEBUG, so every debug call of Faust and aiokafka
    # (several per message) builds a record. A worker is not watched on a terminal.
    faust_worker.spinner = None
    tune_gc(gen0_threshold)
    faust_worker.execute_from_commandline()
    return 0


def tune_gc(gen0_threshold: int) -> None:
    """Collect the young generation every ``gen0_threshold`` allocations (0: Python's
    defaults), and leave the objects built so far (modules, the app) out of collections."""
    if gen0_threshold <= 0:
        return
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    gc.freeze()
