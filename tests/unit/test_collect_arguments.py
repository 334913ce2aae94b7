"""`cadence collect` refuses meaningless arguments with one line and exit 2."""

from __future__ import annotations

import pytest

from streams.cli import main


@pytest.mark.parametrize(
    "extra",
    [["--log-level", "foo"], ["--spool-max-mb", "nan"], ["--spool-max-mb", "0"],
     ["--spool-max-mb", "-1"], ["--spool-max-mb", "inf"]],
)  # fmt: skip
def test_bad_arguments_are_refused_before_the_agent_starts(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collect", "--memory-spool", "--bootstrap", "127.0.0.1:1", *extra]) == 2
    assert capsys.readouterr().err.startswith(f"cadence collect: {extra[0]} must be")
