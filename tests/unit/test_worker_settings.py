"""Worker settings from the environment reach the Faust app."""

from __future__ import annotations

import pytest

from streams.app import create_app
from streams.settings import WorkerSettings


def test_replication_factor_of_faust_created_topics_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust creates its leader topic itself; at its default factor of 1 one broker's
    # outage takes that topic offline.
    monkeypatch.setenv("CADENCE_TOPIC_REPLICATION_FACTOR", "3")
    worker = create_app(WorkerSettings.from_env())
    assert worker.app.conf.topic_replication_factor == 3
    monkeypatch.delenv("CADENCE_TOPIC_REPLICATION_FACTOR")
    assert create_app(WorkerSettings.from_env()).app.conf.topic_replication_factor == 1
