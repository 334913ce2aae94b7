"""Replaying recordings: both dataset layouts to wire batches, and no key identity on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.episodes import BATCH_MAX_AGE_MS
from collectors.keyclass import CLASS_CODES, classify_char
from collectors.replay import (
    keystroke_recordings,
    load_user_map,
    mouse_recordings,
    replay_batches,
    replay_pseudonym,
    replay_timed,
)
from collectors.wire import EventBatch, KeyEvent, MouseEvent, decode_batch, encode_batch

WALL = 1.75e12

BALABIT_HEADER = "record timestamp,client timestamp,button,state,x,y\n"
BALABIT_ROWS = [
    "0.0,0.0,NoButton,Move,100,100",
    "0.02,0.02,NoButton,Move,110,104",
    "0.1,0.1,Left,Pressed,110,104",
    "0.2,0.2,NoButton,Drag,130,110",
    "0.3,0.3,Left,Released,140,112",
    "0.5,0.5,Right,Pressed,140,112",
    "0.6,0.6,Right,Released,140,112",
    "0.8,0.8,Scroll,Down,0,0",
    "0.9,0.9,Scroll,Up,0,0",
]


def _write_balabit(root: Path, users: dict[str, int]) -> None:
    for user, sessions in users.items():
        (root / user).mkdir(parents=True)
        for k in range(sessions):
            (root / user / f"session_{k}").write_text(BALABIT_HEADER + "\n".join(BALABIT_ROWS))


def _typing_rows(text: str, start_ns: int = 1_700_000_000_000_000_000) -> list[str]:
    """pynput-style rows typing ``text``: 90 ms holds, 150 ms apart, shift for capitals."""
    rows = ["type,key,t_ns"]
    t = start_ns
    for ch in text:
        key = "Key.space" if ch == " " else repr(ch)
        if ch.isupper():
            rows.append(f"down,Key.shift,{t}")
            t += 40_000_000
        rows.append(f"down,{key},{t}")
        rows.append(f"up,{key},{t + 90_000_000}")
        if ch.isupper():
            rows.append(f"up,Key.shift,{t + 120_000_000}")
        t += 150_000_000
    return rows


def _all(batches: list[EventBatch]) -> list[KeyEvent | MouseEvent]:
    return [e for b in batches for e in b.events]


@pytest.mark.parametrize("nested", [True, False])
def test_balabit_layout_maps_buttons_states_and_scrolls(tmp_path: Path, nested: bool) -> None:
    root = tmp_path / "training_files" if nested else tmp_path
    _write_balabit(root, {"user7": 1})
    batches = list(replay_batches(mouse_recordings(tmp_path), start_wall_ms=WALL))
    events = _all(batches)
    clicks = [e for e in events if isinstance(e, MouseEvent) and e.kind in ("md", "mu")]
    assert [(e.kind, e.button) for e in clicks] == [("md", 1), ("mu", 1), ("md", 2), ("mu", 2)]
    assert [e.kind for e in events].count("mm") == 3  # two moves and the drag
    scrolls = [e for e in events if isinstance(e, MouseEvent) and e.kind == "ms"]
    assert [(e.dx, e.dy) for e in scrolls] == [(0, -120), (0, 120)]
    assert all((e.x, e.y) == (140, 112) for e in scrolls)  # the pointer, not the 0,0 rows
    start = events[0].t_ms
    assert [round(e.t_ms - start, 3) for e in events][:3] == [0.0, 20.0, 100.0]
    assert {b.user for b in batches} == {replay_pseudonym("user7")}
    for b in batches:
        assert decode_batch(encode_batch(b)) == b
        assert b.events[-1].t_ms - b.events[0].t_ms < BATCH_MAX_AGE_MS


def test_sessions_play_back_to_back_per_user_and_users_in_parallel(tmp_path: Path) -> None:
    _write_balabit(tmp_path, {"user7": 3, "user9": 2})
    timed = list(
        replay_timed(
            mouse_recordings(tmp_path, limit_sessions=2), start_wall_ms=WALL, gap_s=5.0, run="r"
        )
    )
    assert [t for t, _ in timed] == sorted(t for t, _ in timed)
    by_device: dict[str, list[EventBatch]] = {}
    for _, b in timed:
        by_device.setdefault(b.device, []).append(b)
    assert len(by_device) == 2
    for batches in by_device.values():
        assert [b.seq for b in batches] == list(range(len(batches)))
        sessions = list(dict.fromkeys(b.session for b in batches))
        assert len(sessions) == 2  # limit_sessions
        first_of_second = next(b for b in batches if b.session == sessions[1])
        gap = first_of_second.events[0].t_ms - batches[0].events[0].t_ms
        assert gap == pytest.approx(900.0 + 5000.0)
    # Both users start at time 0.
    starts = [bs[0].events[0].t_ms + bs[0].clock_offset_ms for bs in by_device.values()]
    assert starts == [WALL, WALL]


def test_a_refused_keystroke_file_is_logged_with_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Times in ms replay nothing, and say why (not "rows that did not parse")."""
    (tmp_path / "alice").mkdir()
    header, *rows = _typing_rows("Hello there")
    in_ms = [f"{r.rsplit(',', 1)[0]},{int(r.rsplit(',', 1)[1]) // 10**6}" for r in rows]
    (tmp_path / "alice" / "ms.csv").write_text("\n".join([header, *in_ms]) + "\n")
    (recording,) = keystroke_recordings(tmp_path)
    assert recording.load().t_ms.size == 0
    assert "refused, no event replayed" in caplog.text and "not in nanoseconds" in caplog.text


def test_keystrokes_become_classes_and_no_key_identity_reaches_the_wire(tmp_path: Path) -> None:
    secret = "Correct horse battery staple"
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "facebook.csv").write_text("\n".join(_typing_rows(secret)) + "\n")
    batches = list(replay_batches(keystroke_recordings(tmp_path), start_wall_ms=WALL))
    wire = b"".join(encode_batch(b) for b in batches)
    for word in secret.split():
        assert word.lower().encode() not in wire.lower()
    assert b"Key." not in wire and b"shift" not in wire and b"'" not in wire
    assert b"alice" not in wire and b"facebook" not in wire

    downs = [e.key_class for e in _all(batches) if isinstance(e, KeyEvent) and e.kind == "kd"]
    expected: list[int] = []
    for ch in secret:
        if ch.isupper():
            expected.append(CLASS_CODES["modifier"])
        expected.append(classify_char(ch))
    assert downs == expected
    keys = [e for e in _all(batches) if isinstance(e, KeyEvent)]
    assert all(e.key_hash is None for e in keys)
    assert {b.user for b in batches} == {replay_pseudonym("alice")}


def test_user_map_and_idle_compression(tmp_path: Path) -> None:
    (tmp_path / "bob").mkdir()
    rows = _typing_rows("ab")
    # A ten-minute pause, then one more key.
    late = 1_700_000_000_000_000_000 + 600 * 10**9
    rows += [f"down,'c',{late}", f"up,'c',{late + 80_000_000}"]
    (tmp_path / "bob" / "s.csv").write_text("\n".join(rows) + "\n")
    pseudonym = "f" * 64
    batches = list(
        replay_batches(
            keystroke_recordings(tmp_path),
            user_map={"bob": pseudonym},
            start_wall_ms=WALL,
            max_idle_s=2.0,
        )
    )
    assert {b.user for b in batches} == {pseudonym}
    events = _all(batches)
    assert events[-1].t_ms - events[0].t_ms < 3000.0
    assert events[-1].t_ms - events[-2].t_ms == pytest.approx(80.0)


def test_load_user_map(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("# dataset user, pseudonym\nuser7,aa\nuser9,bb\n")
    assert load_user_map([f"@{path}", "user12=cc"]) == {
        "user7": "aa",
        "user9": "bb",
        "user12": "cc",
    }
    with pytest.raises(ValueError):
        load_user_map(["user7"])


def test_users_filter(tmp_path: Path) -> None:
    _write_balabit(tmp_path, {"user7": 1, "user9": 1})
    batches = list(replay_batches(mouse_recordings(tmp_path, users=["user9"]), start_wall_ms=WALL))
    assert {b.user for b in batches} == {replay_pseudonym("user9")}


def test_user_map_refuses_pseudonyms_the_wire_rejects(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("user7,\n")  # an empty pseudonym
    with pytest.raises(ValueError, match="user7"):
        load_user_map([f"@{path}"])
    with pytest.raises(ValueError, match="user9"):
        load_user_map(["user9=" + "a" * 129])


def test_mouse_and_keystroke_replays_of_one_name_get_different_devices(tmp_path: Path) -> None:
    _write_balabit(tmp_path / "mouse", {"user23": 1})
    (tmp_path / "keys" / "user23").mkdir(parents=True)
    (tmp_path / "keys" / "user23" / "a.csv").write_text("\n".join(_typing_rows("hello")))
    mouse = list(replay_timed(mouse_recordings(tmp_path / "mouse"), run="r", kind="mouse"))
    keys = list(replay_timed(keystroke_recordings(tmp_path / "keys"), run="r", kind="keystrokes"))
    assert {b.device for _, b in mouse}.isdisjoint({b.device for _, b in keys})


def test_an_unreadable_recording_is_skipped_not_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user = tmp_path / "user1"
    user.mkdir()
    (user / "a.csv").write_text("\n".join(_typing_rows("first")))
    (user / "b.csv").write_text("type,key,t_ns\ndown,'" + "x" * 200_000 + "',1\n")  # csv.Error
    (user / "c.CSV").write_text("\n".join(_typing_rows("third", start_ns=2 * 10**18)))
    batches = list(replay_batches(keystroke_recordings(tmp_path), start_wall_ms=WALL))
    sessions = {b.session for b in batches}
    assert len(sessions) == 2  # a.csv and c.CSV, around the unreadable one
    assert any("skipped recording user1/b" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "extra",
    [["--gap-s", "-5"], ["--max-idle-s", "-1"], ["--max-idle-s", "nan"], ["--speed", "nan"],
     ["--limit-sessions", "-1"]],
)  # fmt: skip
def test_replay_rejects_arguments_that_would_break_the_wire(
    tmp_path: Path, extra: list[str]
) -> None:
    from streams.cli import main

    _write_balabit(tmp_path, {"user7": 1})
    assert main(["replay", "mouse", str(tmp_path), "--bootstrap", "127.0.0.1:1", *extra]) == 2


def test_replay_of_nothing_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    _write_balabit(tmp_path, {"user7": 1})
    args = ["replay", "mouse", str(tmp_path), "--bootstrap", "127.0.0.1:1", "--fast"]
    assert main([*args, "--users", "nobody"]) == 1
    assert "nothing to send" in capsys.readouterr().err


def _two_bursts_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apart_ns: int
) -> list[EventBatch]:
    """One user's recording in ``tmp_path``, typing twice ``apart_ns`` apart; returns the
    list that the batches of a replay go to in place of Kafka."""
    from streams.commands import _replay

    user = tmp_path / "alice"
    user.mkdir()
    later_ns = 1_700_000_000_000_000_000 + apart_ns
    rows = _typing_rows("Hello there") + _typing_rows("General Kenobi", later_ns)[1:]
    (user / "facebook.csv").write_text("\n".join(rows) + "\n")
    sent: list[EventBatch] = []

    def capture(timed, sender, *args: object) -> int:  # type: ignore[no-untyped-def]
        sent.extend(batch for _, batch in timed)
        sender.close(0)
        return 0

    monkeypatch.setattr(_replay, "send_and_close", capture)
    return sent


@pytest.mark.parametrize("pacing", [["--fast"], ["--speed", "50"]])
def test_a_replay_faster_than_real_time_ends_now_not_in_the_future(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pacing: list[str]
) -> None:
    # Started now, `replay keystrokes DIR --fast` (docs/workloads.md) stamped its batches
    # up to the recordings' length ahead: the worker dead-letters every batch sent more
    # than 5 minutes in the future.
    import time

    from streams.cli import main

    sent = _two_bursts_sent(tmp_path, monkeypatch, 20 * 60 * 10**9)  # 20 min apart
    args = ["replay", "keystrokes", str(tmp_path), "--max-idle-s", "inf", *pacing]
    assert main([*args, "--bootstrap", "127.0.0.1:1"]) == 0
    now_ms = time.time() * 1000.0
    span_ms = max(b.sent_at_ms for b in sent) - min(b.sent_at_ms for b in sent)
    assert span_ms > 19 * 60 * 1000.0  # the idle gap is kept: a 20-minute replay
    speed = 50.0 if "--speed" in pacing else float("inf")
    # The last batch is due span / speed after the start: stamped no later than that.
    assert max(b.sent_at_ms for b in sent) <= now_ms + span_ms / speed + 1000.0


def test_a_replay_placed_more_than_30_days_back_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `replay keystrokes DIR --fast --max-idle-s inf` (docs/workloads.md: the free-text
    # sessions span weeks) was placed to end now, so it started 44 days ago: the worker
    # dead-lettered 19 332 of its 20 224 batches as absurd_timestamp (older than 30 days).
    from streams.cli import main

    sent = _two_bursts_sent(tmp_path, monkeypatch, 40 * 86_400 * 10**9)  # 40 days apart
    args = ["replay", "keystrokes", str(tmp_path), "--bootstrap", "127.0.0.1:1"]
    assert main([*args, "--max-idle-s", "inf", "--fast"]) == 2
    assert "30 days" in capsys.readouterr().err
    assert sent == []
    # Its idle gaps shortened (the default), or in real time, it is sent.
    assert main([*args, "--fast"]) == 0
    assert main([*args, "--max-idle-s", "inf", "--speed", "1"]) == 0
    assert sent
