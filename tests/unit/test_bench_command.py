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
     ["--batch-age-ms", "-1"], ["--seconds", "inf"], ["--seconds", "nan"],
     ["--paced-load", "nan"], ["--paced-load", "inf"], ["--paced-load", "-0.5"],
     ["--paced-load", "0"], ["--paced-seconds", "inf"], ["--paced-seconds", "nan"],
     ["--paced-seconds", "-1"]],
)  # fmt: skip
def test_bad_arguments_stop_before_any_broker_work(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # 127.0.0.1:1 has no broker: reaching it would fail only after a timeout.
    assert main(["bench", "pipeline", "--bootstrap", "127.0.0.1:1", *extra]) == 2
    assert f"cadence bench pipeline: {extra[0]} must be" in capsys.readouterr().err


def test_a_load_without_events_is_refused_before_any_broker_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # It used to load nothing, start a worker and end in an AssertionError minutes later.
    argv = ["bench", "pipeline", "--bootstrap", "127.0.0.1:1", "--users", "1", "--seconds", "0.5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cadence bench pipeline: 1 users x 0.5 s of activity make no events" in err


def test_an_unwritable_json_path_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = ["bench", "pipeline", "--bootstrap", "127.0.0.1:1", "--users", "1", "--seconds", "1"]
    assert main([*argv, "--json", str(blocker / "out.json")]) == 2
    assert f"--json {blocker / 'out.json'}" in capsys.readouterr().err
    assert blocker.read_text() == ""


def test_the_json_check_leaves_no_file_behind(tmp_path: Path) -> None:
    from streams.commands.bench_pipeline import unwritable

    out = tmp_path / "results" / "out.json"
    assert unwritable(out) is None
    assert not out.exists()
    out.write_text("{}")
    assert unwritable(out) is None
    assert out.read_text() == "{}"


def test_the_store_option_reaches_the_run_and_an_unknown_store_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import streams.bench

    seen: list[str] = []

    def stop(config: streams.bench.BenchConfig, progress: object) -> None:
        seen.append(config.store)
        raise streams.bench.BenchRefused("stopped by the test")

    monkeypatch.setattr(streams.bench, "run_bench", stop)
    argv = ["bench", "pipeline", "--bootstrap", "127.0.0.1:1", "--users", "1", "--seconds", "1"]
    assert main(argv) == 2
    assert main([*argv, "--store", "rocksdb://"]) == 2
    assert seen == ["memory://", "rocksdb://"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--store", "redis://"])
    assert exit_.value.code == 2
    assert "invalid choice: 'redis://'" in capsys.readouterr().err
