"""The real agent under Xvfb, driven by xdotool, publishing to a real broker.

Checks what a reviewer would: events arrive in order with plausible timing, and not
one typed character (nor key identity) is anywhere in the published bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.batcher import MAX_AGE_MS, MAX_EVENTS
from collectors.keyclass import classify_char
from collectors.spool import SqliteSpool
from collectors.wire import EVENTS_TOPIC, Event, EventBatch, KeyEvent, MouseEvent, decode_batch
from tests.integration.collector_support import read_topic
from tests.kafka_broker import REPO_ROOT, free_port
from tests.loginctl_stub import install_loginctl_stub

pytestmark = [
    pytest.mark.x11,
    pytest.mark.skipif(
        shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
        reason="needs Xvfb and xdotool (Debian: apt-get install xvfb xdotool; `make x11-tools`)",
    ),
]

TEXT = "the quick brown fox jumps over the lazy dog quiz"
SECRET = "0123456789abcdef0123456789abcdef"
TYPE_DELAY_MS = 90


def ensure_topics(bootstrap: str) -> None:
    from streams.admin import create_topics

    # The project's own topic definitions (partitions, retention), created idempotently.
    create_topics({"bootstrap.servers": bootstrap})


def _free_display() -> int:
    for n in range(90, 300):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    n = _free_display()
    proc = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"Xvfb :{n} did not start")
        time.sleep(0.05)
    try:
        yield f":{n}"
    finally:
        proc.terminate()
        proc.wait(10)


def _xdotool(display: str, *args: str) -> None:
    subprocess.run(
        ["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=60
    )


@contextlib.contextmanager
def agent_running(
    display: str,
    bootstrap: str,
    state: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    stop: signal.Signals = signal.SIGTERM,
) -> Iterator[Path]:
    """``cadence collect`` from its "capturing" line until ``stop``; yields its log file."""
    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "agent.log"
    full_env = {
        **os.environ,
        "DISPLAY": display,
        "CADENCE_PSEUDONYM_KEY": SECRET,
        "PYTHONPATH": str(REPO_ROOT),
        **(env or {}),
    }
    with open(log_path, "w") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "collect", "--bootstrap", bootstrap]
            + ["--state-dir", str(state), "--login", "tester", "--no-fsync", *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    try:
        deadline = time.monotonic() + 30
        while "capturing" not in log_path.read_text():
            assert agent.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "agent did not start: " + log_path.read_text()
            time.sleep(0.05)
        yield log_path
    finally:
        agent.send_signal(stop)
        assert agent.wait(30) == 0, log_path.read_text()


def first_session(log: str) -> str:
    # Filter on the session: the device id is the machine's, shared by every run here.
    return log.split("session ", 1)[1].split(",", 1)[0]


def run_agent(display: str, bootstrap: str, state: Path, *extra: str) -> tuple[str, str]:
    """Start ``cadence collect``, type and move, stop it; return (session id, agent log)."""
    with agent_running(display, bootstrap, state, *extra) as log_path:
        _xdotool(display, "mousemove", "50", "60")
        _xdotool(display, "type", "--delay", str(TYPE_DELAY_MS), TEXT)
        for x, y in ((100, 100), (200, 150), (300, 200), (640, 400)):
            _xdotool(display, "mousemove", str(x), str(y))
            time.sleep(0.05)
        _xdotool(display, "click", "1")
        time.sleep(MAX_AGE_MS / 1000 + 0.35)  # > one batch age: the last batch closes itself
    text = log_path.read_text()
    return first_session(text), text


def agent_batches(bootstrap: str, session: str) -> tuple[list[EventBatch], list[bytes]]:
    batches, raw = [], []
    for r in read_topic(bootstrap, EVENTS_TOPIC):
        b = decode_batch(r.value)
        if b.session == session:
            batches.append(b)
            raw.extend([r.key, r.value, *(v for _, v in r.headers)])
    return batches, raw


def assert_no_typed_text(raw: list[bytes]) -> None:
    blob = b"\n".join(raw)
    assert TEXT.encode() not in blob
    for word in set(TEXT.split()):
        assert word.encode() not in blob, f"typed word {word!r} found in published bytes"
    for i in range(len(TEXT) - 2):  # every 3-character window of what was typed
        assert TEXT[i : i + 3].encode() not in blob
    for letter in "qzxjkw":  # ("v" is the schema-version field name)
        assert f'"{letter}"'.encode() not in blob


def assert_keys_match_text(batches: list[EventBatch]) -> None:
    keys = [e for b in batches for e in b.events if isinstance(e, KeyEvent)]
    downs = [e for e in keys if e.kind == "kd"]
    assert [e.key_class for e in downs] == [classify_char(c) for c in TEXT]
    # Pair each down with the next up of the same class: dwell > 0, flight plausible.
    open_downs: dict[int, float] = {}
    dwells, flights, last_up = [], [], None
    for e in keys:
        if e.kind == "kd":
            if last_up is not None:
                flights.append(e.t_ms - last_up)
            open_downs[e.key_class] = e.t_ms
        else:
            dwells.append(e.t_ms - open_downs.pop(e.key_class))
            last_up = e.t_ms
    assert len(dwells) == len(TEXT)
    assert all(0 < d < 1000 for d in dwells), dwells
    assert all(0 < f < 1000 for f in flights), flights
    # The times are the X server's own (1 ms, CLOCK_MONOTONIC on Xvfb, i.e. our clock:
    # whole milliseconds), not when the agent got round to reading the burst.
    assert all(e.t_ms == int(e.t_ms) for e in keys), [e.t_ms for e in keys[:6]]
    # xdotool paces each half of a keystroke evenly: with --delay 90 both dwell and
    # flight measure 22-23 ms on an idle machine. A loaded one only stretches them.
    expected = TYPE_DELAY_MS / 4
    for name, values in (("dwell", dwells), ("flight", flights)):
        median = statistics.median(values)
        assert expected - 3 <= median <= expected + 40, (name, sorted(values))


def test_agent_publishes_classes_in_order_and_no_characters(
    display: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap)
    session, log = run_agent(display, kafka_bootstrap, tmp_path)
    assert "spool empty" in log
    batches, raw = agent_batches(kafka_bootstrap, session)
    assert batches
    assert [b.seq for b in batches] == list(range(batches[0].seq, batches[0].seq + len(batches)))
    assert len({b.session for b in batches}) == 1 and len({b.user for b in batches}) == 1
    events = [e for b in batches for e in b.events]
    times = [e.t_ms for e in events]
    assert times == sorted(times), "events out of order"
    assert all(len(b.events) <= MAX_EVENTS for b in batches)
    assert not any(b.key_identity for b in batches)
    assert_keys_match_text(batches)
    moves = [(e.x, e.y) for e in events if isinstance(e, MouseEvent) and e.kind == "mm"]
    for target in ((100, 100), (200, 150), (300, 200), (640, 400)):
        assert target in moves
    clicks = [e for e in events if isinstance(e, MouseEvent) and e.kind in ("md", "mu")]
    assert [(c.kind, c.button, c.x, c.y) for c in clicks] == [
        ("md", 1, 640, 400),
        ("mu", 1, 640, 400),
    ]
    for b in batches:  # wall-clock mapping is sane
        assert abs(b.events[-1].t_ms + b.clock_offset_ms - b.sent_at_ms) < 2000
    assert_no_typed_text(raw)


def test_key_identity_mode_is_audited_and_sends_only_hashes(
    display: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap)
    session, log = run_agent(display, kafka_bootstrap, tmp_path, "--key-identity")
    assert "WARNING" in log and "audit: key-identity mode enabled" in log
    batches, raw = agent_batches(kafka_bootstrap, session)
    assert batches and all(b.key_identity for b in batches)
    downs = [e for b in batches for e in b.events if isinstance(e, KeyEvent) and e.kind == "kd"]
    hashes = [e.key_hash for e in downs]
    assert all(h is not None and len(h) == 64 for h in hashes)
    # Same key, same hash: 'e' (3rd char) and 'e' in "over"; different keys differ.
    assert hashes[TEXT.index("e")] == hashes[TEXT.index("over") + 2]
    assert hashes[TEXT.index("q")] != hashes[TEXT.index("z")]
    assert_no_typed_text(raw)


def test_agent_keeps_running_when_its_spool_overflows(display: str, tmp_path: Path) -> None:
    # A port nobody listens on: a broker that is down for the whole run.
    dead = f"127.0.0.1:{free_port()}"
    # The run makes a few batches (one a second): a spool of one overflows for sure.
    _, log = run_agent(display, dead, tmp_path, "--spool-max-batches", "1", "--flush-timeout", "1")
    assert "spool full" in log and "dropped" in log
    assert "batches stay on the spool for the next start" in log  # clean exit, spool kept
    assert SqliteSpool(tmp_path / "spool.db").batches == 1


def test_screen_unlock_starts_a_new_session(
    display: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # No logind here: loginctl is a stub answering LockedHint from a file (see
    # tests/loginctl_stub.py); the agent, X input, batching and broker are real.
    ensure_topics(kafka_bootstrap)
    bindir, hint = tmp_path / "bin", tmp_path / "locked-hint"
    bindir.mkdir()
    hint.write_text("no\n")
    install_loginctl_stub(bindir, hint, "c7")
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "XDG_SESSION_ID": "c7"}
    with agent_running(display, kafka_bootstrap, tmp_path / "state", env=env) as log_path:
        _xdotool(display, "type", "--delay", "60", "before")
        hint.write_text("yes\n")
        time.sleep(6.5)  # > one poll (every 5 s, steps at most 1 s apart): locked seen
        _xdotool(display, "type", "--delay", "60", "lock")  # the unlocker, at the lock screen
        hint.write_text("no\n")
        deadline = time.monotonic() + 15
        while "screen unlocked: new session" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        _xdotool(display, "type", "--delay", "60", "after")
        time.sleep(0.6)
    log = log_path.read_text()
    before = first_session(log)
    after = log.split("screen unlocked: new session ", 1)[1].split()[0]
    assert after != before and log.count("screen unlocked") == 1
    downs: dict[str, list[Event]] = {}
    for session in (before, after):
        batches, raw = agent_batches(kafka_bootstrap, session)
        downs[session] = [e for b in batches for e in b.events if e.kind == "kd"]
        assert b"before" not in b"".join(raw) and b"after" not in b"".join(raw)
    # What the unlocker typed at the lock screen goes out in the new session when the
    # unlock is seen before its batch is due (polled every second while locked), else
    # in the owner's: whole, either way. Nothing typed after the unlock is the owner's.
    assert len(downs[before]) in (len("before"), len("before") + len("lock"))
    assert len(downs[before]) + len(downs[after]) == len("before" + "lock" + "after")


def test_a_hangup_stops_the_agent_cleanly_with_its_open_batch_sent(
    display: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # An agent started from a terminal or an autostart gets SIGHUP when that goes away;
    # by default it died with its open batch unsent.
    ensure_topics(kafka_bootstrap)
    with agent_running(display, kafka_bootstrap, tmp_path, stop=signal.SIGHUP) as log_path:
        _xdotool(display, "type", "--delay", "60", "hangup")
        time.sleep(0.4)  # read by the agent, less than a batch age: its batch is still open
    batches, _ = agent_batches(kafka_bootstrap, first_session(log_path.read_text()))
    downs = [e for b in batches for e in b.events if isinstance(e, KeyEvent) and e.kind == "kd"]
    assert len(downs) == len("hangup")


def test_an_agent_without_the_pointer_sends_key_events_only(
    display: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # A desk where the pointer types (an on-screen keyboard): where it clicked must not
    # leave the desk, so the mouse is not captured at all.
    ensure_topics(kafka_bootstrap)
    session, log = run_agent(display, kafka_bootstrap, tmp_path, "--no-pointer")
    assert "pointer capture off" in log
    # The X11 reader's key-only context, not pynput's fallback (which would pass as well).
    assert "lean X11 input capture unavailable" not in log
    batches, raw = agent_batches(kafka_bootstrap, session)
    events = [e for b in batches for e in b.events]
    assert events and all(isinstance(e, KeyEvent) for e in events), {e.kind for e in events}
    assert_keys_match_text(batches)
    assert_no_typed_text(raw)


_PYNPUT_CAPTURE = """
import json, sys, time
from collectors.capture import Capture
events = []
capture = Capture(events.append, lean_x11=False, pointer=sys.argv[1] == "pointer")
capture.start()
print("ready", flush=True)
sys.stdin.readline()
time.sleep(0.3)
capture.stop()
print(json.dumps(sorted({e.kind for e in events})), flush=True)
"""


@pytest.mark.parametrize("pointer", ["pointer", "no-pointer"])
def test_pynputs_listeners_capture_the_pointer_only_when_asked(display: str, pointer: str) -> None:
    # The path taken where the lean X11 reader is unavailable.
    child = subprocess.Popen(
        [sys.executable, "-c", _PYNPUT_CAPTURE, pointer],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DISPLAY": display, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        _xdotool(display, "mousemove", "10", "20")
        _xdotool(display, "type", "--delay", "40", "ab")
        _xdotool(display, "mousemove", "300", "200")
        _xdotool(display, "click", "1")
        child.stdin.write("\n")
        child.stdin.flush()
        kinds = child.stdout.readline().strip()
    finally:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
    expected = ["kd", "ku", "md", "mm", "mu"] if pointer == "pointer" else ["kd", "ku"]
    assert json.loads(kinds) == expected
