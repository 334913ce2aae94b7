"""Operator commands end with one line, never a traceback: a reader that goes away
(`| head`), an unreachable broker under `profiles forget`, a login given to
`verdicts tail --user`, a --work-dir or broker `bench pipeline` cannot use. Against a
broker that cannot be reached, librdkafka's own log stays off the terminal (unless -v)
and Ctrl-C stops a command at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from streams.cli import main

REPO = Path(__file__).resolve().parents[2]
USER = "a" * 64


# -- a reader that goes away ------------------------------------------------------


def test_output_piped_to_head_is_not_a_traceback(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 32)
    env = {**os.environ, "CADENCE_PSEUDONYM_KEY_FILE": str(key)}
    env.pop("CADENCE_PSEUDONYM_KEY", None)
    logins = [f"user{i}" for i in range(5000)]  # ~350 KB: more than a pipe holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "pseudonym", *logins],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # what `head -1` reads, then it exits
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


class _ClosedPipe:
    """sys.stdout once `head` has exited."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise OSError("no file descriptor")


def test_a_broken_pipe_in_a_command_is_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.delenv("CADENCE_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["pseudonym", "alice", "bob"]) != 0  # no BrokenPipeError raised


# -- profiles forget and an unreachable broker ------------------------------------


class _UnreachableConsumer:
    def __init__(self, config: dict[str, Any]) -> None:
        pass

    def list_topics(self, topic: str | None = None, timeout: float | None = None) -> Any:
        raise confluent_kafka.KafkaException(
            confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT)
        )

    def poll(self, timeout: float | None = None) -> None:
        return None

    def close(self) -> None:
        pass


class _NoProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        raise AssertionError("a request was sent although the audit topic was not read")


def test_forget_with_an_unreachable_broker_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(confluent_kafka, "Consumer", _UnreachableConsumer)
    monkeypatch.setattr(confluent_kafka, "Producer", _NoProducer)
    # The metadata request is retried for this long before the broker is called unreachable.
    monkeypatch.setattr("streams.commands.profiles_forget.METADATA_TIMEOUT_S", 0.2)
    assert main(["profiles", "forget", USER, "--wait", "5"]) == 1
    assert capsys.readouterr().err.startswith("cannot reach Kafka at ")


class _NoAuditTopicConsumer(_UnreachableConsumer):
    def list_topics(self, topic: str | None = None, timeout: float | None = None) -> Any:
        error = confluent_kafka.KafkaError(confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART)
        meta = types.SimpleNamespace(error=error, partitions={})
        return types.SimpleNamespace(topics={topic: meta})


def test_forget_without_the_audit_topic_says_so_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # It used to queue the request, then wait --wait seconds for a confirmation that
    # could never be read.
    monkeypatch.setattr(confluent_kafka, "Consumer", _NoAuditTopicConsumer)
    monkeypatch.setattr(confluent_kafka, "Producer", _NoProducer)
    assert main(["profiles", "forget", USER, "--wait", "5"]) == 1
    assert "cannot read cadence.audit.v1" in capsys.readouterr().err


# -- verdicts tail --user ------------------------------------------------------------


class _NoBroker:
    def __init__(self, config: dict[str, Any]) -> None:
        raise AssertionError("reached Kafka with a --user that can match nothing")


@pytest.mark.parametrize("user", ["alice", "fae206b716a1", "A" * 64])
def test_tail_refuses_a_user_that_is_not_a_pseudonym(
    user: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A login, or the 12 digits the text output shows, matched nothing: an empty
    # output, exit 0, read as "this person has no verdicts" (docs/soc.md).
    monkeypatch.setattr(confluent_kafka, "Consumer", _NoBroker)
    assert main(["verdicts", "tail", "--user", user]) == 2
    assert "not a pseudonym" in capsys.readouterr().err


# -- bench pipeline -------------------------------------------------------------------


def test_bench_unusable_work_dir_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = ["bench", "pipeline", "--bootstrap", "127.0.0.1:1", "--users", "2", "--seconds", "1"]
    assert main([*argv, "--work-dir", str(blocker / "work")]) == 2
    assert f"--work-dir {blocker / 'work'}" in capsys.readouterr().err


def test_bench_unreachable_broker_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams import bench
    from streams.admin import TopicsNotCreated

    def unreachable(bootstrap: str, topics: Any, partitions: int, client: Any = None) -> None:
        raise TopicsNotCreated({"bench.events.v1": "failed: no answer within 30 s"})

    monkeypatch.setattr(bench, "create_run_topics", unreachable)
    monkeypatch.setattr(bench, "delete_run_topics", lambda bootstrap, topics, client=None: None)
    argv = ["bench", "pipeline", "--bootstrap", "127.0.0.1:1", "--users", "2", "--seconds", "1"]
    assert main(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot create the run's topics" in err and "no answer within 30 s" in err


# -- a broker that cannot be reached, for real: nothing listens on port 9 -------------

UNREACHABLE = "127.0.0.1:9"
# Commands that wait for the broker, and the module whose metadata timeout the in-process
# test shortens (from 15 or 30 s).
WAITING = {
    "verdicts tail": (["verdicts", "tail"], "verdicts_tail"),
    "verdicts tail --follow": (["verdicts", "tail", "--follow"], "verdicts_tail"),
    "profiles export": (["profiles", "export", USER], "profiles_export"),
    "profiles forget": (["profiles", "forget", USER, "--wait", "5"], "profiles_forget"),
    "topics create": (["topics", "create", "--timeout", "1.5"], None),
}


@pytest.mark.parametrize(
    "command", ["verdicts tail", "profiles export", "profiles forget", "topics create"]
)
def test_an_unreachable_broker_is_one_line_not_librdkafkas_log(
    command: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # librdkafka wrote a line to stderr for each connection attempt, 300 to 600 of them
    # before the command's own line (20 a second for as long as the metadata wait).
    argv, module = WAITING[command]
    for name in [n for n in os.environ if n.startswith("CADENCE_KAFKA_")]:
        monkeypatch.delenv(name)
    if module is not None:
        monkeypatch.setattr(f"streams.commands.{module}.METADATA_TIMEOUT_S", 1.5, raising=False)
    try:
        status = main([*argv, "--bootstrap", UNREACHABLE])
    except SystemExit as exc:  # how `profiles export` ends: the interpreter prints it
        print(exc.code, file=sys.stderr)
        status = 1
    assert status == 1
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1, "\n".join(lines[:5])
    # The broker named, and the cause librdkafka gave.
    assert UNREACHABLE in lines[0] and f"Connect to ipv4#{UNREACHABLE} failed" in lines[0]


def test_verbose_shows_librdkafkas_log(capfd: pytest.CaptureFixture[str]) -> None:
    argv = ["topics", "create", "--timeout", "1.5", "--bootstrap", UNREACHABLE, "-v"]
    assert main(argv) == 1
    lines = capfd.readouterr().err.splitlines()
    assert sum(f"Connect to ipv4#{UNREACHABLE} failed" in line for line in lines) >= 2
    assert f"topics not created at {UNREACHABLE}" in lines[-1]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    "command", ["verdicts tail --follow", "profiles export", "profiles forget"]
)
def test_ctrl_c_stops_a_command_waiting_for_an_unreachable_broker(command: str) -> None:
    # A metadata request of 15 s (30 s) in librdkafka held Ctrl-C until it gave up.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENCE_KAFKA_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *WAITING[command][0], "--bootstrap", UNREACHABLE],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (CI, nohup) ignores SIGINT, and a child
        # inherits that: Python then never turns Ctrl-C into KeyboardInterrupt.
        preexec_fn=_default_sigint,
    )
    try:
        time.sleep(3.0)  # well into the wait for the broker
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        # A bound against hanging, not a measure: it exits within a second.
        _, err = proc.communicate(timeout=8)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert len(err.splitlines()) <= 1, err[:2000]


class _SlowBroker:
    """Up, but each answer takes ``latency`` s: a call given less gives up (_TIMED_OUT)."""

    def __init__(self, latency: float, code: int = confluent_kafka.KafkaError._TIMED_OUT) -> None:
        self.latency, self.code = latency, code
        self.timeouts: list[float] = []

    def poll(self, timeout: float) -> None:
        return None

    def call(self, timeout: float) -> str:
        self.timeouts.append(timeout)
        if timeout < self.latency:
            raise confluent_kafka.KafkaException(confluent_kafka.KafkaError(self.code))
        return "metadata"


def test_a_broker_slower_than_a_step_is_still_heard() -> None:
    # Each step abandoned its request and asked again for 0.5 s: a broker answering in
    # 0.7 s (a far or loaded cluster), which the one call of 15 s heard, never was.
    from streams.commands._kafka import STEP_S, patiently

    broker = _SlowBroker(latency=3 * STEP_S)
    assert patiently(broker, broker.call, timeout=8 * STEP_S) == "metadata"
    assert broker.timeouts[0] == STEP_S


def test_steps_stay_short_while_no_broker_is_up() -> None:
    # Ctrl-C is served between steps: a broker that cannot be reached keeps them short.
    from streams.commands._kafka import STEP_S, patiently

    broker = _SlowBroker(latency=60.0, code=confluent_kafka.KafkaError._TRANSPORT)
    with pytest.raises(confluent_kafka.KafkaException):
        patiently(broker, broker.call, timeout=3 * STEP_S)
    assert len(broker.timeouts) >= 2 and max(broker.timeouts) <= STEP_S
