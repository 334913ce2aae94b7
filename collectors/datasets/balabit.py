"""Reader for the Balabit Mouse Dynamics Challenge layout.

A session file is a CSV with the header
``record timestamp,client timestamp,button,state,x,y``: seconds since the
session start, the button (``NoButton``/``Left``/``Right``/``Middle``/``Scroll``/
``XButton``), the state (``Move``/``Pressed``/``Released``/``Drag``/``Down``/``Up``)
and screen coordinates. The recordings come from an RDP monitor and carry the
usual mess, which :func:`read_session` cleans:

- rows are stably sorted by client timestamp (a few are out of order);
- duplicated rows (same time, same event, same position) are dropped;
- sentinel coordinates (``65535`` while dragging off-screen) are replaced by the
  last valid position, so they never become a 60 000-pixel jump;
- scroll rows keep their button/state codes; their ``x, y`` (often ``0, 0``) are
  replaced by the current pointer position;
- rows that cannot be read (a time that is not a number, an empty or garbled ``x`` or
  ``y``, a wrong number of fields, a button or state name not listed above) are dropped
  and counted in ``skipped``.

Columns are found by their header names (any order, other columns ignored); a file
without a header is read by position, in the order above. A session is *refused* (empty,
with the reason in ``refused``) rather than read wrongly when its header names some of
the columns but not where the others are, or when its client times are not in seconds.

Nothing here imports :mod:`profiles`: the arrays are plain numpy so that the
evaluation and the stream processor can wrap them in their own types.

>>> import io
>>> text = '''record timestamp,client timestamp,button,state,x,y
... 0.0,0.0,NoButton,Move,10,10
... 0.1,0.1,NoButton,Move,20,10
... 0.1,0.1,NoButton,Move,20,10
... 0.2,0.2,Left,Pressed,20,10
... 0.3,0.25,NoButton,Drag,65535,65535
... 0.3,0.3,Left,Released,30,12
... 0.4,0.4,Scroll,Down,0,0
... '''
>>> s = parse_session(io.StringIO(text))
>>> s.t_ms.tolist()
[0.0, 100.0, 200.0, 250.0, 300.0, 400.0]
>>> s.x.tolist(), s.y.tolist()
([10, 20, 20, 20, 30, 30], [10, 10, 10, 10, 12, 12])
>>> [BUTTONS[b] for b in s.button], [STATES[k] for k in s.state]
(['NoButton', 'NoButton', 'Left', 'NoButton', 'Left', 'Scroll'], ['Move', 'Move', 'Pressed', 'Drag', 'Released', 'Down'])
"""

from __future__ import annotations

import csv
import functools
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

#: Button codes, index = code stored in :attr:`BalabitSession.button`.
BUTTONS: tuple[str, ...] = ("NoButton", "Left", "Right", "Middle", "Scroll", "XButton")
#: State codes, index = code stored in :attr:`BalabitSession.state`.
STATES: tuple[str, ...] = ("Move", "Pressed", "Released", "Drag", "Down", "Up")

_BUTTON_CODE = {name: code for code, name in enumerate(BUTTONS)}
_STATE_CODE = {name: code for code, name in enumerate(STATES)}
_SCROLL = _BUTTON_CODE["Scroll"]
# Other exports of the same recordings write "left" or " Pressed": matched case- and
# space-insensitively, so a click is never read as a move.
_BUTTON_FOLDED = {name.lower(): code for name, code in _BUTTON_CODE.items()}
_STATE_FOLDED = {name.lower(): code for name, code in _STATE_CODE.items()}


#: A name neither table knows: the row is unreadable (a "Press" read as a move would
#: turn every click into pointer motion).
UNKNOWN = -1


def _codes(names: tuple[str, ...], exact: dict[str, int], folded: dict[str, int]) -> np.ndarray:
    get = exact.get
    if all(name in exact for name in set(names)):  # the recordings' own spelling: fast
        return np.fromiter((get(name, 0) for name in names), np.int8, len(names))
    fold = folded.get
    return np.fromiter((fold(name.strip().lower(), UNKNOWN) for name in names), np.int8, len(names))


#: Header names (stripped, lower case) in the order of the fields of a parsed row.
COLUMNS: tuple[str, ...] = ("record timestamp", "client timestamp", "button", "state", "x", "y")

RowReader = Callable[[list[str]], list[str] | None]


def _row(r: list[str]) -> list[str] | None:
    """The six fields of a data row (a trailing empty field dropped), or None."""
    if len(r) == 7 and not r[6].strip():
        r = r[:6]
    return r if len(r) == 6 and r[0].strip()[:1].isdigit() else None


def _picked_row(index: tuple[int, ...], width: int, r: list[str]) -> list[str] | None:
    """As :func:`_row` for a file whose header puts the columns at ``index``."""
    if len(r) == width + 1 and not r[width].strip():
        r = r[:width]
    if len(r) != width or not r[index[0]].strip()[:1].isdigit():
        return None
    return [r[i] for i in index]


def _no_row(r: list[str]) -> None:
    return None


def _layout(header: list[str]) -> tuple[RowReader, str]:
    """How to read the data rows under ``header``, and why not ('' when they can be read).

    By name when the header names the columns (a swapped pair or an extra column would
    otherwise be read as the wrong quantity, or drop every row); by position, as before,
    when it names none of them, or only renames some in place (``record_timestamp``).
    """
    names = [h.replace("\ufeff", "").strip().lower() for h in header]
    while names and not names[-1]:  # a trailing comma
        names.pop()
    if tuple(names) == COLUMNS:
        return _row, ""
    found = [c for c in COLUMNS if c in names]
    missing = [c for c in COLUMNS if c not in names]
    if not missing or missing == ["record timestamp"]:
        # The record time is only the row check; the client time can be that too.
        index = tuple(names.index(c if c in names else "client timestamp") for c in COLUMNS)
        return functools.partial(_picked_row, index, len(names)), ""
    if not found or (
        len(names) == len(COLUMNS) and all(names[COLUMNS.index(c)] == c for c in found)
    ):
        return _row, ""
    return _no_row, f"header does not name {', '.join(missing)} (only {', '.join(found)})"


# RDP reports 65535 (and occasionally other out-of-range values) when the
# pointer leaves the remote desktop while a button is held.
MAX_COORDINATE = 10_000


@dataclass(frozen=True, slots=True)
class BalabitSession:
    """One cleaned session: parallel arrays, one entry per event."""

    session_id: str
    t_ms: np.ndarray  # float64, client time since session start
    x: np.ndarray  # int32
    y: np.ndarray  # int32
    button: np.ndarray  # int8, index into BUTTONS
    state: np.ndarray  # int8, index into STATES
    #: Data rows dropped because they could not be read (not duplicates, which are
    #: cleaning): reported by readers so that a damaged file is not taken for a short one.
    skipped: int = 0
    #: Why the whole session was left empty although it holds rows ('' if it was not).
    refused: str = ""

    def __len__(self) -> int:
        return int(self.t_ms.size)

    @property
    def unusable(self) -> str:
        """Why nothing of a file that has data rows can be used; '' for a usable or empty file.

        >>> _empty("s", 3).unusable
        '3 data rows, none readable'
        """
        if self.refused:
            return self.refused
        if self.skipped and not len(self):
            return f"{self.skipped} data rows, none readable"
        return ""


def parse_session(source: TextIO, session_id: str = "") -> BalabitSession:
    """Parse and clean one session from an open text stream."""
    rows, skipped, refused = _data_rows(source)
    n = len(rows)
    if n == 0 or refused:
        return _empty(session_id, skipped, refused)
    try:
        t, x, y = _numeric_columns(rows)
    except ValueError:
        # Rare broken rows (empty or garbled numbers): drop them rather than the session.
        kept = [r for r in rows if _numeric_row(r)]
        skipped += n - len(kept)
        rows = kept
        n = len(rows)
        if n == 0:
            return _empty(session_id, skipped)
        t, x, y = _numeric_columns(rows)
    cols = list(zip(*rows, strict=True))
    button = _codes(cols[2], _BUTTON_CODE, _BUTTON_FOLDED)
    state = _codes(cols[3], _STATE_CODE, _STATE_FOLDED)
    # A NaN time would sort anywhere; a NaN position is as uninformative as a sentinel.
    readable = np.isfinite(t) & (button != UNKNOWN) & (state != UNKNOWN)
    if not readable.all():
        t, x, y, button, state = (a[readable] for a in (t, x, y, button, state))
        skipped += n - int(t.size)
        n = int(t.size)
        if n == 0:
            return _empty(session_id, skipped)

    order = np.argsort(t, kind="stable")
    t, button, state, x, y = t[order], button[order], state[order], x[order], y[order]
    refused = _time_unit_problem(t)
    if refused:
        return _empty(session_id, skipped, refused)

    # Positions that carry no information: sentinels and scroll rows.
    invalid = ~(np.isfinite(x) & np.isfinite(y))
    with np.errstate(invalid="ignore"):
        invalid |= (x < 0) | (y < 0) | (x > MAX_COORDINATE) | (y > MAX_COORDINATE)
    invalid |= button == _SCROLL
    x = _carry_forward(x, invalid)
    y = _carry_forward(y, invalid)

    keep = np.ones(n, dtype=bool)
    keep[1:] = (
        (t[1:] != t[:-1])
        | (x[1:] != x[:-1])
        | (y[1:] != y[:-1])
        | (button[1:] != button[:-1])
        | (state[1:] != state[:-1])
    )
    return BalabitSession(
        session_id,
        t[keep],
        x[keep].astype(np.int32),
        y[keep].astype(np.int32),
        button[keep],
        state[keep],
        skipped,
    )


def _data_rows(source: TextIO) -> tuple[list[list[str]], int, str]:
    """The data rows' six fields in :data:`COLUMNS` order, how many rows could not be read,
    and why the file is refused ('' if it is not)."""
    rows: list[list[str]] = []
    skipped = 0
    refused = ""
    read: RowReader = _row  # by position until a header says otherwise
    header_seen = False
    for r in csv.reader(source):
        row = read(r)
        if row is not None:
            rows.append(row)
        elif any(field.strip() for field in r):
            # A non-blank line before any data is the header; any other is a data row
            # that lost its shape or its time (".2,0.2,...", "1.0;2;...").
            if rows or header_seen:
                skipped += 1
            else:
                read, refused = _layout(r)
            header_seen = True
    return rows, skipped, refused


#: Client times are seconds: any movement is sampled every ~16 ms, so a tenth of the steps
#: between distinct event times are short in every recorded session (the median step is
#: 0.016-0.19 s); in milliseconds no step is under 1 s. A low quantile, not the median: a
#: session of sparse clicks or scroll notches in seconds has a long median step.
MIN_STEP_QUANTILE_S = 0.5
STEP_QUANTILE = 0.1
#: Fewer steps than this say nothing about the unit.
MIN_STEPS_FOR_UNIT = 10


def _time_unit_problem(t_ms: np.ndarray) -> str:
    """Why the sorted times (the file's numbers x 1000) are not seconds; '' if they may be.

    Milliseconds read as seconds would stretch every movement 1000-fold: the session
    would still be scored, on nonsense speeds, so it is refused instead.
    """
    steps = np.diff(t_ms)
    steps = steps[steps > 0]
    if steps.size < MIN_STEPS_FOR_UNIT:
        return ""
    short_s = float(np.quantile(steps, STEP_QUANTILE)) / 1000.0
    if short_s <= MIN_STEP_QUANTILE_S:
        return ""
    return (
        f"client timestamp not in seconds (a tenth of the steps between events are"
        f" {short_s:.3g} s or less, never under {MIN_STEP_QUANTILE_S:g} s: milliseconds?)"
    )


def _empty(session_id: str, skipped: int, refused: str = "") -> BalabitSession:
    empty = np.empty(0)
    return BalabitSession(
        session_id,
        empty,
        empty.astype(np.int32),
        empty.astype(np.int32),
        empty.astype(np.int8),
        empty.astype(np.int8),
        skipped,
        refused,
    )


def _numeric_columns(rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Client time (ms), x and y of already-filtered rows; ValueError if one does not parse."""
    cols = list(zip(*rows, strict=True))
    t = np.asarray(cols[1], dtype=np.float64) * 1000.0
    return t, np.asarray(cols[4], dtype=np.float64), np.asarray(cols[5], dtype=np.float64)


def _numeric_row(row: list[str]) -> bool:
    try:
        float(row[1]), float(row[4]), float(row[5])
    except ValueError:
        return False
    return True


def _carry_forward(values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Replace invalid entries by the last valid one (the first valid one at the start)."""
    if not invalid.any():
        return values
    idx = np.where(~invalid, np.arange(values.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = values[idx]
    if invalid.all():
        return np.zeros_like(values)
    first_valid = int(np.argmax(~invalid))
    out[: first_valid + 1] = values[first_valid]
    return out


def read_session(path: str | os.PathLike[str]) -> BalabitSession:
    """Read and clean one session file."""
    p = Path(path)
    # utf-8-sig and replacement: a BOM or a stray byte must not cost the session.
    with p.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        return parse_session(io.StringIO(fh.read()), session_id=p.name)


def load_session(path: str | os.PathLike[str]) -> BalabitSession:
    """As :func:`read_session`, but a file that cannot be read is an empty, refused session.

    One dangling link or unreadable file in a directory of recordings must be named and
    skipped, not end the run.
    """
    try:
        return read_session(path)
    except OSError as exc:
        return _empty(Path(path).name, 0, f"cannot read the file: {exc.strerror or exc}")


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Where a session file lives and whose account it was recorded under."""

    account: str
    session_id: str
    path: Path


def iter_sessions(root: str | os.PathLike[str], split: str) -> Iterator[SessionRef]:
    """Session files under ``root/<split>/<account>/session_*``, in a stable order.

    ``split`` is ``"training_files"`` or ``"test_files"``.
    """
    base = Path(root) / split
    if not base.is_dir():
        raise FileNotFoundError(f"no {split}/ directory under {root}")
    for account_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(account_dir.glob("session_*")):
            if _is_session_file(f):
                yield SessionRef(account_dir.name, session_key(f.name), f)


def _is_session_file(path: Path) -> bool:
    # A directory (or a FIFO) named session_* is not a recording; a dangling link is kept
    # so that reading it fails and the session is named as skipped, not silently absent.
    return path.is_file() or (path.is_symlink() and not path.exists())


_TRUE = frozenset({"1", "true", "yes", "y", "t", "1.0"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "0.0"})


def session_key(filename: str) -> str:
    """The session's name as labels and files are matched on, however either spells it.

    The challenge's ``public_labels.csv`` (and ``labels_dev.csv``) say
    ``session_0029922803``; other exports write ``test_files/user7/session_…``, Windows
    separators, a file extension, or the bare number. Session names are unique across
    accounts.

    >>> [session_key(n) for n in ("session_0029922803", r"test_files\\user7\\session_12.csv",
    ...                            " 0029922803 ", "SESSION_12.txt")]
    ['session_0029922803', 'session_12', 'session_0029922803', 'session_12']
    """
    name = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if dot and ext.isalpha():  # an extension, not part of the name
        name = stem
    if name.isdigit():
        return "session_" + name
    if name.lower().startswith("session_"):
        return "session_" + name[len("session_") :]
    return name


@dataclass(frozen=True, slots=True)
class Labels:
    """Labels by session name, and how many rows could not be read."""

    by_session: dict[str, int]
    bad_rows: int = 0
    #: Sessions labelled twice with different values: left out, never guessed.
    conflicting: tuple[str, ...] = ()


def read_labels(path: str | os.PathLike[str]) -> dict[str, int]:
    """``filename,is_illegal`` rows -> ``{session_id: 0 or 1}`` (1 = not the owner)."""
    return read_labels_checked(path).by_session


def read_labels_checked(path: str | os.PathLike[str]) -> Labels:
    """As :func:`read_labels`, counting rows that were skipped.

    ``is_illegal`` may be ``0``/``1``, ``True``/``False`` or ``yes``/``no``; the
    header may carry a BOM, other case or spaces. A row whose label is none of
    these is skipped and counted, never guessed.
    """
    labels: dict[str, int] = {}
    conflicting: set[str] = set()
    bad = 0
    with Path(path).open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        try:
            i_name, i_label = header.index("filename"), header.index("is_illegal")
        except ValueError:
            raise ValueError(
                f"{path}: header must name columns filename and is_illegal, got {header}"
            ) from None
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            if len(row) <= max(i_name, i_label):
                bad += 1
                continue
            value = row[i_label].strip().lower()
            name = session_key(row[i_name])
            if not name or value not in _TRUE | _FALSE:
                bad += 1
                continue
            label = int(value in _TRUE)
            if labels.setdefault(name, label) != label:
                conflicting.add(name)
    for name in conflicting:
        del labels[name]
    return Labels(labels, bad, tuple(sorted(conflicting)))
