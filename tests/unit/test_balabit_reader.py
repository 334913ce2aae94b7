"""The Balabit reader counts the rows it cannot read, and keeps exactly the rows it kept before."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from collectors.datasets.balabit import parse_session
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
