"""Data-protection duties with a real worker: export, forget, and forget surviving a restart."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from collectors.simulate import Workload
from streams import deadletter
from streams.privacy import ForgetRequest, encode_request, user_partition
from streams.topics import CHANGELOG_CONFIG
from tests.integration.worker_support import (
    CADENCE,
    REPO,
    Deployment,
    TopicReader,
    read_verdicts,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.slow

# Seed 4: user 1's profile is active from ~140 s of activity on.
FORGET_AT_S, RESUME_UNTIL_S, AFTER_RESTART_UNTIL_S = 180.0, 195.0, 210.0


def cadence(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CADENCE, *args], cwd=REPO, env=d.env(), capture_output=True, text=True, timeout=180
    )


def export(d: Deployment, user: str) -> dict:
    proc = cadence(d, "profiles", "export", user, "--json")
    assert proc.returncode == 0, proc.stderr
    report = orjson.loads(proc.stdout)
    assert report["user"] == user
    return dict(report)


def control_letters(reader: TopicReader, control_topic: str) -> list[bytes]:
    """Reasons of the dead letters whose source is the control topic."""
    return [
        dict(headers)[deadletter.REASON]
        for _, _, headers in reader.records
        if dict(headers)[deadletter.SOURCE].decode().startswith(control_topic + ":")
    ]


def test_forget_erases_the_profile_for_good_and_export_tells_what_is_held(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    d = Deployment(kafka_bootstrap, tmp_path)
    d.create_topics()
    start = time.time() * 1000.0 - (AFTER_RESTART_UNTIL_S + 30) * 1000.0
    workload = Workload(users=2, seed=4, run="privacy", start_wall_ms=start)
    timed = list(workload.batches(until_s=AFTER_RESTART_UNTIL_S))
    victim = workload.users[1].user
    before = [b for t, b in timed if t < FORGET_AT_S]
    resumed = [b for t, b in timed if FORGET_AT_S <= t < RESUME_UNTIL_S and b.user == victim]
    after_restart = [b for t, b in timed if t >= RESUME_UNTIL_S and b.user == victim]
    assert resumed and after_restart
    reader = TopicReader(d.bootstrap, d.verdicts)

    def judged(batches: list) -> None:
        total = sum(len(b.events) for b in batches)
        ids = {(b.device, b.session) for b in batches}
        # Only verdicts that arrive from now on: the session's earlier verdicts already
        # count more events than these batches hold, and would end the wait at once.
        start = len(reader.records)

        def done() -> bool:
            reader.poll(1.0)
            return total <= sum(
                v.events for v in read_verdicts(reader)[start:] if (v.device, v.session) in ids
            )

        wait_until(done, timeout=120, what="verdicts")

    with running_worker(d, "w1") as worker:
        d.send(before)
        judged(before)
        seen = len(reader.records)
        mine = [v for v in read_verdicts(reader) if v.user == victim]
        assert mine[-1].enrollment == "active"

        held = export(d, victim)
        profile = held["profile"]
        assert profile["enrollment"] == "active"
        assert profile["keyboard"]["key_presses_learned"] > 0
        assert set(profile["keyboard"]["summary"]) >= {"dwell_ms", "flight_ms"}
        windows_before = profile["windows_judged"]
        assert windows_before > 10
        assert {v["verdict_id"] for v in held["recent_verdicts"]} == {v.verdict_id for v in mine}
        text = cadence(d, "profiles", "export", victim)
        assert "profile: active" in text.stdout and "not exported" in text.stdout

        # Requests the worker must not carry out: keyed by someone else, or on another
        # partition than the victim's (another client's partitioner). Carried out, the
        # tombstone would land beside the profile, which would survive the audit.
        home = user_partition(victim, d.partitions)
        request = encode_request(ForgetRequest(victim, "misdirected", "dpo-test", 1.0))
        producer = Producer({"bootstrap.servers": d.bootstrap})
        producer.produce(d.topics.control, request, key=b"f" * 64, partition=home)
        other = (home + 1) % d.partitions
        producer.produce(d.topics.control, request, key=victim.encode(), partition=other)
        assert producer.flush(30) == 0
        dead = TopicReader(d.bootstrap, d.topics.deadletter)

        def refused() -> bool:
            dead.poll(1.0)
            return len(control_letters(dead, d.topics.control)) >= 2

        wait_until(refused, timeout=60, what="dead letters of the misdirected requests")
        dead.close()
        assert sorted(control_letters(dead, d.topics.control)) == [
            b"key_mismatch",
            b"wrong_partition",
        ]
        assert export(d, victim)["profile"]["enrollment"] == "active"

        forget = cadence(d, "profiles", "forget", victim, "--by", "dpo-test", "--wait", "60")
        assert forget.returncode == 0, forget.stdout + forget.stderr
        done = orjson.loads(forget.stdout.split("done:", 1)[1])
        assert done["user"] == victim and done["had_profile"] is True
        assert done["requested_by"] == "dpo-test"

        # The user keeps working: the worker starts a new profile from scratch.
        d.send(resumed)
        judged(resumed)
        new = [v for v in read_verdicts(reader)[seen:] if v.user == victim]
        assert new and all(v.enrollment == "enrolling" for v in new)
        assert export(d, victim)["profile"]["windows_judged"] < windows_before
        worker.kill(signal.SIGKILL)
        log = worker.log.read_text()
    assert "forgot the profile of " + victim[:12] in log

    # A restarted worker recovers its table from the changelog: the old profile stays gone.
    seen = len(reader.records)
    with running_worker(d, "w2"):
        d.send(after_restart)
        judged(after_restart)
    reader.close()
    new = [v for v in read_verdicts(reader)[seen:] if v.user == victim]
    assert new and all(v.enrollment == "enrolling" for v in new)
    final = export(d, victim)["profile"]
    assert final is not None and final["enrollment"] == "enrolling"
    assert final["windows_judged"] < windows_before

    # The changelog the worker created holds a forgotten profile's records no longer
    # than privacy.md says: compacted within a day.
    changelog = f"{d.topics.app_id}-user-profiles-changelog"
    resource = ConfigResource(ConfigResource.Type.TOPIC, changelog)
    admin = AdminClient({"bootstrap.servers": d.bootstrap})
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    for setting, value in CHANGELOG_CONFIG.items():
        assert configs[setting].value == value, setting

    audit = TopicReader(d.bootstrap, d.topics.audit)
    audit.poll(3.0)
    audit.close()
    records = [orjson.loads(value) for _, value, _ in audit.records]
    assert [(r["event"], r["user"], r["had_profile"]) for r in records] == [
        ("profile_forgotten", victim, True)
    ]
