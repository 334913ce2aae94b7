"""The worker's consumer gauges across a rebalance and during recovery."""

from __future__ import annotations

from typing import Any

from faust.types import TP
from prometheus_client import generate_latest

from streams.app import create_app
from streams.revocations import RevokedKeys
from streams.settings import WorkerSettings
from streams.topics import EVENTS


class Consumer:
    """What `update_consumer_gauges` reads of Faust's consumer."""

    def __init__(self, partitions: range) -> None:
        self.tps = {TP(EVENTS.name, p) for p in partitions}
        self._committed_offset = {tp: 99 for tp in self.tps}

    def assignment(self) -> set[TP]:
        return self.tps

    def highwater(self, tp: TP) -> int:
        return 5100


def lag_series(worker: Any) -> dict[str, float]:
    text = generate_latest(worker.metrics.registry).decode()
    prefix = "cadence_consumer_lag_messages{"
    return {
        line.split('partition="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def test_lag_of_a_partition_moved_to_another_worker_is_no_longer_exported() -> None:
    worker = create_app(WorkerSettings(app_id="cadence-test-gauges", store="memory://"))
    consumer = Consumer(range(12))
    worker.app._consumer = consumer
    worker.update_gauges()
    assert lag_series(worker) == {str(p): 5000.0 for p in range(12)}
    consumer.tps = {tp for tp in consumer.tps if tp.partition < 6}
    worker.update_gauges()
    assert lag_series(worker) == {str(p): 5000.0 for p in range(6)}
    consumer.tps = {TP(EVENTS.name, 9)}
    consumer._committed_offset[TP(EVENTS.name, 9)] = 5000
    worker.update_consumer_gauges()
    assert lag_series(worker) == {"9": 99.0}


def test_recovery_gauge_follows_the_app() -> None:
    worker = create_app(WorkerSettings(app_id="cadence-test-gauges", store="memory://"))
    worker.app._consumer = Consumer(range(0))
    worker.app.in_recovery = True
    worker.update_consumer_gauges()
    assert worker.metrics.recovery_in_progress._value.get() == 1
    worker.app.in_recovery = False
    worker.update_consumer_gauges()
    assert worker.metrics.recovery_in_progress._value.get() == 0


def test_retiring_signing_secrets_are_counted_at_start() -> None:
    secrets = (bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34)))
    worker = create_app(
        WorkerSettings(
            app_id="cadence-test-gauges",
            store="memory://",
            batch_auth="require",
            batch_auth_secrets=secrets,
        )
    )
    assert worker.metrics.retiring_secrets._value.get() == 2
    plain = create_app(WorkerSettings(app_id="cadence-test-gauges", store="memory://"))
    assert plain.metrics.retiring_secrets._value.get() == 0


def test_users_with_revoked_keys_are_counted_at_start() -> None:
    revoked = RevokedKeys("revoked", {"a" * 64: 1, "b" * 64: 3}, (0, 0, 0))
    worker = create_app(
        WorkerSettings(
            app_id="cadence-test-gauges",
            store="memory://",
            batch_auth="require",
            batch_auth_secrets=(bytes(range(32)),),
            batch_auth_revoked=revoked,
        )
    )
    assert worker.tags.revoked is revoked
    assert worker.metrics.revoked_users._value.get() == 2
    plain = create_app(WorkerSettings(app_id="cadence-test-gauges", store="memory://"))
    assert plain.tags.revoked is None and plain.metrics.revoked_users._value.get() == 0
