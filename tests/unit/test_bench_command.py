"""`cadence bench pipeline` stops at once on what cannot work: no py-spy, bad arguments."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streams.cli import main


def test_py_spy_missing_is_a_clear_error_before_any_broker_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A venv without py-spy (it is not a dependency); the port has no broker, so reaching
    # the broker would fail differently, and only after a timeout.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    argv = ["bench", "pipeline", "--bootstrap", "127.0.0.1:1", "--users", "1", "--seconds", "1"]
    assert main([*argv, "--py-spy", str(tmp_path / "spy.txt")]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "pip install py-spy" in err
    assert not (tmp_path / "spy.txt").exists()


@pytest.mark.parametrize(
    "extra",
    [["--users", "0"], ["--seconds", "0"], ["--partitions", "0"], ["--batch-max-events", "0"],
     ["--batch-age-ms", "-1"]],
)  # fmt: skip
def test_bad_arguments_stop_before_any_broker_work(extra: list[str]) -> None:
    # 127.0.0.1:1 has no broker: reaching it would fail only after a timeout.
    assert main(["bench", "pipeline", "--bootstrap", "127.0.0.1:1", *extra]) == 2
