"""Session-wide pytest wiring: the `integration` marker and the lazily started Kafka broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_broker import (
    BOOTSTRAP_ENV,
    Broker,
    BrokerUnavailable,
    external_broker,
    private_broker,
)

_INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Marking by location means `-m "not integration"` skips every broker test without each
    # file having to remember a pytestmark line.
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """A Kafka broker for the whole session, started on first use only.

    CADENCE_KAFKA_BOOTSTRAP=host:port uses an existing broker (never stopped here); otherwise a
    private broker is started on free ports in a temp dir and removed at session end.
    """
    bootstrap = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if bootstrap:
        yield external_broker(bootstrap)
        return
    try:
        with private_broker() as broker:
            yield broker
    except BrokerUnavailable as exc:
        # `make test` (so CI) sets CADENCE_REQUIRE_KAFKA=1: a machine without java fails loudly, not
        # passing with every integration test skipped.
        if os.environ.get("CADENCE_REQUIRE_KAFKA") == "1":
            pytest.fail(f"CADENCE_REQUIRE_KAFKA=1 but no broker can be started: {exc}")
        pytest.skip(f"no Kafka broker for integration tests: {exc}")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """`host:port` of the session's Kafka broker (see `kafka_broker`)."""
    return kafka_broker.bootstrap
