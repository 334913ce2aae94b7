"""Reader for free-text keystroke recordings: ``<user>/<session>.csv`` with ``type,key,t_ns``.

Each row is a pynput event: ``down`` or ``up``, the key as pynput prints it
(``'a'``, ``Key.space``, ``"'"``) and a wall-clock time in nanoseconds. With a
header line the columns are found by name (any order, extra columns ignored);
without one they are in that order. The key name is mapped to its class by
:func:`collectors.keyclass.classify` as soon as the row is parsed; while the file
is read it is kept only as a per-file number, to drop rows that repeat, and is
then forgotten: nothing downstream of this reader ever holds key identity,
exactly as in the live agent.

>>> import io
>>> s = read_session(io.StringIO("type,key,t_ns\\ndown,'a',1000000\\nup,'a',81000000\\n"))
>>> s.t_ns.tolist(), s.is_down.tolist(), s.key_class.tolist()
([1000000, 81000000], [True, False], [1, 1])
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np

from collectors.keyclass import classify

__all__ = ["FreeTextSession", "iter_sessions", "read_session"]


@dataclass(frozen=True, slots=True)
class FreeTextSession:
    """One recording as plain arrays, in file order, key identity already dropped."""

    t_ns: np.ndarray  # int64, wall clock
    is_down: np.ndarray  # bool
    key_class: np.ndarray  # int8, codes of collectors.keyclass
    #: Data rows dropped because they did not parse (headers are not counted), or all
    #: data rows of a refused file.
    skipped: int = 0
    #: Rows dropped because they repeat an earlier row (same time, type and key).
    duplicates: int = 0
    #: Why the whole file was refused (no row of it is used), or ``""``.
    refused: str = ""

    @property
    def t_ms(self) -> np.ndarray:
        """Milliseconds since the first event, as float64 (the profiles' unit)."""
        if self.t_ns.size == 0:
            return np.zeros(0)
        return (self.t_ns - self.t_ns[0]).astype(np.float64) / 1e6


# Key names repeat a lot; memoising the classification keeps parsing linear and cheap.
_classify = lru_cache(maxsize=4096)(classify)


def read_session(source: str | os.PathLike[str] | io.TextIOBase) -> FreeTextSession:
    """Parse one CSV file (path or text stream); rows that do not parse are skipped and counted.

    Rows are stably sorted by time, because captures sometimes write an ``up``
    a hair before the matching ``down`` when both share a timestamp bucket.
    A key name the classifier does not know (an unknown ``Key.*``, a ``<NNN>``
    virtual key, an empty field) is class ``other``, never an error. A row that
    repeats an earlier one (same time, type and key) is dropped and counted in
    ``duplicates``. A file whose times are not nanoseconds, or whose header lacks
    a column, is refused whole: no row, every data row counted in ``skipped`` and
    the reason in ``refused``.
    """
    if isinstance(source, io.TextIOBase):
        return _parse(source)
    # utf-8-sig: files saved by Windows tools start with a BOM, which would
    # otherwise glue itself to the first field of the first row.
    with open(source, newline="", encoding="utf-8-sig", errors="replace") as fh:
        return _parse(fh)


_INT64_MAX = int(np.iinfo(np.int64).max)

#: Column order of a file without a header line (the layout our captures write).
_DEFAULT_COLUMNS: Final = ("type", "key", "t_ns")

#: Below this median gap between consecutive events (1 ms) the times are not nanoseconds.
#: A typist's events are ~60-100 ms apart (median per file 6e7 to 1e8 ns in our
#: recordings), so ms, µs or s read as ns give medians near 1e2, 1e5 or 1: a margin of
#: about 100 on either side.
MIN_MEDIAN_GAP_NS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where ``type``, ``key`` and ``t_ns`` sit in a row of ``width`` fields."""

    type: int
    key: int
    t_ns: int
    width: int

    def fields(self, row: list[str]) -> tuple[str, str, str] | None:
        """``(type, key, t_ns)`` of a row; None if it is too short.

        A key written unquoted with a comma in it (``',``) spans several fields: a row
        longer than the header has its extra fields in the key, the only field that can
        hold a comma, and the fields after the key are shifted by as many.
        """
        extra = len(row) - self.width
        if extra < 0:
            return None

        def at(i: int) -> str:
            return row[i + extra] if i > self.key else row[i]

        return at(self.type), ",".join(row[self.key : self.key + extra + 1]), at(self.t_ns)


def _header_columns(row: list[str]) -> _Columns | str | None:
    """The columns a header row names; a reason if it lacks one; None if not a header.

    A header is a row naming a ``type`` column (a data row holds ``down`` or ``up``
    there). Names are matched stripped and in any case, so that ``Type, Key, T_ns``
    and other orders or extra columns read as they say.
    """
    names = [f.strip().lstrip("\ufeff").strip().lower() for f in row]
    while names and not names[-1]:
        names.pop()  # a trailing comma names no column
    if "type" not in names:
        return None
    missing = [c for c in _DEFAULT_COLUMNS if c not in names]
    if not missing:
        return _Columns(names.index("type"), names.index("key"), names.index("t_ns"), len(names))
    in_place = all(names[i] == c for i, c in enumerate(_DEFAULT_COLUMNS) if c in names)
    if len(names) == len(_DEFAULT_COLUMNS) and in_place:
        # Our three columns, one renamed where it stands (``time`` for ``t_ns``): read by
        # position, as a file without a header is; the unit check still applies.
        return _Columns(0, 1, 2, 3)
    return f"the header names no {' or '.join(missing)} column (it has {', '.join(names)})"


def _refused(reason: str, rows: int) -> FreeTextSession:
    """A file none of whose ``rows`` is used, and why."""
    empty = np.zeros(0, dtype=np.int64)
    return FreeTextSession(
        empty, empty.astype(bool), empty.astype(np.int8), skipped=rows, refused=reason
    )


def _parse(fh: io.TextIOBase) -> FreeTextSession:
    t: list[int] = []
    down: list[bool] = []
    cls: list[int] = []
    # Key names as small per-file ids, only to recognise repeated rows; dropped on return.
    key_ids: dict[str, int] = {}
    kid: list[int] = []
    skipped = 0
    columns: _Columns | None = None
    for row in csv.reader(fh):
        if not "".join(row).strip():
            continue  # blank line
        if columns is None:
            # Only the first line can say how the file is laid out; without a header
            # the columns are in our captures' order.
            header = _header_columns(row)
            if isinstance(header, str):
                return _refused(header, _count_data_rows(fh))
            columns = header or _Columns(0, 1, 2, 3)
            if header:
                continue
        fields = columns.fields(row)
        kind = fields[0].strip().lstrip("\ufeff").lower() if fields else ""
        if fields is None or kind not in ("down", "up"):
            # A header repeated after concatenation is not a data row: not counted.
            if _header_columns(row) is None:
                skipped += 1
            continue
        try:
            t_ns = int(fields[2].strip())
        except ValueError:
            skipped += 1
            continue
        if not 0 <= t_ns <= _INT64_MAX:
            skipped += 1
            continue
        t.append(t_ns)
        down.append(kind == "down")
        cls.append(_classify(fields[1]))
        kid.append(key_ids.setdefault(fields[1], len(key_ids)))
    return _session(t, down, cls, kid, skipped)


def _session(
    t: list[int], down: list[bool], cls: list[int], key_id: list[int], skipped: int
) -> FreeTextSession:
    """The parsed rows sorted by time, repeats dropped; refused if the times are not ns."""
    t_arr = np.asarray(t, dtype=np.int64)
    order = np.argsort(t_arr, kind="stable")
    t_arr, is_down = t_arr[order], np.asarray(down, dtype=bool)[order]
    keep = _first_occurrences(t_arr, is_down, np.asarray(key_id, dtype=np.int64)[order])
    t_arr, is_down = t_arr[keep], is_down[keep]
    reason = _not_nanoseconds(t_arr)
    if reason:
        return _refused(reason, skipped + len(t))
    return FreeTextSession(
        t_ns=t_arr,
        is_down=is_down,
        key_class=np.asarray(cls, dtype=np.int8)[order][keep],
        skipped=skipped,
        duplicates=int(keep.size - np.count_nonzero(keep)),
    )


def _count_data_rows(fh: io.TextIOBase) -> int:
    """Non-blank rows left in a refused file: each is counted as skipped, none is used."""
    return sum(1 for row in csv.reader(fh) if "".join(row).strip())


def _first_occurrences(t_ns: np.ndarray, is_down: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Mask keeping the first of rows with the same time, type and key (times sorted).

    The same press twice is a copy (a file concatenated with itself, a double export),
    not typing: kept, it would double every hold and add zero flights.

    >>> _first_occurrences(np.array([5, 5, 5, 7]), np.array([1, 0, 1, 1], bool), np.zeros(4, int))
    array([ True,  True, False,  True])
    """
    # Within a time, order by (type, key) keeping file order; a row equal to the one
    # before it in that order repeats an earlier row.
    order = np.lexsort((key, is_down, t_ns))
    same = np.zeros(t_ns.size, dtype=bool)
    same[1:] = (
        (np.diff(t_ns[order]) == 0)
        & (is_down[order][1:] == is_down[order][:-1])
        & (key[order][1:] == key[order][:-1])
    )
    keep = np.ones(t_ns.size, dtype=bool)
    keep[order[same]] = False
    return keep


def _not_nanoseconds(t_ns: np.ndarray) -> str:
    """Why the times cannot be nanoseconds, or ``""``: the median gap between events is tiny.

    Times in ms, µs or s (whole numbers) parse just as well and would silently shrink
    every hold and flight by 10^3 to 10^9; the file is refused instead.
    """
    gaps = np.diff(t_ns)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        # Many events at one instant: whole seconds of a few presses, never typing in ns.
        # A handful may be one press logged by a coarse clock.
        return f"all {t_ns.size} events share one time" if t_ns.size > 4 else ""
    median = float(np.median(gaps))
    if median >= MIN_MEDIAN_GAP_NS:
        return ""
    return (
        f"t_ns is not in nanoseconds: the median gap between events is {median:.6g}, typing"
        f" in ns gives ~1e8 and below {MIN_MEDIAN_GAP_NS:.0e} (1 ms) the unit is ms, µs or s"
    )


def iter_sessions(root: str | os.PathLike[str]) -> Iterator[tuple[str, str, FreeTextSession]]:
    """Yield ``(user, session, data)`` for every ``<user>/<session>.csv`` under ``root``.

    Users and sessions come in sorted order; symlinked folders and files are followed.
    """
    base = Path(root)
    for user_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        # Case-insensitive suffix: captures copied from Windows may say ``.CSV``.
        files = (f for f in user_dir.iterdir() if f.is_file() and f.suffix.lower() == ".csv")
        for csv_path in sorted(files):
            yield user_dir.name, csv_path.stem, read_session(csv_path)
