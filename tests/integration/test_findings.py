"""A real worker publishes one OCSF Detection Finding per suspicious/impostor verdict."""

from __future__ import annotations

import json
import time
from pathlib import Path

from jsonschema import Draft202012Validator

from collectors.simulate import Takeover, Workload
from streams.ocsf import OCSF_VERSION, is_finding
from tests.integration.worker_support import (
    Deployment,
    TopicReader,
    offline_verdicts,
    read_verdicts,
    running_worker,
    wait_until,
)

SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "docs"
    / "schemas"
    / "ocsf"
    / f"detection_finding-{OCSF_VERSION}.schema.json"
)
SECONDS = 420.0


def test_every_flagged_verdict_becomes_exactly_one_valid_finding(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    deployment.create_topics()
    start = time.time() * 1000.0 - (SECONDS + 30) * 1000.0
    # The demo's takeover (test_worker_takeover.py), owner 0 and victim 4 only: profiles
    # are per user, so the other six would only make the test slower.
    workload = Workload(
        users=8, seed=7, takeovers=[Takeover(user_index=4, at_s=180.0)], start_wall_ms=start
    )
    keep = {workload.users[0].user, workload.users[4].user}
    batches = [b for _, b in workload.batches(until_s=SECONDS) if b.user in keep]
    expected = {v.verdict_id for v in offline_verdicts(batches) if is_finding(v)}
    assert len(expected) >= 5
    total_events = sum(len(b.events) for b in batches)
    verdict_reader = TopicReader(deployment.bootstrap, deployment.verdicts)
    finding_reader = TopicReader(deployment.bootstrap, deployment.topics.findings)
    with running_worker(deployment):
        deployment.send(batches)

        def judged_events() -> int:
            verdict_reader.poll(1.0)
            return sum(v.events for v in read_verdicts(verdict_reader))

        wait_until(lambda: judged_events() >= total_events, timeout=120, what="all judged")
        wait_until(
            lambda: finding_reader.poll(1.0) >= 0 and len(finding_reader.records) >= len(expected),
            timeout=30,
            what="findings",
        )
        finding_reader.poll(2.0)  # anything extra would show up now
    verdicts = read_verdicts(verdict_reader)
    verdict_reader.close()
    finding_reader.close()

    flagged = {v.verdict_id: v for v in verdicts if is_finding(v)}
    assert set(flagged) == expected
    validator = Draft202012Validator(json.loads(SCHEMA.read_text()))
    uids = []
    for key, value, _ in finding_reader.records:
        finding = json.loads(value)
        assert list(validator.iter_errors(finding)) == []
        uid = finding["finding_info"]["uid"]
        uids.append(uid)
        # Keyed like the verdict, so a SIEM can join them and Kafka keeps a user's order.
        assert key == flagged[uid].user.encode()
        assert finding["severity_id"] == {"suspicious": 3, "impostor": 4}[flagged[uid].level]
    assert sorted(uids) == sorted(expected)
