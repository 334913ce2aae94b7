"""A real Kafka broker for the test session, plus small helpers for tests that use it.

The broker is started by deploy/local/kafka_local.py (the same code as `make kafka-up`), loaded
here by path because deploy/ is not a package and must stay importable without the venv.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCHER_PATH = REPO_ROOT / "deploy" / "local" / "kafka_local.py"
BOOTSTRAP_ENV = "CADENCE_KAFKA_BOOTSTRAP"


def load_launcher() -> ModuleType:
    """Import deploy/local/kafka_local.py once per interpreter."""
    name = "cadence_kafka_local"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, LAUNCHER_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LAUNCHER_PATH}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so dataclasses in the module can resolve their own module.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class BrokerUnavailable(Exception):
    """The machine lacks what a broker needs (java, or mvn for the first jar fetch)."""


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    root: Path | None  # None when the broker came from CADENCE_KAFKA_BOOTSTRAP
    start_seconds: float


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_PRIVATE_PREFIX = "cadence-kafka-test-"


def _remove_stale_private_brokers(launcher: ModuleType, min_age: float = 600.0) -> None:
    """Delete data dirs of private brokers whose session was SIGKILLed (no finally ran).

    Their JVM is already gone (PR_SET_PDEATHSIG); only the directory is left. A directory
    with a live broker, or too young to have one yet, belongs to a concurrent session.
    """
    now = time.time()
    for root in Path(tempfile.gettempdir()).glob(f"{_PRIVATE_PREFIX}*"):
        try:
            if now - root.stat().st_mtime < min_age:
                continue
        except OSError:
            continue
        if launcher.running_pid(launcher.Instance(root=root)) is None:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def private_broker(timeout: float = 120.0) -> Iterator[Broker]:
    """Start a throw-away broker on free ports in a temp dir; stop and delete it on exit.

    Also on exceptions and KeyboardInterrupt (finally), and, on Linux, even when this process
    is SIGKILLed: the launcher sets PR_SET_PDEATHSIG so the JVM follows its parent.
    """
    launcher = load_launcher()
    try:
        launcher.find_java()
        launcher.ensure_jars()
    except launcher.LauncherError as exc:
        if shutil.which("java") is None or "mvn not found" in str(exc):
            raise BrokerUnavailable(str(exc)) from exc
        raise
    _remove_stale_private_brokers(launcher)
    root = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
    inst = launcher.Instance(
        root=root,
        port=free_port(),
        controller_port=free_port(),
        heap=os.environ.get("CADENCE_KAFKA_HEAP", "512m"),
    )
    try:
        result = launcher.start(inst, timeout=timeout, die_with_parent=True)
        yield Broker(result.bootstrap, root, result.seconds)
    finally:
        try:
            launcher.stop(inst, timeout=30.0)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def external_broker(bootstrap: str, timeout: float = 60.0) -> Broker:
    """Use a broker someone else runs (CI service, `make kafka-up`, docker compose)."""
    launcher = load_launcher()
    host, _, port = bootstrap.rpartition(":")
    began = time.monotonic()
    launcher.wait_ready(host or "127.0.0.1", int(port), timeout)
    return Broker(bootstrap, None, time.monotonic() - began)


# ------------------------------------------------------------------------ test helpers


def unique_name(prefix: str = "cadence-test") -> str:
    """Topic/group name that cannot collide across tests or with an external broker's data."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> str:
    """Create `name` (idempotent) and return once the broker reports a leader for every partition.

    Waiting for leaders matters: CreateTopics returns before partitions are led, and a producer
    or a Faust worker that starts in that window sees transient errors.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=dict(config or {}),
    )
    future = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)[name]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return name
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {name} has no leader after {timeout:.0f}s")
        time.sleep(0.1)


def delete_topic(bootstrap: str, name: str, timeout: float = 30.0) -> None:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.delete_topics([name], operation_timeout=timeout, request_timeout=timeout)[name]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise
