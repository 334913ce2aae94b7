"""The Balabit reader counts the rows it cannot read, and keeps exactly the rows it kept before."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from collectors.datasets.balabit import STATES, iter_sessions, load_session, parse_session
from collectors.replay import mouse_recordings

HEADER = "record timestamp,client timestamp,button,state,x,y\n"
GOOD = [
    "0.0,0.0,NoButton,Move,10,10",
    "0.4,0.4,NoButton,Move,40,12",
    "0.5,0.5,Left,Pressed,40,12",
]
BROKEN = [
    "0.1,0.1,NoButton,Move,20,,",  # empty y (and a trailing empty field)
    ".2,0.2,Left,Pressed,20,10",  # a record time that is not read as a number
    "0.3,0.3,Left,Released,30,",  # empty y
    "0.35,nan,NoButton,Move,1,1",  # a client time that is not a time
    "0.36,0.36,NoButton,Move,x1,1",  # garbled x
    "0.37;0.37;NoButton;Move;1;1",  # wrong separator: one field
]


def test_unreadable_rows_are_counted_and_the_rest_kept() -> None:
    text = HEADER + "\n".join([GOOD[0], *BROKEN, "", *GOOD[1:]]) + "\n"
    s = parse_session(io.StringIO(text))
    assert s.skipped == len(BROKEN)  # blank lines and the header are not rows
    assert s.t_ms.tolist() == [0.0, 400.0, 500.0]
    assert s.x.tolist() == [10, 40, 40]


def test_clean_files_and_duplicates_skip_nothing() -> None:
    assert parse_session(io.StringIO(HEADER + "\n".join(GOOD * 2))).skipped == 0
    assert parse_session(io.StringIO("")).skipped == 0
    assert parse_session(io.StringIO(HEADER)).skipped == 0
    # No header at all: a broken line after the first data row is still counted.
    assert parse_session(io.StringIO("\n".join([GOOD[0], BROKEN[1], *GOOD[1:]]))).skipped == 1


def test_a_file_of_broken_rows_only_is_empty_and_says_so() -> None:
    s = parse_session(io.StringIO(HEADER + "\n".join(BROKEN)))
    assert len(s) == 0 and s.skipped == len(BROKEN)


def test_the_replay_reports_skipped_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "user1").mkdir()
    session = tmp_path / "user1" / "session_1"
    session.write_text(HEADER + "\n".join([*GOOD, *BROKEN[:2]]))
    [rec] = mouse_recordings(tmp_path)
    with caplog.at_level(logging.WARNING, logger="collectors.replay"):
        episode = rec.load()
    assert len(episode) == len(GOOD)
    assert [r.getMessage() for r in caplog.records] == [
        f"{session}: skipped 2 rows that did not parse"
    ]


# --- columns located by the header's names ---------------------------------------------

CLICK = [
    "0.0,0.0,NoButton,Move,10,10",
    "0.02,0.016,NoButton,Move,12,11",
    "0.05,0.032,Left,Pressed,12,11",
    "0.09,0.081,Left,Released,14,12",
]
COLUMN_NAMES = HEADER.strip().split(",")


def _columns(order: list[int], extra: str | None = None, header: bool = True) -> str:
    """CLICK with its columns in ``order`` (indices into the canonical six), plus one."""
    rows = [COLUMN_NAMES] if header else []
    rows += [r.split(",") for r in CLICK]
    out = []
    for i, fields in enumerate(rows):
        picked = [fields[k] for k in order]
        if extra is not None:
            picked.insert(len(picked) // 2, extra if i or not header else " Screen ")
        out.append(",".join(picked))
    return "\n".join(out) + "\n"


def _same(a: object, b: object) -> bool:
    fields = ("t_ms", "x", "y", "button", "state")
    return all(getattr(a, f).tolist() == getattr(b, f).tolist() for f in fields)


@pytest.mark.parametrize(
    "order, extra",
    [
        ([1, 0, 2, 3, 4, 5], None),  # the two times swapped: read the other one silently
        ([4, 5, 3, 2, 1, 0], None),  # every column elsewhere
        ([0, 1, 2, 3, 4, 5], "7"),  # an extra column in the middle: every row dropped
        ([1, 2, 3, 4, 5], None),  # no record timestamp at all
    ],
)
def test_columns_are_found_by_their_header_names(order: list[int], extra: str | None) -> None:
    canonical = parse_session(io.StringIO(HEADER + "\n".join(CLICK)))
    s = parse_session(io.StringIO(_columns(order, extra)))
    assert s.skipped == 0 and not s.refused
    assert _same(s, canonical)
    assert s.t_ms.tolist() == [0.0, 16.0, 32.0, 81.0]  # the client time, not the record time


def test_header_names_are_matched_as_the_labels_header_is() -> None:
    canonical = parse_session(io.StringIO(HEADER + "\n".join(CLICK)))
    spelled = "\ufeff Client Timestamp ,RECORD TIMESTAMP,button,state,x,y,\n"
    rows = [",".join([r.split(",")[1], r.split(",")[0], *r.split(",")[2:]]) + "," for r in CLICK]
    assert _same(parse_session(io.StringIO(spelled + "\n".join(rows))), canonical)


def test_files_without_a_header_our_names_are_read_by_position() -> None:
    canonical = parse_session(io.StringIO(HEADER + "\n".join(CLICK)))
    headerless = parse_session(io.StringIO("\n".join(CLICK)))
    assert _same(headerless, canonical) and headerless.skipped == 0
    # A header of other words, or ours with a column renamed in place, is as before.
    for header in ("t0,t1,b,s,px,py\n", "record_timestamp,client_timestamp,button,state,x,y\n"):
        s = parse_session(io.StringIO(header + "\n".join(CLICK)))
        assert _same(s, canonical) and s.skipped == 0


def test_a_header_naming_some_columns_elsewhere_is_refused_not_guessed() -> None:
    text = "y,x,state,button,time,extra\n" + "\n".join(
        ",".join([f[5], f[4], f[3], f[2], f[1], "0"]) for f in (r.split(",") for r in CLICK)
    )
    s = parse_session(io.StringIO(text))
    assert len(s) == 0 and s.skipped == len(CLICK)
    assert (
        s.refused
        == "header does not name record timestamp, client timestamp (only button, state, x, y)"
    )
    assert s.unusable == s.refused


# --- time unit --------------------------------------------------------------------------


def _moves(n: int, step_s: float, scale: float = 1.0) -> str:
    rows = [
        f"{i * step_s * scale!r},{i * step_s * scale!r},NoButton,Move,{i},{i}" for i in range(n)
    ]
    return HEADER + "\n".join(rows) + "\n"


def test_client_times_in_milliseconds_are_refused() -> None:
    seconds = parse_session(io.StringIO(_moves(200, 0.016)))
    assert len(seconds) == 200 and not seconds.unusable
    ms = parse_session(io.StringIO(_moves(200, 0.016, scale=1000.0)))
    assert len(ms) == 0 and ms.skipped == 0
    assert "not in seconds" in ms.unusable and "milliseconds" in ms.unusable
    # A slow pointer is still seconds: a step of 0.5 s is 30 times the recordings' usual.
    assert len(parse_session(io.StringIO(_moves(20, 0.5)))) == 20


# --- names the reader does not know -------------------------------------------------------


def test_unknown_button_or_state_names_are_unreadable_rows_not_moves() -> None:
    text = HEADER + "\n".join(
        [
            "0.0,0.0,NoButton,Move,10,10",
            "0.1,0.1,Left,Press,10,10",  # another export's spelling
            "0.2,0.2,Left,Release,10,10",
            "0.3,0.3,Pen,Move,12,10",
            "0.4,0.4,left, pressed ,12,10",  # known, other case and spaces
        ]
    )
    s = parse_session(io.StringIO(text))
    assert s.skipped == 3
    assert s.t_ms.tolist() == [0.0, 400.0]
    assert [STATES[k] for k in s.state] == ["Move", "Pressed"]
    everything_unknown = parse_session(io.StringIO(HEADER + "0.1,0.1,Left,Press,1,1\n"))
    assert (
        len(everything_unknown) == 0 and everything_unknown.unusable == "1 data rows, none readable"
    )


# --- files in the layout -------------------------------------------------------------------


def test_directories_are_not_sessions_and_unreadable_files_are_named(tmp_path: Path) -> None:
    user = tmp_path / "test_files" / "user1"
    user.mkdir(parents=True)
    (user / "session_1").write_text(HEADER + "\n".join(GOOD))
    (user / "session_dir").mkdir()  # a directory named like a session
    (user / "session_gone").symlink_to(tmp_path / "nowhere")  # a dangling link
    refs = list(iter_sessions(tmp_path, "test_files"))
    assert [r.session_id for r in refs] == ["session_1", "session_gone"]
    good, gone = (load_session(r.path) for r in refs)
    assert len(good) == len(GOOD) and not good.unusable
    assert len(gone) == 0 and gone.unusable.startswith("cannot read the file")


def test_sparse_input_in_seconds_is_not_taken_for_milliseconds() -> None:
    # A session of a short movement, then a notch of the wheel every 1.2 s while reading:
    # its median step is 1.2 s, which the median rule refused as "milliseconds?".
    header = "record timestamp,client timestamp,button,state,x,y\n"
    rows = [f"{i / 60:.4f},{i / 60:.4f},NoButton,Move,{i},{i}" for i in range(20)]
    rows += [f"{1 + 1.2 * i:.4f},{1 + 1.2 * i:.4f},Scroll,Down,0,0" for i in range(30)]
    s = parse_session(io.StringIO(header + "\n".join(rows) + "\n"))
    assert s.refused == "" and len(s) == 50
    # Three moves two seconds apart say nothing about the unit.
    few = [f"{2 * i},{2 * i},NoButton,Move,{i},{i}" for i in range(3)]
    assert parse_session(io.StringIO(header + "\n".join(few) + "\n")).refused == ""
    # The same movement written in milliseconds is still refused.
    ms = [f"{i * 16},{i * 16},NoButton,Move,{i},{i}" for i in range(40)]
    assert "not in seconds" in parse_session(io.StringIO(header + "\n".join(ms) + "\n")).refused
