"""An interrupted benchmark cleans up: its worker does not outlive it, a stop signal runs
its clean-up to the end, and bench/run.py gives it the time to.

Each case runs in a child process of its own: a handler that failed would otherwise
deliver SIGTERM or SIGINT to the test session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl, /proc")


def python(script: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        # A test session started in the background by a shell without job control (`sh -c
        # 'make test &'`) ignores SIGINT, and so would the child, which never sees Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


def gone(pid: int) -> bool:
    """Exited (reaped, or a zombie waiting for its new parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@linux_only
def test_the_worker_dies_with_the_bench_that_started_it() -> None:
    # The "bench" starts a stand-in worker as running_worker does, then dies at once,
    # no clean-up: what a SIGKILL (subprocess.run after Ctrl-C, the OOM killer) does.
    bench = python(
        """
        import os, subprocess, sys
        from streams.children import dies_with_this_thread
        worker = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)"],
            start_new_session=True,
            preexec_fn=dies_with_this_thread(),
        )
        print(worker.pid, flush=True)
        os._exit(0)
        """
    )
    assert bench.stdout is not None
    worker = int(bench.stdout.readline())
    bench.wait(30)
    deadline = time.monotonic() + 30
    while not gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not gone(worker):
        os.kill(worker, signal.SIGKILL)  # ours: do not leave it behind
        pytest.fail("the stand-in worker outlived the bench that started it")


def test_sigterm_runs_the_clean_up_to_its_end_whatever_comes_next() -> None:
    bench = python(
        """
        import os, signal, time
        from streams.bench import stopping_cleans_up
        steps = []
        try:
            with stopping_cleans_up():
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(30)
                    steps.append("not interrupted")
                finally:
                    # The clean-up, interrupted by the repeats a terminal and run.py send.
                    os.kill(os.getpid(), signal.SIGINT)
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.2)
                    steps.append("cleaned up")
        except KeyboardInterrupt:
            steps.append("KeyboardInterrupt")
        print(steps, signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
        """
    )
    out, _ = bench.communicate(timeout=60)
    assert bench.returncode == 0
    assert out.strip() == "['cleaned up', 'KeyboardInterrupt'] True"


def test_run_py_lets_an_interrupted_bench_finish_its_clean_up(tmp_path: Path) -> None:
    cleaned = tmp_path / "cleaned"
    # The child takes 1 s to clean up on SIGINT: subprocess.run killed it after 0.25 s.
    child = textwrap.dedent(
        f"""
        import pathlib, time
        print("ready", flush=True)
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            time.sleep(1.0)
            pathlib.Path({str(cleaned)!r}).write_text("done")
        """
    )
    runner = python(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("bench_run", "bench/run.py")
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
        try:
            run.run_child([sys.executable, "-c", {child!r}])
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """,
        stderr=subprocess.DEVNULL,
    )
    assert runner.stdout is not None
    assert runner.stdout.readline().strip() == "ready"
    runner.send_signal(signal.SIGINT)  # to run.py only, as `kill -INT` would
    out, _ = runner.communicate(timeout=60)
    assert out.strip() == "interrupted"
    assert cleaned.read_text() == "done"


class FakeSender:
    def __init__(self, **kwargs: object) -> None:
        self.closed: list[float] = []
        FakeSender.last = self

    def close(self, timeout: float) -> int:
        self.closed.append(timeout)
        return 1  # one batch never acknowledged

    last: FakeSender


def test_an_interrupted_send_does_not_hold_up_the_clean_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import collectors.delivery
    from streams.bench_kafka import batch_sender

    monkeypatch.setattr(collectors.delivery, "BatchSender", FakeSender)
    with (
        pytest.raises(KeyboardInterrupt),
        batch_sender("unused:1", "t", flat_out=False),
    ):
        raise KeyboardInterrupt
    # Not the 120 s a finished load may take to be acknowledged (it spun that long).
    assert FakeSender.last.closed == [2.0]
    with (
        pytest.raises(RuntimeError, match="1 batches not acknowledged"),
        batch_sender("unused:1", "t", flat_out=False),
    ):
        pass
    assert FakeSender.last.closed == [120.0]
