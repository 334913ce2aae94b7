"""The evaluation CLIs on held-out-like directories that differ from ours.

Small synthetic recordings in ``tmp_path`` (no dataset needed): users missing on
one side, too little data, odd labels files, broken sessions, paths with spaces
and output directories that do not exist yet. Each case must be reported
(stderr / JSON) and scored over what can be scored, never crash or count as 0.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from collectors.datasets.balabit import parse_session
from streams.cli import main

LETTERS = "qwertasdfgzxcvbyuiophjklnm"


# --- keystrokes ------------------------------------------------------------------------


#: Exit code of a takeover run on a fixture whose profiles never become active: no genuine
#: window was judged, so no false-alarm rate is measured (since 2026-12-08 time counts only
#: where the profile judged; "0 in 0.0 h" is not a measurement).
NOTHING_JUDGED = 1


def _typing(path: Path, presses: int, flight_ms: float, seed: int) -> None:
    """A pynput-style capture: one down/up pair per press, a user-specific rhythm."""
    rng = np.random.default_rng(seed)
    rows = ["type,key,t_ns"]
    t = 1_700_000_000_000_000_000
    for _ in range(presses):
        key = f"'{LETTERS[rng.integers(len(LETTERS))]}'" if rng.random() > 0.2 else "Key.space"
        t += int(rng.gamma(8.0, flight_ms / 8.0) * 1e6)
        rows.append(f"down,{key},{t}")
        rows.append(f"up,{key},{t + int(rng.gamma(20.0, 4.0) * 1e6)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def keystroke_dirs(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "held out keystrokes"  # spaces on purpose
    enroll, test = root / "enroll", root / "test"
    flights = {"ann": 120.0, "bob": 220.0, "cid": 340.0, "dan": 460.0}
    for i, (user, flight) in enumerate(flights.items()):
        _typing(enroll / user / "facebook.csv", 300, flight, seed=i)
        _typing(test / user / "twitter.csv", 120, flight, seed=100 + i)
    _typing(enroll / "eve" / "facebook.csv", 1, 200.0, seed=7)  # too little to enrol
    _typing(test / "eve" / "twitter.csv", 60, 200.0, seed=8)
    _typing(enroll / "fay" / "facebook.csv", 300, 280.0, seed=9)  # no test files
    _typing(test / "gus" / "twitter.csv", 60, 180.0, seed=10)  # never enrolled
    _typing(enroll / "hal" / "facebook.csv", 300, 400.0, seed=11)
    _typing(test / "hal" / "twitter.csv", 5, 400.0, seed=12)  # shorter than one window
    (test / "ivy").mkdir()
    (test / "ivy" / "twitter.csv").write_bytes(b"")  # empty file
    return enroll, test


def test_keystrokes_report_unscorable_users(
    keystroke_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enroll, test = keystroke_dirs
    out = tmp_path / "not yet" / "there" / "ks.json"
    code = main(
        [
            "evaluate", "keystrokes", "--enroll", f"{enroll}/", "--test", str(test),
            "--window", "20", "--json", str(out),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(out.read_text())
    assert sorted(summary["eer_by_user"]) == ["ann", "bob", "cid", "dan"]
    assert summary["users"] == 4
    assert sorted(summary["skipped"]) == ["eve", "fay", "gus", "hal", "ivy"]
    assert summary["users_skipped"] == 5
    assert "enrolment" in summary["skipped"]["eve"]
    assert summary["skipped"]["fay"] == "no test files"
    assert summary["skipped"]["gus"] == "no enrolment files"
    assert "window" in summary["skipped"]["hal"]
    assert summary["eer_mean"] == pytest.approx(np.mean(list(summary["eer_by_user"].values())))
    assert "skipped gus: no enrolment files" in captured.err
    last = captured.out.strip().splitlines()[-1]
    assert "4 users" in last and "5 users skipped" in last and "EER mean" in last


def test_keystrokes_enrol_on_every_press_of_short_files(tmp_path: Path) -> None:
    """Every file shorter than the window still enrols (each user enrols on all files)."""
    enroll, test = tmp_path / "enroll", tmp_path / "test"
    for i, (user, flight) in enumerate({"ann": 120.0, "bob": 300.0}.items()):
        for part in range(6):
            _typing(enroll / user / f"part{part}.csv", 60, flight, seed=10 * i + part)
        _typing(test / user / "t.csv", 400, flight, seed=100 + i)
    out = tmp_path / "ks.json"
    args = ["evaluate", "keystrokes", "--enroll", str(enroll), "--test", str(test)]
    assert main([*args, "--window", "100", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert sorted(summary["eer_by_user"]) == ["ann", "bob"] and summary["skipped"] == {}


def test_keystrokes_nothing_scorable_is_not_a_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _typing(tmp_path / "enroll" / "ann" / "a.csv", 300, 150.0, seed=1)
    _typing(tmp_path / "test" / "bob" / "b.csv", 300, 250.0, seed=2)
    out = tmp_path / "ks.json"
    code = main(
        [
            "evaluate", "keystrokes", "--enroll", str(tmp_path / "enroll"),
            "--test", str(tmp_path / "test"), "--window", "20", "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 1
    summary = json.loads(out.read_text())
    assert summary["eer_mean"] is None and summary["users"] == 0
    assert "0 users scored" in capsys.readouterr().out.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "extra",
    [["--window", "0"], ["--window", "1"], ["--method", "nope"], ["--method", "vector:nope"]],
)
def test_keystrokes_reject_bad_options_before_reading(
    tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _typing(tmp_path / "e" / "ann" / "a.csv", 30, 150.0, seed=1)
    args = ["evaluate", "keystrokes", "--enroll", str(tmp_path / "e"), "--test"]
    assert main([*args, str(tmp_path / "e"), *extra]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_unwritable_plot_still_prints_the_summary(
    keystroke_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enroll, test = keystroke_dirs
    (tmp_path / "taken").write_text("a file, not a directory")
    code = main(
        [
            "evaluate", "keystrokes", "--enroll", str(enroll), "--test", str(test),
            "--window", "20", "--plot", str(tmp_path / "taken" / "det.png"),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert "cannot write" in captured.err
    assert "EER mean" in captured.out.strip().splitlines()[-1]


def _rewrite(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    """Rewrite a recording line by line (header first), as another capture tool would."""
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n", encoding="utf-8")


def _eer(enroll: Path, test: Path, out: Path) -> dict:
    args = ["evaluate", "keystrokes", "--enroll", str(enroll), "--test", str(test)]
    assert main([*args, "--window", "20", "--json", str(out)]) == 0
    return json.loads(out.read_text())["eer_by_user"]


def test_keystrokes_read_other_layouts_as_ours_and_name_what_they_refuse(
    keystroke_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Extra or reordered columns, a file concatenated with itself, times in ms."""
    enroll, test = keystroke_dirs
    before = _eer(enroll, test, tmp_path / "before.json")
    capsys.readouterr()

    def vk_column(lines: list[str]) -> list[str]:  # by position, "65" was read as the key
        return ["type,key,vk,t_ns"] + [f"{a},{b},65,{c}" for a, b, c in map(_split, lines[1:])]

    def reordered(lines: list[str]) -> list[str]:  # refused as unparseable rows before
        return ["t_ns,type,key"] + [f"{c},{a},{b}" for a, b, c in map(_split, lines[1:])]

    _rewrite(enroll / "ann" / "facebook.csv", vk_column)
    _rewrite(enroll / "bob" / "facebook.csv", reordered)
    _rewrite(test / "cid" / "twitter.csv", lambda lines: lines + lines)  # 6.16 % on our data
    assert _eer(enroll, test, tmp_path / "after.json") == before
    err = capsys.readouterr().err
    assert f"{test}: skipped 240 duplicate rows" in err
    assert "did not parse" not in err

    def in_ms(lines: list[str]) -> list[str]:
        return lines[:1] + [f"{a},{b},{int(c) // 10**6}" for a, b, c in map(_split, lines[1:])]

    _rewrite(test / "dan" / "twitter.csv", in_ms)  # EER ~38 % on our data, read as ns
    assert sorted(_eer(enroll, test, tmp_path / "ms.json")) == ["ann", "bob", "cid"]
    err = capsys.readouterr().err
    assert "skipped file dan/twitter under" in err and "(240 rows)" in err
    assert "not in nanoseconds" in err
    assert "no full test window" in json.loads((tmp_path / "ms.json").read_text())["skipped"]["dan"]


def _split(line: str) -> tuple[str, str, str]:
    kind, key, t = line.split(",")
    return kind, key, t


# --- mouse -----------------------------------------------------------------------------

HEADER = "record timestamp,client timestamp,button,state,x,y"


def _mouse(path: Path, actions: int, speed: float, seed: int, clicks: bool = True) -> None:
    """Moves along noisy straight lines ending in a click, at an account-specific speed."""
    rng = np.random.default_rng(seed)
    rows = [HEADER]
    t, x, y = 0.0, 500.0, 400.0
    for _ in range(actions):
        tx, ty = rng.uniform(50, 1500), rng.uniform(50, 900)
        steps = int(rng.integers(8, 25))
        for k in range(1, steps + 1):
            t += rng.gamma(4.0, 0.004) * 200.0 / speed
            px = x + (tx - x) * k / steps + rng.normal(0, 2)
            py = y + (ty - y) * k / steps + rng.normal(0, 2)
            rows.append(f"{t:.3f},{t:.3f},NoButton,Move,{int(px)},{int(py)}")
        x, y = tx, ty
        if clicks:
            t += 0.05
            rows.append(f"{t:.3f},{t:.3f},Left,Pressed,{int(x)},{int(y)}")
            t += rng.uniform(0.05, 0.15)
            rows.append(f"{t:.3f},{t:.3f},Left,Released,{int(x)},{int(y)}")
        t += rng.uniform(0.3, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def balabit_dir(tmp_path: Path) -> Path:
    root = tmp_path / "held out balabit"
    speeds = {"user1": 150.0, "user2": 400.0, "user3": 900.0}
    for i, (user, speed) in enumerate(speeds.items()):
        _mouse(root / "training_files" / user / f"session_{i}0", 60, speed, seed=i)
        _mouse(root / "test_files" / user / f"session_{i}1", 15, speed, seed=10 + i)
        other = list(speeds.values())[(i + 1) % 3]
        _mouse(root / "test_files" / user / f"session_{i}2", 15, other, seed=20 + i)
    # Odd sessions under user1: moves only, zero rows, sentinels, and time going backwards.
    t1 = root / "test_files" / "user1"
    _mouse(t1 / "session_moves", 10, 150.0, seed=30, clicks=False)
    (t1 / "session_empty").write_text(HEADER + "\n")
    (t1 / "session_nothing").write_bytes(b"")
    lines = (root / "test_files" / "user2" / "session_11").read_text().splitlines()
    odd = [lines[0], *reversed(lines[1:])]
    odd.insert(5, "1.0,1.0,NoButton,Drag,65535,65535")
    odd.insert(6, "1.0,,NoButton,Move,,")
    (root / "test_files" / "user2" / "session_odd").write_text("\r\n".join(odd) + "\r\n")
    # An account with test sessions but no training files.
    _mouse(root / "test_files" / "user9" / "session_90", 15, 300.0, seed=40)
    return root


def _labels(path: Path, rows: list[tuple[str, str]], header: str = "filename,is_illegal") -> Path:
    path.write_text("\ufeff" + header + "\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return path


def test_mouse_scores_what_it_can_and_reports_the_rest(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _labels(
        tmp_path / "labels with spaces.csv",
        [
            ("session_01", "0"),
            ("test_files/user1/session_02", "1"),  # with a directory part
            ("user2\\session_11", "False"),  # Windows separator, boolean label
            ("session_12", "True"),
            ("session_20", "0"),  # not a test file (training): missing
            ("session_21", "0"),
            ("session_22", "1"),
            ("session_moves", "0"),
            ("session_empty", "1"),
            ("session_nothing", "0"),
            ("session_odd", "0"),
            ("session_90", "1"),  # account without training files
            ("session_gone", "1"),  # no such file
            ("session_bad", "maybe"),  # unreadable label
        ],
    )
    out = tmp_path / "new" / "mouse.json"
    code = main(
        [
            "evaluate", "mouse", "--data", f"{balabit_dir}/", "--labels", str(labels),
            "--json", str(out),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["sessions"] == 10  # 14 rows - 1 bad label - 2 missing - 1 unenrolled
    assert payload["genuine"] == 6 and payload["impostor"] == 4
    assert payload["labels_missing"] == 2 and payload["label_rows_bad"] == 1
    assert payload["sessions_skipped"] == 3
    assert set(payload["skipped"]) == {"session_20", "session_gone", "session_90"}
    assert payload["no_actions"] >= 2  # the empty sessions, scored at the population's level
    assert all(math.isfinite(v) for v in payload["scores"].values())
    assert 0.0 <= payload["auc"] <= 1.0
    assert "2 of 13 labelled sessions are not under" in captured.err
    last = captured.out.strip().splitlines()[-1]
    assert "over 10 sessions" in last and "3 skipped" in last


def test_mouse_with_one_class_only_reports_no_auc(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _labels(tmp_path / "l.csv", [("session_01", "0"), ("session_11", "0")])
    out = tmp_path / "m.json"
    code = main(
        [
            "evaluate",
            "mouse",
            "--data",
            str(balabit_dir),
            "--labels",
            str(labels),
            "--json",
            str(out),
        ]
    )
    assert code == 1
    assert json.loads(out.read_text())["auc"] is None
    assert "AUC n/a over 2 sessions" in capsys.readouterr().out.strip().splitlines()[-1]


def test_mouse_labels_match_files_however_either_spells_the_session(
    balabit_dir: Path, tmp_path: Path
) -> None:
    t1 = balabit_dir / "test_files" / "user1"
    (t1 / "session_02").rename(t1 / "session_02.csv")  # a file with an extension
    labels = _labels(
        tmp_path / "l.csv",
        [
            ("01", "0"),  # the bare number
            ("session_02", "1"),
            ("session_11.csv", "0"),  # an extension the file does not have
            ("session_12", "1"),
            ("session_21", "0"),  # labelled both ways: left out, not last-wins
            ("session_21", "1"),
        ],
    )
    out = tmp_path / "m.json"
    args = ["evaluate", "mouse", "--data", str(balabit_dir), "--labels", str(labels)]
    assert main([*args, "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["sessions"] == 4 and payload["labels_missing"] == 0
    assert payload["labels_conflicting"] == ["session_21"]


def test_mouse_names_a_session_found_under_two_accounts(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Labels name sessions, not accounts: the second of two same-named sessions used to
    # replace the first's score without a word, and the label counted for either.
    tests = balabit_dir / "test_files"
    (tests / "user2" / "session_01").write_bytes((tests / "user1" / "session_02").read_bytes())
    labels = _labels(
        tmp_path / "l.csv",
        [("session_01", "0"), ("session_11", "0"), ("session_02", "1"), ("session_12", "1")],
    )
    out = tmp_path / "m.json"
    args = ["evaluate", "mouse", "--data", str(balabit_dir), "--labels", str(labels)]
    assert main([*args, "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped session_01: under accounts user1, user2" in err
    payload = json.loads(out.read_text())
    assert "session_01" not in payload["scores"] and "session_01" in payload["skipped"]
    assert payload["sessions"] == 3 and payload["genuine"] == 1 and payload["impostor"] == 2


def test_mouse_typed_method_without_any_drag_in_enrolment(
    balabit_dir: Path, tmp_path: Path
) -> None:
    labels = _labels(tmp_path / "l.csv", [("session_01", "0"), ("session_02", "1")])
    args = ["evaluate", "mouse", "--data", str(balabit_dir), "--labels", str(labels)]
    # The synthetic sessions hold moves and clicks only: no drag-and-drop group.
    assert main([*args, "--method", "all"]) == 0


def test_mouse_layout_errors_are_clear(
    tmp_path: Path, balabit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _labels(tmp_path / "l.csv", [("session_01", "0")])
    assert main(["evaluate", "mouse", "--data", str(tmp_path), "--labels", str(labels)]) == 2
    assert "no training_files/ directory" in capsys.readouterr().err
    wrong = _labels(tmp_path / "w.csv", [("session_01", "0")], header="name,label")
    assert main(["evaluate", "mouse", "--data", str(balabit_dir), "--labels", str(wrong)]) == 2
    assert "filename and is_illegal" in capsys.readouterr().err


def test_balabit_reader_cleans_odd_rows() -> None:
    text = "\r\n".join(
        [
            HEADER,
            "0.3,0.3,NoButton,Move,30,30",
            "0.1,0.1,NoButton,Move,10,10",  # time going backwards
            "0.2,0.2,NoButton,Drag,65535,65535",  # RDP sentinel
            "0.25,,NoButton,Move,,",  # garbled numbers
            "0.26,nan,NoButton,Move,5,5",  # no usable time
            "0.27,0.27,NoButton,Move,inf,7",  # no usable position
            "0.4,0.4,Sideways,Hover,40,40",  # unknown button and state: not a move
        ]
    )
    s = parse_session(io.StringIO(text))
    assert s.t_ms.tolist() == [100.0, 200.0, 270.0, 300.0]
    assert s.x.tolist() == [10, 10, 10, 30] and s.y.tolist() == [10, 10, 10, 30]
    assert s.skipped == 3
    assert len(parse_session(io.StringIO(""))) == 0


def test_balabit_reader_takes_other_spellings_of_the_same_rows() -> None:
    canonical = parse_session(
        io.StringIO(
            "\n".join([HEADER, "0.1,0.1,Left,Pressed,10,10", "0.2,0.2,Left,Released,12,10"])
        )
    )
    for rows in (
        ["0.1,0.1,left,pressed,10,10", "0.2,0.2,LEFT,RELEASED,12,10"],  # other case
        ["0.1,0.1, Left, Pressed,10,10", " 0.2,0.2,Left ,Released ,12,10"],  # spaces
        ["0.1,0.1,Left,Pressed,10,10,", "0.2,0.2,Left,Released,12,10,"],  # trailing comma
    ):
        s = parse_session(io.StringIO("\n".join([HEADER, *rows])))
        assert s.button.tolist() == canonical.button.tolist(), rows
        assert s.state.tolist() == canonical.state.tolist(), rows
        assert s.t_ms.tolist() == canonical.t_ms.tolist(), rows


@pytest.mark.parametrize(
    "extra",
    [
        ["--holdout", "0"],
        ["--enroll-fraction", "1"],
        ["--enroll-fraction", "0"],
        ["--window-seconds", "0"],
        ["--max-impostor-seconds", "-1"],
    ],
)
def test_takeover_rejects_options_that_leave_nothing_to_measure(
    keystroke_dirs: tuple[Path, Path], extra: list[str]
) -> None:
    _, test = keystroke_dirs
    assert main(["evaluate", "takeover", "--keystrokes", str(test), *extra]) == 2


def test_takeover_names_mouse_accounts_it_leaves_out(
    balabit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["evaluate", "takeover", "--mouse", str(balabit_dir / "test_files")])
    assert code == NOTHING_JUDGED
    err = capsys.readouterr().err
    assert "skipped mouse account user9: 1 sessions" in err  # one session: nothing to enrol


def test_takeover_names_accounts_without_a_single_event(
    keystroke_dirs: tuple[Path, Path], balabit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, test = keystroke_dirs
    (test / "kim").mkdir()
    (test / "kim" / "notes.txt").write_text("not a recording")
    assert main(["evaluate", "takeover", "--keystrokes", str(test)]) == NOTHING_JUDGED
    err = capsys.readouterr().err
    assert "skipped keystroke account ivy: 1 files without a key event" in err
    assert "skipped keystroke account kim: no .csv files" in err
    mute = balabit_dir / "test_files" / "user8"
    mute.mkdir()
    (mute / "session_80").write_text(HEADER + "\n")
    (mute / "session_81").write_bytes(b"")
    assert (
        main(["evaluate", "takeover", "--mouse", str(balabit_dir / "test_files")]) == NOTHING_JUDGED
    )
    assert "skipped mouse account user8: 2 sessions without a pointer event" in (
        capsys.readouterr().err
    )


def test_takeover_reports_the_rows_the_keystroke_reader_left_out(
    keystroke_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """As `evaluate keystrokes` does; the counts used to be thrown away."""
    _, test = keystroke_dirs
    _rewrite(test / "ann" / "twitter.csv", lambda lines: [*lines, "down,'a'", *lines[1:]])
    _rewrite(test / "bob" / "twitter.csv", lambda lines: lines[:1] + [x[:-6] for x in lines[1:]])
    assert main(["evaluate", "takeover", "--keystrokes", str(test)]) == NOTHING_JUDGED
    err = capsys.readouterr().err
    assert f"{test}: skipped 1 rows that did not parse" in err
    assert f"{test}: skipped 240 duplicate rows" in err
    assert "skipped file bob/twitter under" in err and "not in nanoseconds" in err


def test_takeover_without_heldout_time_measures_no_false_alarm_rate(
    keystroke_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every window enrols: "0 false alarms in 0.0 h" used to exit 0, as if measured."""
    _, test = keystroke_dirs
    code = main(["evaluate", "takeover", "--keystrokes", str(test), "--enroll-fraction", "0.99"])
    captured = capsys.readouterr()
    assert code == 1
    assert "keystrokes: 0 h of held-out genuine activity" in captured.err
    assert "0 in 0.0 h" in captured.out.strip().splitlines()[-1]  # the figures are still shown


def test_takeover_names_owners_whose_profile_never_became_active(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kept in the figures (an account that cannot enrol is unprotected), but named."""
    root = tmp_path / "typing"
    for i, (user, flight) in enumerate({"ann": 120.0, "bob": 260.0, "cid": 400.0}.items()):
        for part in range(2):  # two sessions of 70 % x 1 200 presses: enough to enrol
            _typing(root / user / f"s{part}.csv", 1200, flight, seed=10 * i + part)
    _typing(root / "eve" / "s0.csv", 200, 200.0, seed=99)  # far too little
    out = tmp_path / "takeover.json"
    assert main(["evaluate", "takeover", "--keystrokes", str(root), "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "keystrokes: 1 owners whose profile never became active" in err
    assert err.rstrip().endswith("stay in the figures): eve")
    (result,) = json.loads(out.read_text())
    assert result["owners_never_active"] == ["eve"]
    assert result["figures"]["owners_never_active"] == 1
    # Genuine time is the windows an active profile judged: eve's profile judged none.
    runs = {g["owner"]: g for g in result["genuine"]}
    assert all(g["seconds"] == g["judged"] * 5.0 >= g["scored"] * 5.0 for g in runs.values())
    assert runs["eve"]["judged"] == 0 and runs["ann"]["judged"] > runs["ann"]["scored"] > 0
    # Still counted: every takeover of eve's account is a miss.
    eve = [t for t in result["takeovers"] if t["owner"] == "eve"]
    assert len(eve) == 3 and not any(t["detected"] for t in eve)


def test_keystrokes_name_a_user_folder_without_recordings(
    keystroke_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    enroll, test = keystroke_dirs
    (test / "kim").mkdir()
    (test / "kim" / "notes.txt").write_text("not a recording")
    main(["evaluate", "keystrokes", "--enroll", str(enroll), "--test", str(test), "--window", "20"])
    assert "skipped kim: no .csv files under" in capsys.readouterr().err


def test_takeover_writes_json_into_a_new_directory(
    keystroke_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, test = keystroke_dirs
    out = tmp_path / "fresh dir" / "takeover.json"
    code = main(["evaluate", "takeover", "--keystrokes", f"{test}/", "--json", str(out)])
    assert code == NOTHING_JUDGED

    def not_standard_json(constant: str) -> None:
        raise AssertionError(f"{constant} is not standard JSON")

    # Strict parsers (jq, JavaScript) reject Infinity/NaN: undetected pairs must be null.
    payload = json.loads(out.read_text(), parse_constant=not_standard_json)
    assert payload[0]["figures"]["modality"] == "keystrokes"
    assert "takeover keystrokes" in capsys.readouterr().out.strip().splitlines()[-1]


def test_desk_needs_both_modalities(keystroke_dirs: tuple[Path, Path]) -> None:
    _, test = keystroke_dirs
    assert main(["evaluate", "takeover", "--keystrokes", str(test), "--desk"]) == 2


def test_desk_pairs_typists_with_pointers_and_fuses_them(
    keystroke_dirs: tuple[Path, Path],
    balabit_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    enroll, _ = keystroke_dirs
    out = tmp_path / "desk.json"
    code = main(
        [
            "evaluate", "takeover", "--keystrokes", str(enroll),
            "--mouse", str(balabit_dir / "test_files"), "--desk", "--json", str(out),
            "--plot", str(tmp_path / "ttd.png"),
        ]
    )  # fmt: skip
    assert code == NOTHING_JUDGED
    assert (tmp_path / "ttd.png").read_bytes()[:4] == b"\x89PNG"  # one curve per run
    keys, mouse, desk = json.loads(out.read_text())
    assert [r["figures"]["modality"] for r in (keys, mouse, desk)] == [
        "keystrokes", "mouse", "desk"
    ]  # fmt: skip
    # Three mouse accounts can enrol (user9 has one session), so three desks: the first
    # three typists in name order, each with one pointer, each desk attacking the others.
    owners = [g["owner"] for g in desk["genuine"]]
    assert owners == ["ann+user1", "bob+user2", "cid+user3"]
    assert desk["figures"]["pairs"] == 6
    # A desk's held-out time is both people's held-out windows, alternating.
    by_name = {g["owner"]: g for g in keys["genuine"] + mouse["genuine"]}
    for g in desk["genuine"]:
        typist, pointer = g["owner"].split("+")
        assert g["windows"] == by_name[typist]["windows"] + by_name[pointer]["windows"]
    assert "takeover desk" in capsys.readouterr().out.strip().splitlines()[-1]


# --- mouse: files this reader cannot take as they are -----------------------------------


def _rewrite_rows(path: Path, row: Callable[[int, list[str]], list[str] | None]) -> None:
    """Each line's fields through ``row`` (line 0 is the header; None drops the line)."""
    lines = path.read_text().splitlines()
    kept = [row(i, line.split(",")) for i, line in enumerate(lines)]
    path.write_text("\n".join(",".join(f) for f in kept if f is not None) + "\n")


def _half_broken(i: int, f: list[str]) -> list[str]:
    """Every other data row without its y."""
    return f if i == 0 or i % 2 else [*f[:5], ""]


def _in_ms(i: int, f: list[str]) -> list[str]:
    """Client times in milliseconds."""
    return f if i == 0 else [f[0], repr(float(f[1]) * 1000), *f[2:]]


FOUR = [("session_01", "0"), ("session_11", "0"), ("session_02", "1"), ("session_12", "1")]


def _evaluate_mouse(root: Path, labels: Path, out: Path) -> int:
    return main(
        ["evaluate", "mouse", "--data", str(root), "--labels", str(labels), "--json", str(out)]
    )


def test_mouse_reports_rows_it_cannot_read_and_sessions_with_none(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = balabit_dir / "test_files"
    # Half the rows of one session lose their y; every row of another gains a column
    # its header does not have.
    _rewrite_rows(tests / "user1" / "session_01", _half_broken)
    _rewrite_rows(tests / "user2" / "session_12", lambda i, f: f if i == 0 else [*f, "7"])
    half = (tests / "user1" / "session_01").read_text().count("\n") // 2
    labels = _labels(tmp_path / "l.csv", [*FOUR, ("session_21", "0"), ("session_22", "1")])
    out = tmp_path / "m.json"
    assert _evaluate_mouse(balabit_dir, labels, out) == 0
    err = capsys.readouterr().err
    payload = json.loads(out.read_text())
    assert (
        f"{tests}: skipped {payload['rows_skipped']['test_files']} rows that did not parse" in err
    )
    assert payload["rows_skipped"]["test_files"] >= half
    assert "session_01" in payload["scores"]  # what is left of it is still a session
    rows = (tests / "user2" / "session_12").read_text().count("\n") - 1
    reason = f"account user2: {rows} data rows, none readable"
    assert payload["skipped"] == {"session_12": reason} and payload["sessions_unusable"] == 1
    assert f"skipped session_12: {reason}" in err
    assert payload["sessions"] == 5 and "session_12" not in payload["scores"]


def test_mouse_refuses_sessions_in_milliseconds_and_names_them(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _rewrite_rows(balabit_dir / "test_files" / "user1" / "session_02", _in_ms)
    _rewrite_rows(balabit_dir / "training_files" / "user3" / "session_20", _in_ms)
    labels = _labels(tmp_path / "l.csv", [*FOUR, ("session_21", "0")])
    out = tmp_path / "m.json"
    assert _evaluate_mouse(balabit_dir, labels, out) == 0
    err = capsys.readouterr().err
    assert "skipped enrolment user3/session_20: client timestamp not in seconds" in err
    payload = json.loads(out.read_text())
    assert "milliseconds" in payload["skipped"]["session_02"]
    assert payload["skipped"]["session_21"] == "account user3: no usable enrolment"
    assert sorted(payload["scores"]) == ["session_01", "session_11", "session_12"]


def test_mouse_exits_non_zero_when_most_sessions_have_no_usable_action(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A 7th column in the test files only, header unchanged: before, "AUC 0.500", exit 0.
    for path in (balabit_dir / "test_files").glob("*/session_[0-9]*"):
        _rewrite_rows(path, lambda i, f: f if i == 0 else [*f, "7"])
    labels = _labels(tmp_path / "l.csv", FOUR)
    out = tmp_path / "m.json"
    assert _evaluate_mouse(balabit_dir, labels, out) == 1
    err = capsys.readouterr().err
    assert "not a measurement: 4 of 4 labelled sessions have no usable action (4 unreadable" in err
    assert json.loads(out.read_text())["sessions_unusable"] == 4


def test_mouse_skips_session_directories_and_names_unreadable_files(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (balabit_dir / "training_files" / "user1" / "session_notes").mkdir()
    (balabit_dir / "test_files" / "user2" / "session_dir").mkdir()
    (balabit_dir / "training_files" / "user2" / "session_lost").symlink_to(tmp_path / "x")
    (balabit_dir / "test_files" / "user1" / "session_gone").symlink_to(tmp_path / "y")
    labels = _labels(tmp_path / "l.csv", [*FOUR, ("session_gone", "1"), ("session_dir", "0")])
    out = tmp_path / "m.json"
    assert _evaluate_mouse(balabit_dir, labels, out) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "skipped enrolment user2/session_lost: cannot read the file" in err
    payload = json.loads(out.read_text())
    assert payload["skipped"]["session_gone"].startswith("account user1: cannot read the file")
    assert payload["skipped"]["session_dir"] == "labelled, but no such file under test_files"
    assert payload["sessions"] == 4


def test_takeover_reports_mouse_rows_and_sessions_it_cannot_use(
    balabit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = balabit_dir / "test_files"
    _rewrite_rows(tests / "user1" / "session_01", _half_broken)
    _rewrite_rows(tests / "user2" / "session_11", _in_ms)
    (tests / "user3" / "session_dir").mkdir()
    (tests / "user3" / "session_gone").symlink_to(tmp_path / "nowhere")
    assert main(["evaluate", "takeover", "--mouse", str(tests)]) == NOTHING_JUDGED
    err = capsys.readouterr().err
    assert f"{tests}: skipped " in err and " rows that did not parse" in err
    assert "skipped mouse session user2/session_11: client timestamp not in seconds" in err
    assert "skipped mouse session user3/session_gone: cannot read the file" in err


def test_takeover_can_hold_out_each_typists_last_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another day's typing (here another platform) as the genuine held-out part: the
    last file in name order, the others enrol; one file only is named and left out."""
    root = tmp_path / "typing"
    for i, (user, flight) in enumerate({"ann": 120.0, "bob": 260.0, "cid": 400.0}.items()):
        _typing(root / user / "facebook.csv", 2000, flight, seed=10 * i)
        _typing(root / user / "instagram.csv", 400, flight, seed=10 * i + 1)
    _typing(root / "eve" / "facebook.csv", 2000, 200.0, seed=99)  # nothing to hold out
    out = tmp_path / "takeover.json"
    args = ["evaluate", "takeover", "--keystrokes", str(root), "--json", str(out)]
    assert main([*args, "--keystroke-holdout", "file"]) == 0
    err = capsys.readouterr().err
    assert "skipped keystroke account eve: 1 recording" in err
    # One recording to enrol on: a policy asking two sessions would never score anyone.
    assert "enrolment asks 1 session(s), not 2" in err
    (result,) = json.loads(out.read_text())
    assert result["owners_never_active"] == []
    genuine = {g["owner"]: g for g in result["genuine"]}
    assert sorted(genuine) == ["ann", "bob", "cid"]
    # Held out: the instagram file alone (~400 presses), not 30 % of both recordings.
    tail = tmp_path / "tail.json"
    assert main(["evaluate", "takeover", "--keystrokes", str(root), "--json", str(tail)]) == 0
    (by_time,) = json.loads(tail.read_text())
    held = {g["owner"]: g["seconds"] for g in by_time["genuine"]}
    assert all(genuine[u]["seconds"] < held[u] for u in genuine)
    assert {t["attacker"] for t in result["takeovers"]} == {"ann", "bob", "cid"}


def test_the_default_takeover_protocol_keeps_the_shipped_enrolment_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one-session policy is --keystroke-holdout file's: in the default protocol a
    typist with one recording is a profile that never becomes active under the shipped
    policy (so reported), not a reason to lower the bar for every typist."""
    root = tmp_path / "typing"
    for i, (user, flight) in enumerate({"ann": 120.0, "bob": 260.0, "cid": 400.0}.items()):
        _typing(root / user / "facebook.csv", 600, flight, seed=10 * i)
        _typing(root / user / "instagram.csv", 600, flight, seed=10 * i + 1)
    _typing(root / "eve" / "facebook.csv", 1200, 200.0, seed=99)  # one recording only
    out = tmp_path / "takeover.json"
    assert (
        main(["evaluate", "takeover", "--keystrokes", str(root), "--json", str(out)])
        == NOTHING_JUDGED
    )
    err = capsys.readouterr().err
    assert "enrolment asks" not in err
    (result,) = json.loads(out.read_text())
    assert "eve" in result["owners_never_active"]
