"""The session broker is a real Kafka: metadata, topic creation, idempotent produce, consume."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from tests.kafka_broker import create_topic, load_launcher, unique_name


def test_broker_answers_metadata(kafka_bootstrap: str) -> None:
    host, _, port = kafka_bootstrap.rpartition(":")
    info = load_launcher().probe(host, int(port))
    assert info.brokers, "broker answered metadata without listing itself"
    assert info.controller_id >= 0

    cluster = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert len(cluster.brokers) == 1


def test_topics_are_not_auto_created(kafka_bootstrap: str) -> None:
    # The project creates its topics on purpose; a misspelt name must not silently appear.
    name = unique_name("never-created")
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_name("g"),
            "allow.auto.create.topics": True,
        }
    )
    try:
        consumer.subscribe([name])
        consumer.poll(2.0)
    finally:
        consumer.close()
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert name not in topics


def test_create_produce_consume(kafka_bootstrap: str) -> None:
    topic = create_topic(kafka_bootstrap, unique_name("roundtrip"), partitions=3)
    # Idempotent producer with acks=all is what the collectors use; on one node it only works
    # if min.insync.replicas and the transaction-state settings fit a single replica.
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    sent = {f"user-{i}".encode(): f"event-{i}".encode() for i in range(30)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert errors == []

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_name("roundtrip-g"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: dict[bytes, bytes] = {}
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            mkey, mvalue = msg.key(), msg.value()
            assert isinstance(mkey, bytes) and isinstance(mvalue, bytes)
            received[mkey] = mvalue
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert received == sent
