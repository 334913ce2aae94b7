"""Topic administration with confluent-kafka's AdminClient."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.topics import TOPICS, TopicSpec


def create_topics(
    kafka_config: Mapping[str, Any],
    specs: Iterable[TopicSpec] = TOPICS,
    *,
    replication_factor: int = -1,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create the topics that do not exist yet; return ``{name: "created" | "exists"}``.

    Existing topics are left as they are (their partition count is the operator's),
    so running this twice is harmless.
    """
    admin = AdminClient(dict(kafka_config))
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                config=dict(spec.config),
            )
            for spec in specs
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    # Waited for in steps that serve the client's queue: its log records reach the logger
    # the settings may name (the operator commands', streams.commands._kafka).
    deadline = time.monotonic() + timeout
    pending = set(futures.values())
    while pending and (left := deadline - time.monotonic()) > 0:
        admin.poll(0)
        pending = concurrent.futures.wait(pending, timeout=min(0.5, left)).not_done
    admin.poll(0)
    outcome: dict[str, str] = {}
    failed = False
    for name, future in futures.items():
        # Every topic's outcome is collected before failing, so a partial creation is
        # reported whole (the next run says "exists" for the ones that were made).
        try:
            future.result(timeout=0)
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
            else:
                outcome[name], failed = f"failed: {exc.args[0].str()}", True
        except TimeoutError:
            outcome[name], failed = f"failed: no answer within {timeout:g} s", True
    if failed:
        raise TopicsNotCreated(outcome)
    return outcome


class TopicsNotCreated(RuntimeError):
    """Some topics could not be created; ``outcome`` has every topic's result."""

    def __init__(self, outcome: dict[str, str]) -> None:
        self.outcome = outcome
        bad = {n: o for n, o in outcome.items() if o.startswith("failed")}
        super().__init__("; ".join(f"{n}: {o}" for n, o in bad.items()))


def copartitioning_problem(
    kafka_config: Mapping[str, str], topics: Iterable[str], expected: int, timeout: float = 15.0
) -> str | None:
    """Why ``topics`` are not co-partitioned with ``expected`` partitions, or None.

    A user's events, erasure requests and profile changelog must sit on the same partition
    number: the worker that owns a user's events owns their profile, and erases it by
    writing the tombstone to the erasure request's partition. Topics that do not exist
    yet are fine (the worker or ``cadence topics create`` makes them with ``expected``).
    An unreachable broker is not a problem here: the worker reports it as it connects.
    """
    names = list(topics)
    try:
        metadata = AdminClient(dict(kafka_config)).list_topics(timeout=timeout)
    except KafkaException:
        return None
    counts = {
        name: len(metadata.topics[name].partitions)
        for name in names
        if name in metadata.topics and metadata.topics[name].error is None
    }
    wrong = {name: n for name, n in counts.items() if n != expected}
    if not wrong:
        return None
    listed = ", ".join(f"{name} has {n}" for name, n in sorted(counts.items()))
    return (
        f"topics are not co-partitioned: {listed}; all must have CADENCE_EVENTS_PARTITIONS="
        f"{expected} partitions (a user's events, erasure requests and profile must share a "
        "partition, or an erasure can miss the profile). Add partitions to every one of them "
        "together and set CADENCE_EVENTS_PARTITIONS (docs/operations.md, Scaling)."
    )
