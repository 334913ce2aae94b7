"""Topic administration with confluent-kafka's AdminClient."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.topics import TOPICS, TopicSpec


def create_topics(
    kafka_config: Mapping[str, str],
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
    outcome: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
    return outcome
