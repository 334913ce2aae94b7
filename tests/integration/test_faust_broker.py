"""A real Faust worker (faust-streaming over aiokafka) works against the project's Kafka broker.

Kafka 4 removed many old protocol versions (KIP-896); this is the check that the Python stack
the stream processors run on still joins consumer groups, creates its internal topics, keeps a
changelogged table, produces, and commits offsets on the broker version we ship.

The worker runs in a subprocess exactly as in production (`faust ... worker`), built by
`worker_main()` below from environment variables the test sets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tests.kafka_broker import REPO_ROOT, create_topic, unique_name

N_EVENTS = 24
USERS = ("alice", "bob", "carol")
PARTITIONS = 2


def worker_main() -> None:
    """Entry point of the worker subprocess; configuration comes from CADENCE_IT_* env vars."""
    import faust

    env = os.environ
    app = faust.App(
        env["CADENCE_IT_APP_ID"],
        broker=f"kafka://{env['CADENCE_IT_BOOTSTRAP']}",
        store="memory://",
        datadir=env["CADENCE_IT_DATADIR"],
        topic_partitions=PARTITIONS,
        # Commit often so the test sees committed offsets within a second or two.
        broker_commit_every=5,
        broker_commit_interval=0.5,
        web_enabled=False,
    )
    source = app.topic(
        env["CADENCE_IT_SOURCE"],
        key_serializer="raw",
        value_serializer="json",
        partitions=PARTITIONS,
    )
    sink = app.topic(
        env["CADENCE_IT_SINK"], key_serializer="raw", value_serializer="json", partitions=PARTITIONS
    )
    counts = app.Table("counts", default=int, partitions=PARTITIONS)

    @app.agent(source)
    async def count_events(stream: Any) -> None:
        async for key, event in stream.items():
            user = key.decode()
            counts[user] += 1
            await sink.send(key=key, value={"user": user, "seq": event["seq"], "n": counts[user]})

    # --without-web: the default web server binds 0.0.0.0:6066, which collides between
    # parallel sessions and is not what this test is about.
    sys.argv = ["faust", "worker", "--loglevel", "info", "--without-web"]
    app.main()


def _poll_until(
    what: str, check: Callable[[], bool], timeout: float, worker: subprocess.Popen[bytes], log: Path
) -> None:
    # `check` may block briefly itself (a consumer poll); the sleep only paces admin queries.
    deadline = time.monotonic() + timeout
    while not check():
        if worker.poll() is not None:
            pytest.fail(f"faust worker exited ({worker.returncode}) before {what}:\n{_tail(log)}")
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _reader(bootstrap: str, topic: str, partitions: int) -> Consumer:
    # assign(), not subscribe(): reading back needs no consumer group, and a group join costs
    # seconds per reader.
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("it-reader"),
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def _stop(worker: subprocess.Popen[bytes]) -> int:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # Faust's graceful shutdown path
        try:
            return worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    return worker.wait(timeout=30)


def test_faust_worker_against_real_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    app_id = unique_name("cadence-it-faust")
    source = create_topic(kafka_bootstrap, unique_name("it-source"), partitions=PARTITIONS)
    sink = create_topic(kafka_bootstrap, unique_name("it-sink"), partitions=PARTITIONS)

    # Produced before the worker starts: it must pick them up from the earliest offset.
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    expected: dict[str, int] = {}
    for seq in range(N_EVENTS):
        user = USERS[seq % len(USERS)]
        expected[user] = expected.get(user, 0) + 1
        producer.produce(source, key=user.encode(), value=json.dumps({"seq": seq}).encode())
    assert producer.flush(30) == 0

    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "CADENCE_IT_APP_ID": app_id,
        "CADENCE_IT_BOOTSTRAP": kafka_bootstrap,
        "CADENCE_IT_DATADIR": str(tmp_path / "faust-data"),
        "CADENCE_IT_SOURCE": source,
        "CADENCE_IT_SINK": sink,
    }
    code = "from tests.integration.test_faust_broker import worker_main; worker_main()"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    with open(log, "wb") as log_fh:
        worker = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
    try:
        # 1. The agent consumed every event and produced one result per event.
        results: list[dict[str, Any]] = []
        consumer = _reader(kafka_bootstrap, sink, PARTITIONS)

        def all_results() -> bool:
            for msg in consumer.consume(num_messages=500, timeout=0.25):
                if msg.error() is None:
                    results.append(json.loads(msg.value() or b"null"))
            return len(results) >= N_EVENTS

        try:
            _poll_until("agent output", all_results, 120, worker, log)
        finally:
            consumer.close()
        final = {r["user"]: max(x["n"] for x in results if x["user"] == r["user"]) for r in results}
        assert final == expected
        assert sorted(r["seq"] for r in results) == list(range(N_EVENTS))

        # 2. The worker is a member of its consumer group (the group id is the app id).
        def group_stable() -> bool:
            desc = admin.describe_consumer_groups([app_id])[app_id].result(timeout=10)
            return desc.state.name == "STABLE" and len(desc.members) == 1

        _poll_until("a stable consumer group", group_stable, 30, worker, log)

        # 3. Offsets for the source topic were committed up to the end of the log.
        def committed_total() -> int:
            request = [ConsumerGroupTopicPartitions(app_id)]
            got = admin.list_consumer_group_offsets(request)[app_id].result(timeout=10)
            parts: list[TopicPartition] = got.topic_partitions or []
            return sum(tp.offset for tp in parts if tp.topic == source and tp.offset >= 0)

        _poll_until("committed offsets", lambda: committed_total() == N_EVENTS, 60, worker, log)

        # 4. The table's changelog topic (created by Faust itself: auto-create is off) holds
        #    the final per-user counts.
        changelog = f"{app_id}-counts-changelog"
        assert changelog in admin.list_topics(timeout=10).topics
        latest: dict[str, int] = {}
        reader = _reader(kafka_bootstrap, changelog, PARTITIONS)

        def changelog_caught_up() -> bool:
            for msg in reader.consume(num_messages=500, timeout=0.25):
                if msg.error() is None:
                    latest[json.loads(msg.key() or b"null")] = json.loads(msg.value() or b"null")
            return latest == expected

        try:
            _poll_until("changelog contents", changelog_caught_up, 60, worker, log)
        finally:
            reader.close()
    finally:
        exit_code = _stop(worker)
    assert exit_code == 0, f"worker did not shut down cleanly ({exit_code}):\n{_tail(log)}"
