"""The free-text keystroke reader on the odd files a held-out capture may contain.

Whatever the rows, the reader must return arrays (unknown keys as class ``other``,
unparseable rows skipped and counted) and the evaluation pipeline must accept them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.datasets.freetext import iter_sessions, read_session
from collectors.keyclass import CLASS_CODES, N_CLASSES, OTHER
from profiles.keystrokes import KeystrokeEvents
from profiles.keystrokes.binning import window_cells
from profiles.keystrokes.events import pair_presses
from profiles.keystrokes.windows import iter_windows

ODD_KEYS = [
    "'a'",
    "Key.space",
    "'\\x01'",
    "<65027>",
    "<96>",
    "Key.media_volume_up",
    "Key.no_such_key",
    "'é'",
    "'ß'",
    '"\'"',
    "','",
    "'\"'",
    "",
    "Key.",
    "<>",
    "'",
]


def _write(path: Path, rows: list[list[str]], *, bom: bool = False, crlf: bool = False) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8", newline="")
    return path


def _pipeline(path: Path, n_presses: int = 5) -> int:
    """Read a file and run it through pairing, windowing and binning; return windows made."""
    s = read_session(path)
    events = KeystrokeEvents.from_ns(s.t_ns, s.is_down, s.key_class)
    windows = list(iter_windows(pair_presses(events), n_presses))
    for w in windows:
        window_cells(w)
    return len(windows)


def test_odd_keys_map_to_a_class(tmp_path: Path) -> None:
    rows = [["type", "key", "t_ns"]]
    t = 1_000_000_000
    for key in ODD_KEYS:
        rows += [["down", key, str(t)], ["up", key, str(t + 80_000_000)]]
        t += 200_000_000
    s = read_session(_write(tmp_path / "odd.csv", rows))
    assert s.t_ns.size == 2 * len(ODD_KEYS)
    assert s.skipped == 0
    by_key = dict(zip(ODD_KEYS, s.key_class[::2].tolist(), strict=True))
    assert by_key["'a'"] == CLASS_CODES["L_home"]
    assert by_key["Key.space"] == CLASS_CODES["space"]
    assert by_key["<96>"] == CLASS_CODES["digit"]
    for key in ("<65027>", "Key.media_volume_up", "Key.no_such_key", "'é'", "", "'\\x01'"):
        assert by_key[key] == OTHER, key


def test_unquoted_comma_key_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "comma.csv"
    path.write_text("type,key,t_ns\ndown,',',1000\nup,',',2000\n", encoding="utf-8")
    s = read_session(path)
    assert s.key_class.tolist() == [OTHER, OTHER]
    assert s.skipped == 0


def test_bom_and_crlf_lose_no_row(tmp_path: Path) -> None:
    # Without a header the BOM sits on the first data row: it must still count.
    rows = [["down", "'q'", "10"], ["up", "'q'", "20"], ["down", "Key.enter", "30"]]
    plain = read_session(_write(tmp_path / "plain.csv", rows))
    odd = read_session(_write(tmp_path / "odd.csv", rows, bom=True, crlf=True))
    assert plain.t_ns.tolist() == odd.t_ns.tolist() == [10, 20, 30]
    assert odd.key_class.tolist() == plain.key_class.tolist()


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    _write(tmp_path / "header.csv", [["type", "key", "t_ns"]])
    for name in ("empty.csv", "header.csv"):
        s = read_session(tmp_path / name)
        assert s.t_ns.size == 0 and s.skipped == 0 and s.t_ms.size == 0
        assert _pipeline(tmp_path / name) == 0


def test_broken_rows_are_counted(tmp_path: Path) -> None:
    rows = [
        ["type", "key", "t_ns"],
        ["down", "'a'", "100"],
        ["down", "'a'"],  # truncated
        ["press", "'a'", "110"],  # unknown event type
        ["up", "'a'", "soon"],  # unparseable time
        ["up", "'a'", str(2**70)],  # beyond int64
        ["up", "'a'", "-5"],
        ["up", "'a'", "200"],
    ]
    s = read_session(_write(tmp_path / "broken.csv", rows))
    assert s.t_ns.tolist() == [100, 200]
    assert s.skipped == 5


def test_iter_sessions_takes_upper_case_suffix_and_ignores_other_files(tmp_path: Path) -> None:
    user = tmp_path / "user 1"
    user.mkdir()
    _write(user / "twitter.CSV", [["down", "'a'", "1"]])
    (user / "notes.txt").write_text("not a recording")
    (tmp_path / "stray.csv").write_text("down,'a',1\n")
    found = [(u, s) for u, s, _ in iter_sessions(tmp_path)]
    assert found == [("user 1", "twitter")]


# No bare line breaks in generated fields: csv.writer leaves a "\r" unquoted when the
# line terminator is "\n", so one generated row would truly be two lines in the file and
# the row count below would no longer be the file's.
# Nor lone surrogates: they cannot be written as UTF-8 at all, so no file holds them.
_field = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=6
)
_key = st.one_of(
    st.sampled_from(ODD_KEYS),
    _field,
    st.from_regex(r"Key\.[a-z_0-9]{0,12}", fullmatch=True),
    st.from_regex(r"<[0-9]{1,6}>", fullmatch=True),
)
_row = st.one_of(
    st.tuples(
        st.sampled_from(["down", "up"]),
        _key,
        # Mostly plausible times, duplicated and out of order, some absurd.
        st.one_of(
            st.integers(10**18, 10**18 + 10**10).map(str),
            st.integers(-(2**65), 2**65).map(str),
            _field,
        ),
    ).map(list),
    st.lists(_field, max_size=5),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(_row, max_size=80),
    bom=st.booleans(),
    crlf=st.booleans(),
    header=st.booleans(),
    duplicate=st.booleans(),
)
def test_any_rows_read_and_flow_through_the_pipeline(
    tmp_path: Path,
    rows: list[list[str]],
    bom: bool,
    crlf: bool,
    header: bool,
    duplicate: bool,
) -> None:
    if duplicate:
        rows = rows + rows  # whole-file duplication, as after a double export
    if header:
        rows = [["type", "key", "t_ns"], *rows]
    path = _write(tmp_path / "gen.csv", rows, bom=bom, crlf=crlf)
    s = read_session(path)
    n = s.t_ns.size
    assert s.is_down.shape == s.key_class.shape == (n,)
    assert np.all(np.diff(s.t_ns) >= 0)
    assert np.all((s.key_class >= 0) & (s.key_class < N_CLASSES))
    # Every data row is either kept or counted; only headers and blank rows are neither.
    data_rows = [r for r in rows if r and "".join(r).strip() and r[0].strip().lower() != "type"]
    assert n + s.skipped <= len(data_rows)
    assert _pipeline(path) >= 0
