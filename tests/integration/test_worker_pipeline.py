"""A real worker on a real broker: verdicts, dead letters, and the same numbers as offline."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from pathlib import Path

import orjson
import pytest

from collectors.simulate import Workload
from collectors.wire import EventBatch
from streams import deadletter
from streams.verdict import LEVELS
from tests.integration.worker_support import (
    Deployment,
    TopicReader,
    comparable,
    offline_verdicts,
    read_verdicts,
    running_worker,
    wait_until,
)

USERS = 4
SECONDS = 150.0


def workload_batches(seed: int) -> list:
    # Event time ends a little before now, so batches look like a live agent's.
    start = time.time() * 1000.0 - (SECONDS + 30) * 1000.0
    wl = Workload(users=USERS, seed=seed, run=f"r{seed}", start_wall_ms=start)
    return [b for _, b in wl.batches(until_s=SECONDS)]


def poison(rng: random.Random, n: int) -> list[tuple[bytes | None, bytes]]:
    """Undecodable bytes, wrong schema versions, wrong types, absurd times."""
    good = orjson.loads(
        b'{"v":1,"device":"d","user":"u","session":"s","seq":0,"sent_at_ms":1.7e12,'
        b'"clock_offset_ms":1.7e12,"key_identity":false,"events":[]}'
    )
    records: list[tuple[bytes | None, bytes]] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            records.append((b"u", rng.randbytes(rng.randint(0, 300))))
        elif kind == 1:
            records.append((b"u", orjson.dumps({**good, "v": 2})))
        elif kind == 2:
            records.append((b"u", orjson.dumps({**good, "seq": "seven"})))
        elif kind == 3:
            records.append((b"u", orjson.dumps({**good, "sent_at_ms": 9e18})))
        else:
            records.append((None, b"\xff\xfe" + rng.randbytes(20)))
    return records


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Deployment:
    d = Deployment(kafka_bootstrap, tmp_path)
    d.create_topics()
    return d


def test_events_become_verdicts_bad_records_become_dead_letters_and_numbers_match_offline(
    deployment: Deployment,
) -> None:
    batches = workload_batches(seed=11)
    # Malformed and larger than the worker may produce: its dead letter keeps a digest.
    huge = b'{"v":1,' + b" " * 1_200_000
    bad = [*poison(random.Random(5), 25), (b"u", huge)]
    # Desk clocks 30 min and 2 h ahead, the record's CreateTime stamped by them too. The
    # events topic restamps on arrival (a CreateTime topic on Kafka 4 would refuse the
    # second outright, stranding it on the desk's spool); the worker must dead-letter both.
    now_ms = int(time.time() * 1000.0)
    skewed_records = [
        (
            now_ms + ahead_s * 1000,
            orjson.dumps(
                {
                    "v": 1,
                    "device": "d",
                    "user": "u",
                    "session": "s",
                    "seq": 0,
                    "sent_at_ms": now_ms + ahead_s * 1000,
                    "clock_offset_ms": now_ms - 1e7,
                    "key_identity": False,
                    "events": [],
                }
            ),
        )
        for ahead_s in (30 * 60, 2 * 3600)
    ]
    # Each device's last batch again, under its own number, with its events 1 ms later:
    # not a redelivery (a cloned agent, a restored snapshot), so a dead letter each.
    last: dict[str, EventBatch] = {}
    for b in batches:
        last[b.device] = b
    conflicting = [
        dataclasses.replace(b, events=tuple(e._replace(t_ms=e.t_ms + 1.0) for e in b.events))
        for b in last.values()
        if b.events
    ]
    # Each device's first data batch again, closed two minutes after its last one: a desk
    # restored from a memory snapshot, numbering from where it was. Its number is long
    # judged (150 s of activity), known only by when its batch was closed.
    first: dict[str, EventBatch] = {}
    for b in batches:
        if b.events:
            first.setdefault(b.device, b)
    conflicting += [
        dataclasses.replace(b, sent_at_ms=last[b.device].sent_at_ms + 120_000.0)
        for b in first.values()
    ]
    assert conflicting
    verdict_reader = TopicReader(deployment.bootstrap, deployment.verdicts)
    dead_reader = TopicReader(deployment.bootstrap, deployment.topics.deadletter)
    offline = offline_verdicts(batches)
    total_events = sum(len(b.events) for b in batches)
    with running_worker(deployment) as worker:
        # Good and bad interleaved: the worker must keep going through all of it.
        half = len(batches) // 2
        deployment.send(batches[:half])
        deployment.produce_raw(bad)
        for ahead_ms, ahead in skewed_records:
            deployment.produce_raw([(b"u", ahead)], timestamp_ms=ahead_ms)
            bad.append((b"u", ahead))
        deployment.send(batches[half:])
        # And a plain redelivery of the same last batches: dropped, not dead-lettered.
        deployment.send([*conflicting, *last.values()])

        def judged_events() -> int:
            verdict_reader.poll(1.0)
            return sum(v.events for v in read_verdicts(verdict_reader))

        wait_until(lambda: judged_events() >= total_events, timeout=120, what="every event judged")
        wait_until(
            lambda: (
                dead_reader.poll(1.0) >= 0
                and len(dead_reader.records) >= len(bad) + len(conflicting)
            ),
            timeout=30,
            what="dead letters on the topic",
        )
        metrics = worker.metrics()
    verdicts = read_verdicts(verdict_reader)
    verdict_reader.close()
    dead_reader.close()

    # Every good event is in exactly one judged window; every bad record is a dead letter.
    assert sum(v.events for v in verdicts) == total_events
    assert len(dead_reader.records) == len(bad) + len(conflicting)
    reasons = {deadletter.reason_of(h) for _, _, h in dead_reader.records}
    assert reasons <= {
        "malformed", "schema_version", "key_mismatch", "absurd_timestamp", "sequence_conflict",
    }  # fmt: skip
    assert metrics['cadence_dead_letters_total{reason="sequence_conflict"}'] == len(conflicting)
    assert metrics["cadence_duplicate_batches_total"] >= len(last)
    assert metrics['cadence_dead_letters_total{reason="schema_version"}'] == 5
    skewed = [dict(h) for _, v, h in dead_reader.records if v in {r for _, r in skewed_records}]
    assert [h[deadletter.REASON] for h in skewed] == [b"absurd_timestamp"] * 2
    assert sum(v for k, v in metrics.items() if k.startswith("cadence_dead_letters_total{")) == len(
        bad
    ) + len(conflicting)
    (digest,) = [
        (v, dict(h)) for _, v, h in dead_reader.records if deadletter.VALUE_BYTES in dict(h)
    ]
    assert digest[0] in (b"", None)
    assert digest[1][deadletter.VALUE_BYTES] == str(len(huge)).encode()
    assert digest[1][deadletter.VALUE_SHA256] == hashlib.sha256(huge).hexdigest().encode()

    # Verdicts carry what the SOC needs.
    for v in verdicts:
        assert v.level in LEVELS and v.enrollment in ("enrolling", "active")
        assert len(v.verdict_id) == 32 and v.window_end_ms >= v.window_start_ms
    assert {v.user for v in verdicts} == {b.user for b in batches}

    # Consistency: the pipeline's numbers are the offline code's numbers, exactly
    # (same windows, same profile arithmetic); only the emission time differs.
    assert sorted(map(comparable, verdicts)) == sorted(map(comparable, offline))
