"""BatchSender against the session's real broker: record shape, and recovery from a fatal error."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaError

from collectors.delivery import BatchSender
from collectors.metrics import CollectorMetrics
from collectors.spool import SqliteSpool
from collectors.wire import EventBatch, KeyEvent, decode_batch, encode_batch
from tests.integration.collector_send_script import make_batch
from tests.integration.collector_support import read_topic
from tests.kafka_broker import create_topic, unique_name


def test_records_are_keyed_by_user_with_schema_header(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = create_topic(kafka_bootstrap, unique_name("collector-delivery"), partitions=3)
    metrics = CollectorMetrics()
    sender = BatchSender(
        SqliteSpool(tmp_path / "s.db", metrics=metrics),
        bootstrap=kafka_bootstrap,
        topic=topic,
        metrics=metrics,
    )
    first = sender.next_seq("dev-shape")
    batches = [make_batch("dev-shape", first + i) for i in range(50)]
    for b in batches:
        sender.send(b)
    assert sender.flush(30) == 0
    assert metrics.registry.get_sample_value("cadence_collector_batches_sent_total") == 50
    assert metrics.registry.get_sample_value("cadence_collector_spool_batches") == 0
    sender.close()
    records = read_topic(kafka_bootstrap, topic)
    assert len({r.partition for r in records}) == 1  # one user key, one partition, one order
    assert [r.value for r in records] == [encode_batch(b) for b in batches]
    assert all(r.key == b"u" * 64 for r in records)
    assert all(dict(r.headers) == {"cadence-schema": b"1"} for r in records)


def test_fatal_producer_error_recreates_producer_and_resends(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = create_topic(kafka_bootstrap, unique_name("collector-fatal"), partitions=1)
    sender = BatchSender(
        SqliteSpool(tmp_path / "s.db", fsync=False), bootstrap=kafka_bootstrap, topic=topic
    )
    first = sender.next_seq("dev-fatal")
    for _ in range(20):
        sender.send(make_batch("dev-fatal", sender.next_seq("dev-fatal")))
    # What librdkafka's error_cb reports for e.g. a fenced idempotent producer.
    sender._on_error(KafkaError(KafkaError._FATAL, "test: fatal", fatal=True))
    for _ in range(20):
        sender.send(make_batch("dev-fatal", sender.next_seq("dev-fatal")))
    assert sender.flush(30) == 0
    assert sender.counters.producer_restarts == 1
    sender.close()
    seqs = [decode_batch(r.value).seq for r in read_topic(kafka_bootstrap, topic)]
    firsts = list(dict.fromkeys(seqs))
    assert firsts == list(range(first, first + 40))  # all there, first arrivals in order


def test_batch_the_producer_refuses_outright_is_dropped_counted_and_the_rest_delivered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # librdkafka refuses a record over message.max.bytes inside produce() itself: no
    # resend can succeed, so it must neither crash the agent nor block the spool.
    topic = create_topic(kafka_bootstrap, unique_name("collector-refused"), partitions=1)
    metrics = CollectorMetrics()
    sender = BatchSender(
        SqliteSpool(tmp_path / "s.db", fsync=False, metrics=metrics),
        bootstrap=kafka_bootstrap,
        topic=topic,
        metrics=metrics,
        extra_config={"message.max.bytes": 4000},
    )
    small = [make_batch("dev-big", sender.next_seq("dev-big")) for _ in range(3)]
    keys = tuple(KeyEvent("kd" if i % 2 == 0 else "ku", 10.0 + i, i % 13) for i in range(400))
    huge = EventBatch("dev-big", "u" * 64, "s-1", small[-1].seq + 1, 0.0, 0.0, keys)
    assert len(encode_batch(huge)) > 4000
    after = [make_batch("dev-big", huge.seq + 1 + i) for i in range(3)]
    for b in [*small, huge, *after]:
        sender.send(b)
    assert sender.flush(30) == 0
    assert sender.counters.rejected == 1
    assert metrics.registry.get_sample_value("cadence_collector_dropped_batches_total") == 1
    assert metrics.registry.get_sample_value("cadence_collector_delivery_errors_total") == 1
    sender.close()
    seqs = [decode_batch(r.value).seq for r in read_topic(kafka_bootstrap, topic)]
    assert seqs == [b.seq for b in [*small, *after]]
