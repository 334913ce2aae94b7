"""How the sender treats a broker that refuses the workstation's clock.

A real broker refuses a record stamped more than ``message.timestamp.after.max.ms`` ahead
of its own clock (1 h by default on Kafka 4) with INVALID_TIMESTAMP, which this process's
clock cannot be made to produce; so the delivery report is fed in here as librdkafka
would deliver it, to a sender whose producer never reaches a broker.
"""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from collectors.delivery import BatchSender
from collectors.metrics import CollectorMetrics
from collectors.spool import MemorySpool
from tests.integration.collector_send_script import make_batch


def test_refused_clock_keeps_batches_counts_logs_once_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = CollectorMetrics()
    sender = BatchSender(
        MemorySpool(metrics=metrics),
        bootstrap="127.0.0.1:1",  # nothing listens: no report but the ones fed below
        topic="cadence.events.v1",
        metrics=metrics,
        extra_config={"log_level": 0},
    )
    for _ in range(3):
        sender.send(make_batch("dev-clock", sender.next_seq("dev-clock")))
    produced = sender.counters.produced
    assert produced == 3
    spool_ids = [row.id for row in sender.spool.pending(0, 10)]
    with caplog.at_level(logging.WARNING, logger="collectors.delivery"):
        for spool_id in spool_ids:
            sender._on_delivery(
                sender._generation, spool_id, KafkaError(KafkaError.INVALID_TIMESTAMP)
            )
        sender.poll(0)
        sender.send(make_batch("dev-clock", sender.next_seq("dev-clock")))
        sender.poll(0)

    value = metrics.registry.get_sample_value
    assert value("cadence_collector_clock_refused_total") == 3
    assert value("cadence_collector_delivery_errors_total") == 3
    # Nothing dropped: every batch, and the one sent after, waits on the spool in order.
    assert sender.pending == 4
    assert value("cadence_collector_dropped_batches_total") == 0
    assert sender.counters.rejected == 0
    # Not resent at once (the same clock would be refused again), the new one neither:
    # it must not overtake the refused ones.
    assert sender.counters.produced == produced
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].levelno == logging.ERROR
    assert "clock" in errors[0].getMessage()
    assert "LogAppendTime" in errors[0].getMessage()
    sender.close(0.1)
