"""A running worker survives a broker outage: no restart, every event judged once.

The collectors' side of an outage is in ``test_delivery_outage.py``; this is the
worker's: its consumer, producer and table while the only broker is down for a while,
then back on the same port with the same data. Uses a broker of its own for that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.simulate import Workload
from tests.integration.collector_support import StoppableBroker, stoppable_broker
from tests.integration.test_worker_recovery import check_each_event_judged_once
from tests.integration.worker_support import (
    Deployment,
    TopicReader,
    read_verdicts,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.slow

OUTAGE_S = 20.0


@pytest.fixture(scope="module")
def broker() -> Iterator[StoppableBroker]:
    with stoppable_broker() as b:
        yield b


def test_a_worker_carries_on_after_a_broker_outage(broker: StoppableBroker, tmp_path: Path) -> None:
    deployment = Deployment(broker.bootstrap, tmp_path)
    deployment.create_topics()
    seconds = 120.0
    start = time.time() * 1000.0 - (seconds + 30) * 1000.0
    workload = Workload(users=6, seed=23, run="outage", start_wall_ms=start)
    batches = [b for _, b in workload.batches(until_s=seconds)]
    total_events = sum(len(b.events) for b in batches)
    half = len(batches) // 2
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)

    def judged_events() -> int:
        reader.poll(1.0)
        return sum(v.events for v in {v.verdict_id: v for v in read_verdicts(reader)}.values())

    deployment.send(batches[:half])
    with running_worker(deployment, "w") as worker:
        wait_until(lambda: judged_events() > 0, timeout=120, what="first verdicts")
        broker.stop()
        time.sleep(OUTAGE_S)
        broker.start()
        deployment.send(batches[half:])
        wait_until(lambda: judged_events() >= total_events, timeout=240, what="every event")
        # The same process all along: an outage is not a reason to exit (status 3 is
        # for a producer that failed for good).
        assert worker.process.poll() is None, f"the worker exited ({worker.log})"
    reader.poll(2.0)
    check_each_event_judged_once(read_verdicts(reader), total_events)
    reader.close()
