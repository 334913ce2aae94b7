"""A takeover replayed through the collector path and a real worker turns the account `impostor`,
while the other accounts stay trusted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collectors.simulate import Takeover, Workload
from streams.verdict import LEVELS
from tests.integration.worker_support import (
    Deployment,
    TopicReader,
    read_verdicts,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.slow

# The demo's scenario (make demo), shortened: enrollment completes in the first minutes.
USERS = 8
SECONDS = 420.0
TAKEOVER = Takeover(user_index=4, at_s=180.0)


def test_replayed_takeover_turns_impostor(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    deployment.create_topics()
    start = time.time() * 1000.0 - (SECONDS + 30) * 1000.0
    workload = Workload(
        users=USERS, seed=7, takeovers=[TAKEOVER], run="takeover", start_wall_ms=start
    )
    batches = [b for _, b in workload.batches(until_s=SECONDS)]
    total_events = sum(len(b.events) for b in batches)
    victim = workload.users[TAKEOVER.user_index].user
    reader = TopicReader(deployment.bootstrap, deployment.verdicts)
    deployment.send(batches)
    with running_worker(deployment):

        def judged() -> int:
            reader.poll(1.0)
            return sum(v.events for v in {v.verdict_id: v for v in read_verdicts(reader)}.values())

        wait_until(lambda: judged() >= total_events, timeout=300, what="every event judged")
    verdicts = sorted(read_verdicts(reader), key=lambda v: v.window_end_ms)
    reader.close()

    takeover_ms = start + TAKEOVER.at_s * 1000.0
    after = [v for v in verdicts if v.user == victim and v.window_start_ms >= takeover_ms]
    first_impostor = next((v for v in after if v.level == "impostor"), None)
    assert first_impostor is not None, "the taken-over account never turned impostor"
    assert first_impostor.reasons, "an impostor verdict says why"
    detected_after_s = (first_impostor.window_end_ms - takeover_ms) / 1000.0
    assert detected_after_s < 180.0
    # The owners of the other accounts are not accused.
    worst = {
        v.user: max(LEVELS.index(x.level) for x in verdicts if x.user == v.user)
        for v in verdicts
        if v.user != victim
    }
    assert max(worst.values()) <= LEVELS.index("uncertain")
