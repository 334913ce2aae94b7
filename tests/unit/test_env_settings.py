"""A bad numeric setting in the environment is one line naming it and exit 2, not a
traceback, wherever it is read: at import (topic partitions and retention), in the
worker's settings, its enrollment thresholds, its garbage-collector threshold."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli import main
from streams.env import SettingError, env_number
from streams.judge import background, enrollment_policy
from streams.settings import WorkerSettings


@pytest.fixture
def fresh_judge_caches() -> Iterator[None]:
    # background() and enrollment_policy() are read once per process.
    background.cache_clear()
    enrollment_policy.cache_clear()
    yield
    background.cache_clear()
    enrollment_policy.cache_clear()


@pytest.mark.parametrize(
    ("value", "minimum", "exclusive", "maximum"),
    [("x", 1, False, None), ("", 1, False, None), ("0", 1, False, None), ("-3", 0, False, None),
     ("70000", 1, False, 65535), ("1.5", 1, False, None)],
)  # fmt: skip
def test_bad_integers_name_the_variable(
    value: str, minimum: int, exclusive: bool, maximum: int | None
) -> None:
    with pytest.raises(SettingError, match=r"^CADENCE_X=.*: must be an? "):
        env_number("CADENCE_X", 5, minimum=minimum, maximum=maximum, env={"CADENCE_X": value})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "soon"])
def test_bad_durations_name_the_variable(value: str) -> None:
    env = {"CADENCE_Y": value}
    with pytest.raises(SettingError, match=r"^CADENCE_Y=.*: must be a positive number$"):
        env_number("CADENCE_Y", 5.0, minimum=0.0, exclusive=True, env=env)


def test_good_values_read_as_before() -> None:
    assert env_number("CADENCE_X", 6, minimum=1, env={"CADENCE_X": " 12 "}) == 12
    assert env_number("CADENCE_X", 6, minimum=0, env={"CADENCE_X": "0"}) == 0
    assert (
        env_number("CADENCE_Y", 5.0, minimum=0.0, exclusive=True, env={"CADENCE_Y": "2.5"}) == 2.5
    )
    assert env_number("CADENCE_Y", 5.0, minimum=0.0, exclusive=True, env={}) == 5.0


@pytest.mark.parametrize(
    ("name", "value"),
    [("CADENCE_WEB_PORT", "x"), ("CADENCE_WEB_PORT", "-1"), ("CADENCE_WINDOW_SECONDS", "nan"),
     ("CADENCE_WINDOW_SECONDS", "0"), ("CADENCE_IDLE_FLUSH_SECONDS", "-5"),
     ("CADENCE_SHUTDOWN_GRACE_SECONDS", "inf"), ("CADENCE_TOPIC_REPLICATION_FACTOR", "0"),
     ("CADENCE_TOPIC_REPLICATION_FACTOR", "three")],
)  # fmt: skip
def test_worker_settings_refuse_bad_values(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=f"^{name}="):
        WorkerSettings.from_env()


@pytest.mark.usefixtures("fresh_judge_caches")
@pytest.mark.parametrize("value", ["0", "-10", "many"])
def test_enrollment_thresholds_refuse_bad_values(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_ENROLL_MIN_SESSIONS", value)
    with pytest.raises(SettingError, match="^CADENCE_ENROLL_MIN_SESSIONS="):
        enrollment_policy()


@pytest.mark.parametrize(
    ("name", "value"),
    [("CADENCE_EVENTS_PARTITIONS", "x"), ("CADENCE_VERDICTS_PARTITIONS", "0"),
     ("CADENCE_EVENTS_RETENTION_HOURS", "-1"), ("CADENCE_AUDIT_RETENTION_DAYS", "1e3")],
)  # fmt: skip
def test_bad_topic_settings_read_at_import_exit_2(name: str, value: str) -> None:
    # streams.topics reads them at its first import, inside the command's run(): a fresh
    # process, since this one imported the module long ago. The broker is never reached.
    env = {**os.environ, name: value, "CADENCE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    env.pop("CADENCE_KAFKA_SASL_USERNAME", None)
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "topics", "create", "--timeout", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"cadence: {name}={value!r}: must be a positive integer"


def test_help_does_not_read_topic_settings() -> None:
    env = {**os.environ, "CADENCE_EVENTS_PARTITIONS": "x"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "pseudonym", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.usefixtures("fresh_judge_caches")
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("CADENCE_GC_GEN0_THRESHOLD", "-3", "CADENCE_GC_GEN0_THRESHOLD='-3': must be an integer >= 0"),
     ("CADENCE_GC_GEN0_THRESHOLD", "lots", "CADENCE_GC_GEN0_THRESHOLD='lots'"),
     ("CADENCE_WEB_PORT", "x", "CADENCE_WEB_PORT='x': must be an integer from 1 to 65535"),
     ("CADENCE_ENROLL_MIN_PRESSES", "0", "CADENCE_ENROLL_MIN_PRESSES='0'"),
     ("CADENCE_BACKGROUND", "/nonexistent/background.bin",
      "CADENCE_BACKGROUND='/nonexistent/background.bin': No such file or directory"),
     ("CADENCE_KAFKA_SASL_USERNAME", "cadence-worker", "CADENCE_KAFKA_SECURITY_PROTOCOL is unset"),
     ("CADENCE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "SASL_SSL needs CADENCE_KAFKA_SASL_USERNAME"),
     ("CADENCE_KAFKA_SSL_CA", "/nonexistent/ca.pem", "CADENCE_KAFKA_SSL_CA='/nonexistent/ca.pem'")],
)  # fmt: skip
def test_worker_refuses_bad_settings_before_starting(
    name: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable in ("CADENCE_KAFKA_SECURITY_PROTOCOL", "CADENCE_KAFKA_SASL_USERNAME"):
        monkeypatch.delenv(variable, raising=False)
    if name == "CADENCE_KAFKA_SSL_CA":
        monkeypatch.setenv("CADENCE_KAFKA_SECURITY_PROTOCOL", "SSL")
    # Not --bootstrap: the worker would write it into this process's environment.
    monkeypatch.setenv("CADENCE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv(name, value)
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cadence worker: ") and message in err and "Traceback" not in err


@pytest.mark.usefixtures("fresh_judge_caches")
def test_a_file_that_is_no_background_model_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "background.bin"
    path.write_bytes(b"short")
    monkeypatch.setenv("CADENCE_BACKGROUND", str(path))
    with pytest.raises(SettingError, match="too short for a model"):
        background()
