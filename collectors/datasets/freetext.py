"""Reader for free-text keystroke recordings: ``<user>/<session>.csv`` with ``type,key,t_ns``.

Each row is a pynput event: ``down`` or ``up``, the key as pynput prints it
(``'a'``, ``Key.space``, ``"'"``) and a wall-clock time in nanoseconds. The key
name is mapped to its class by :func:`collectors.keyclass.classify` as soon as
the row is parsed and is then forgotten: nothing downstream of this reader ever
holds key identity, exactly as in the live agent.

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

import numpy as np

from collectors.keyclass import classify

__all__ = ["FreeTextSession", "iter_sessions", "read_session"]


@dataclass(frozen=True, slots=True)
class FreeTextSession:
    """One recording as plain arrays, in file order, key identity already dropped."""

    t_ns: np.ndarray  # int64, wall clock
    is_down: np.ndarray  # bool
    key_class: np.ndarray  # int8, codes of collectors.keyclass
    #: Data rows dropped because they did not parse (headers are not counted).
    skipped: int = 0

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
    virtual key, an empty field) is class ``other``, never an error.
    """
    if isinstance(source, io.TextIOBase):
        return _parse(source)
    # utf-8-sig: files saved by Windows tools start with a BOM, which would
    # otherwise glue itself to the first field of the first row.
    with open(source, newline="", encoding="utf-8-sig", errors="replace") as fh:
        return _parse(fh)


_INT64_MAX = int(np.iinfo(np.int64).max)


def _parse(fh: io.TextIOBase) -> FreeTextSession:
    t: list[int] = []
    down: list[bool] = []
    cls: list[int] = []
    skipped = 0
    for row in csv.reader(fh):
        if not "".join(row).strip():
            continue  # blank line
        kind = row[0].strip().lstrip("\ufeff").lower()
        if kind == "type":
            continue  # header, possibly repeated after concatenation
        if len(row) < 3 or kind not in ("down", "up"):
            skipped += 1
            continue
        try:
            t_ns = int(row[-1].strip())
        except ValueError:
            skipped += 1
            continue
        if not 0 <= t_ns <= _INT64_MAX:
            skipped += 1
            continue
        t.append(t_ns)
        down.append(kind == "down")
        # A key field written unquoted with a comma in it (``',``) spans several columns.
        cls.append(_classify(",".join(row[1:-1])))
    t_arr = np.asarray(t, dtype=np.int64)
    order = np.argsort(t_arr, kind="stable")
    return FreeTextSession(
        t_ns=t_arr[order],
        is_down=np.asarray(down, dtype=bool)[order],
        key_class=np.asarray(cls, dtype=np.int8)[order],
        skipped=skipped,
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
