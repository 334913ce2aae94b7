"""A worker asked to stop (SIGTERM: Kubernetes, Ctrl-C in the demo) stops, also with the broker
gone, and loses nothing: it judges its open windows as on a rebalance, and what it could not
finish goes to the next worker.

Faust's own stop waits until every consumed message is acked; a cadence worker acks a batch
only when its window is judged, so before this was handled a stopping worker waited forever.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.collector_support import stoppable_broker
from tests.integration.test_worker_recovery import check_each_event_judged_once, workload
from tests.integration.worker_support import (
    Deployment,
    TopicReader,
    WorkerProcess,
    read_verdicts,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.slow

# Generous: the worker gives its last verdicts 10 s and the producer 10 s; a worker that
# waits for windows nobody will close never exits at all.
STOP_BOUND_S = 90


def stop(worker: WorkerProcess) -> int:
    worker.process.send_signal(signal.SIGTERM)
    try:
        return worker.process.wait(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker still running {STOP_BOUND_S} s after SIGTERM ({worker.log})")


def test_sigterm_mid_stream_stops_promptly_and_every_event_is_judged_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    deployment.create_topics()
    batches = workload(seed=31, users=6, seconds=120.0)
    total_events = sum(len(b.events) for b in batches)
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)

    def judged_events() -> int:
        reader.poll(0.5)
        return sum(v.events for v in {v.verdict_id: v for v in read_verdicts(reader)}.values())

    half = len(batches) // 2
    deployment.send(batches[:half])
    with running_worker(deployment, "first") as first:
        wait_until(lambda: judged_events() > 0, timeout=120, what="first verdicts")
        assert stop(first) == 0, f"worker exited with an error ({first.log})"
    deployment.send(batches[half:])
    with running_worker(deployment, "second"):
        wait_until(lambda: judged_events() >= total_events, timeout=180, what="every event")
    reader.poll(2.0)
    check_each_event_judged_once(read_verdicts(reader), total_events)
    reader.close()


def test_sigterm_with_the_broker_gone_still_stops(tmp_path: Path) -> None:
    with stoppable_broker() as broker:
        deployment = Deployment(broker.bootstrap, tmp_path)
        deployment.create_topics()
        batches = workload(seed=32, users=3, seconds=60.0)
        reader = TopicReader(deployment.bootstrap, deployment.verdicts)
        deployment.send(batches)
        with running_worker(deployment, "w") as worker:
            wait_until(
                lambda: reader.poll(0.5) >= 0 and len(reader.records) > 0,
                timeout=120,
                what="a first verdict",
            )
            reader.close()
            broker.stop()
            stop(worker)
