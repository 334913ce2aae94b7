"""`cadence collect` refuses meaningless arguments with one line and exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams.cli import main


@pytest.mark.parametrize(
    "extra",
    [["--log-level", "foo"], ["--spool-max-mb", "nan"], ["--spool-max-mb", "0"],
     ["--spool-max-mb", "-1"], ["--spool-max-mb", "inf"], ["--spool-max-batches", "0"],
     ["--idle-minutes", "0"], ["--idle-minutes", "nan"], ["--flush-timeout", "-1"],
     ["--metrics-port", "99999"], ["--spool-quarantine-days", "-1"],
     ["--spool-quarantine-days", "nan"]],
)  # fmt: skip
def test_bad_arguments_are_refused_before_the_agent_starts(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collect", "--memory-spool", "--bootstrap", "127.0.0.1:1", *extra]) == 2
    assert capsys.readouterr().err.startswith(f"cadence collect: {extra[0]} must be")


def test_a_state_directory_that_cannot_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY", "k" * 32)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    code = main(["collect", "--bootstrap", "127.0.0.1:1", "--state-dir", str(blocked / "state")])
    assert code == 2
    assert capsys.readouterr().err.startswith("cadence collect: ")


def test_a_metrics_port_in_use_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY", "k" * 32)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["collect", "--memory-spool", "--bootstrap", "127.0.0.1:1"]
        code = main([*argv, "--state-dir", str(tmp_path), "--metrics-port", str(port)])
    assert code == 2
    assert "cadence collect: " in capsys.readouterr().err
