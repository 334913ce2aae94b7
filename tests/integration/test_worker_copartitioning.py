"""A worker refuses to run on topics that are not co-partitioned.

The erasure of a user's profile is written to the erasure request's partition, which
is the user's profile partition only while events, control and changelog topics have
the same partition count. A review reproduced the failure after a scale-up that left
the control topic behind: `profiles forget` reported done, the profile survived in
another changelog partition and came back on the next restart.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from streams.admin import create_topics
from tests.integration.worker_support import CADENCE, REPO, Deployment
from tests.kafka_broker import free_port


def test_worker_refuses_a_control_topic_with_other_partitions(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=4)
    specs = deployment.topics.specs(4)
    # Events scaled to 4 partitions, the control topic left at 2.
    specs = [dataclasses.replace(s, partitions=2) if s.name == deployment.topics.control else s
             for s in specs]  # fmt: skip
    create_topics({"bootstrap.servers": kafka_bootstrap}, specs, timeout=30)
    result = subprocess.run(
        [*CADENCE, "worker", "--web-port", str(free_port()), "--data-dir", str(tmp_path / "w")],
        cwd=REPO,
        env=deployment.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "not co-partitioned" in result.stderr
    assert f"{deployment.topics.control} has 2" in result.stderr
