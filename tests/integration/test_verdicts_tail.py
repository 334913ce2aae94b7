"""`cadence verdicts tail` against a real broker: --level, --user, --json and --follow."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer

from streams.verdict import LEVELS, Verdict, decode_verdict, encode_verdict, verdict_id
from tests.integration.worker_support import wait_until
from tests.kafka_broker import create_topic, unique_name

REPO = Path(__file__).resolve().parents[2]
ALICE, BOB = "a" * 64, "b" * 64


def make_verdict(user: str, level: str, seq: int) -> Verdict:
    now = time.time() * 1000.0
    return Verdict(
        verdict_id=verdict_id(user, "dev", "s", seq, seq),
        user=user,
        device="dev",
        session="s",
        window_start_ms=now - 5000,
        window_end_ms=now,
        keyboard_score=0.5,
        mouse_score=None,
        trust=50.0,
        level=level,
        reasons=("keyboard: hold time z=+3.0",) if level in ("suspicious", "impostor") else (),
        enrollment="active",
        model_version="m",
        emitted_at_ms=now,
        events=10,
    )


def produce(bootstrap: str, topic: str, verdicts: list[Verdict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for v in verdicts:
        producer.produce(topic, key=v.user.encode(), value=encode_verdict(v))
    assert producer.flush(30) == 0


def tail(bootstrap: str, topic: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CADENCE_VERDICTS_TOPIC": topic, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "verdicts", "tail", "--bootstrap", bootstrap, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_filters_select_level_and_worse_and_one_user(kafka_bootstrap: str) -> None:
    topic = create_topic(kafka_bootstrap, unique_name("tail"), partitions=2)
    verdicts = [
        make_verdict(user, level, i * 10 + j)
        for i, user in enumerate((ALICE, BOB))
        for j, level in enumerate(LEVELS)
    ]
    produce(kafka_bootstrap, topic, verdicts)

    # Without --follow the tail reads what is there and exits once the topic is quiet.
    proc = tail(kafka_bootstrap, topic, "--level", "suspicious", "--json")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    shown = [decode_verdict(line) for line in out.splitlines()]
    assert sorted((v.user, v.level) for v in shown) == sorted(
        (u, lvl) for u in (ALICE, BOB) for lvl in ("suspicious", "impostor")
    )

    proc = tail(kafka_bootstrap, topic, "--user", BOB, "--json")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert sorted(orjson.loads(line)["level"] for line in out.splitlines()) == sorted(LEVELS)
    assert {orjson.loads(line)["user"] for line in out.splitlines()} == {BOB}

    # The human format: one line per verdict with level, trust and reasons.
    proc = tail(kafka_bootstrap, topic, "--level", "impostor", "--user", ALICE)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    (line,) = out.splitlines()
    assert ALICE[:12] in line and "impostor" in line and "hold time" in line


def test_follow_keeps_waiting_and_shows_new_verdicts(kafka_bootstrap: str) -> None:
    topic = create_topic(kafka_bootstrap, unique_name("tail"), partitions=2)
    produce(kafka_bootstrap, topic, [make_verdict(ALICE, "impostor", 1)])  # old: not shown
    proc = tail(kafka_bootstrap, topic, "--follow", "--json", "--level", "suspicious")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        # --follow starts at the end: keep sending a marker until the tail shows one.
        marker = uuid.uuid4().hex

        def marker_seen() -> bool:
            v = make_verdict(BOB, "suspicious", 1000 + len(lines))
            produce(kafka_bootstrap, topic, [dataclasses.replace(v, session=marker)])
            time.sleep(1.0)
            return any(marker in line for line in lines)

        wait_until(marker_seen, timeout=60, what="the tail to be assigned its partitions")
        time.sleep(7.0)  # longer than the 5 quiet seconds after which a plain tail exits
        assert proc.poll() is None, "--follow exited on a quiet topic"
        before = len(lines)
        produce(
            kafka_bootstrap,
            topic,
            [make_verdict(ALICE, "trusted", 2000), make_verdict(ALICE, "impostor", 2001)],
        )
        wait_until(lambda: len(lines) > before, timeout=30, what="the new verdict")
        time.sleep(2.0)
        new = [decode_verdict(line) for line in lines[before:]]
        assert [(v.user, v.level) for v in new] == [(ALICE, "impostor")]
        old = make_verdict(ALICE, "impostor", 1).verdict_id
        assert old not in {decode_verdict(line).verdict_id for line in lines}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)


def test_tail_says_when_it_cannot_read_rather_than_showing_no_verdicts(
    kafka_bootstrap: str,
) -> None:
    # An empty screen must mean "no verdicts", never "no broker" or "no topic".
    missing = unique_name("no-such-verdicts")
    for bootstrap, env in (
        (kafka_bootstrap, {"CADENCE_VERDICTS_TOPIC": missing}),
        ("127.0.0.1:1", {}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "verdicts", "tail", "--bootstrap", bootstrap],
            cwd=REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, (bootstrap, result.stderr[-500:])
        assert "cannot" in result.stderr
