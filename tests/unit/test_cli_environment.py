"""The CLI works in the environments operators run it in: a container's arbitrary uid, a
secret file not mounted yet, a SASL setup without an explicit mechanism."""

from __future__ import annotations

import getpass

import pytest

from collectors.kafka_config import kafka_client_config
from streams.cli import build_parser, main
from streams.kafka_auth import broker_credentials


def test_a_uid_without_a_passwd_entry_can_run_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_user() -> str:
        raise KeyError("getpwuid(): uid not found: 1000650000")

    monkeypatch.setattr(getpass, "getuser", no_such_user)
    build_parser()  # every command's options, forget's --by among them
    with pytest.raises(SystemExit) as done:
        main(["profiles", "forget", "--help"])
    assert done.value.code == 0


def test_a_missing_password_file_is_a_one_line_error_only_where_kafka_is_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CADENCE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CADENCE_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/kafka-password")
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert main(["topics", "create", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot read CADENCE_KAFKA_SASL_PASSWORD_FILE" in err and "Traceback" not in err


def test_every_client_agrees_on_the_sasl_mechanism() -> None:
    env = {"CADENCE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
    librdkafka = kafka_client_config("b:9093", env=env)
    worker_login = broker_credentials({**librdkafka, "sasl.username": "u", "sasl.password": "p"})
    assert librdkafka["sasl.mechanism"] == worker_login.mechanism.value == "SCRAM-SHA-512"


def test_credentials_without_a_sasl_protocol_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # librdkafka would connect unauthenticated and unencrypted, with one warning.
    monkeypatch.delenv("CADENCE_KAFKA_SECURITY_PROTOCOL", raising=False)
    monkeypatch.setenv("CADENCE_KAFKA_SASL_USERNAME", "cadence-worker")
    assert main(["topics", "create", "--timeout", "1"]) == 2
    assert "CADENCE_KAFKA_SECURITY_PROTOCOL" in capsys.readouterr().err
