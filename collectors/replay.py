"""Replay recorded sessions from public datasets as raw wire batches.

Recordings are read with the dataset readers of :mod:`collectors.datasets`
(Balabit mouse layout, free-text keystroke layout), turned into wire events and cut
into batches by :class:`~collectors.episodes.DeviceStream`, exactly as the agent
would have cut them live. Each dataset user becomes one device whose sessions play
back to back (``gap_s`` apart); all users play at the same time, from time 0.

Key identity never reaches the wire: the keystroke reader maps each key to its
:mod:`collectors.keyclass` class while parsing and drops the key.

Default pseudonym of a dataset user: ``sha256("replay:<user>")`` in hex (not a
secret: these are public recordings). Give ``user_map`` to choose others.

Balabit mapping: button Left 1, Right 2, Middle 3, NoButton/XButton 0; state
Pressed -> ``md``, Released -> ``mu``, Move/Drag -> ``mm``; rows of the Scroll
"button" -> ``ms`` with ``dy`` -120 (Down) or +120 (Up).

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "user1").mkdir()
>>> _ = (root / "user1" / "s1.csv").write_text(
...     "type,key,t_ns\\ndown,'a',1000000000\\nup,'a',1090000000\\n")
>>> [b] = replay_batches(keystroke_recordings(root), start_wall_ms=1.7e12)
>>> [(e.kind, e.key_class) for e in b.events], b.user == replay_pseudonym("user1")
([('kd', 1), ('ku', 1)], True)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from collectors.episodes import KD, KU, MD, MM, MS, MU, DeviceStream, Episode, merge_streams
from collectors.wire import MAX_ID_LENGTH, EventBatch, is_identifier

log = logging.getLogger(__name__)

__all__ = [
    "Recording",
    "keystroke_recordings",
    "load_user_map",
    "mouse_recordings",
    "replay_batches",
    "replay_pseudonym",
    "replay_timed",
]


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded session of one dataset user; ``load()`` reads it when it is played."""

    dataset_user: str
    session_id: str
    load: Callable[[], Episode]  # times in ms from the session's first event


def replay_pseudonym(dataset_user: str) -> str:
    """The default pseudonym of a dataset user: sha256 hex of ``replay:<user>``."""
    return hashlib.sha256(f"replay:{dataset_user}".encode()).hexdigest()


# -- Balabit mouse layout -------------------------------------------------------------


def _balabit_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from collectors.datasets.balabit import BUTTONS, STATES

    wire_button = {"Left": 1, "Right": 2, "Middle": 3}
    button = np.array([wire_button.get(name, 0) for name in BUTTONS], np.int64)
    kind_of_state = {"Pressed": MD, "Released": MU}
    kind = np.array([kind_of_state.get(name, MM) for name in STATES], np.int8)
    scroll_dy = np.array([-120 if name == "Down" else 120 for name in STATES], np.int64)
    is_scroll = np.array([name == "Scroll" for name in BUTTONS])
    return button, kind, scroll_dy, is_scroll


def _load_balabit(path: Path) -> Episode:
    from collectors.datasets.balabit import read_session

    s = read_session(path)
    if s.skipped:
        log.warning("%s: skipped %d rows that did not parse", path, s.skipped)
    if s.refused:
        log.warning("%s: not replayed, %s", path, s.refused)
    button_map, kind_map, scroll_dy, is_scroll_button = _balabit_tables()
    t = s.t_ms - s.t_ms[0] if len(s) else s.t_ms
    scroll = is_scroll_button[s.button]
    kind = np.where(scroll, MS, kind_map[s.state]).astype(np.int8)
    button = np.where((kind == MD) | (kind == MU), button_map[s.button], 0)
    dy = np.where(scroll, scroll_dy[s.state], 0)
    x, y = s.x.astype(np.int64), s.y.astype(np.int64)
    return Episode(t.astype(np.float64), kind, x, y, button, np.zeros_like(dy), dy)


def mouse_recordings(
    root: str | os.PathLike[str],
    *,
    split: str = "training_files",
    limit_sessions: int | None = None,
    users: Iterable[str] | None = None,
) -> Iterator[Recording]:
    """Balabit-layout sessions: ``root/<split>/<user>/session_*`` or ``root/<user>/session_*``.

    ``limit_sessions`` keeps the first N sessions of each user; ``users`` keeps those.
    """
    base = Path(root)
    if (base / split).is_dir():
        base = base / split
    wanted = None if users is None else set(users)
    for user_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if wanted is not None and user_dir.name not in wanted:
            continue
        files = sorted(f for f in user_dir.glob("session_*") if f.is_file())
        for f in files[:limit_sessions]:
            yield Recording(user_dir.name, f.name, functools.partial(_load_balabit, f))


# -- free-text keystroke layout -----------------------------------------------------


def _load_freetext(path: Path) -> Episode:
    from collectors.datasets.freetext import read_session

    s = read_session(path)
    if s.refused:
        log.warning("%s: refused, no event replayed (%d rows): %s", path, s.skipped, s.refused)
    elif s.skipped:
        log.warning("%s: skipped %d rows that did not parse", path, s.skipped)
    if s.duplicates:
        log.warning("%s: skipped %d duplicate rows", path, s.duplicates)
    kind = np.where(s.is_down, KD, KU).astype(np.int8)
    cls = s.key_class.astype(np.int64)
    return Episode(s.t_ms, kind, cls, np.zeros_like(cls))


def keystroke_recordings(
    root: str | os.PathLike[str],
    *,
    limit_sessions: int | None = None,
    users: Iterable[str] | None = None,
) -> Iterator[Recording]:
    """Free-text sessions ``root/<user>/<session>.csv`` (``type,key,t_ns``), keys as classes."""
    wanted = None if users is None else set(users)
    for user_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        if wanted is not None and user_dir.name not in wanted:
            continue
        # .CSV too, as the evaluation reads them.
        files = sorted(f for f in user_dir.iterdir() if f.suffix.lower() == ".csv" and f.is_file())
        for f in files[:limit_sessions]:
            yield Recording(user_dir.name, f.stem, functools.partial(_load_freetext, f))


# -- replay ----------------------------------------------------------------------------


def load_user_map(specs: Iterable[str]) -> dict[str, str]:
    """``DATASET_USER=PSEUDONYM`` items, or ``@FILE`` with ``dataset_user,pseudonym`` rows.

    >>> load_user_map(["user7=" + "ab" * 32])["user7"][:4]
    'abab'
    """
    mapping: dict[str, str] = {}
    for spec in specs:
        if spec.startswith("@"):
            with open(spec[1:], newline="") as fh:
                for row in csv.reader(fh):
                    if len(row) >= 2 and row[0].strip() and not row[0].startswith("#"):
                        mapping[row[0].strip()] = row[1].strip()
            continue
        user, sep, pseudonym = spec.partition("=")
        if not sep or not user or not pseudonym:
            raise ValueError(f"expected DATASET_USER=PSEUDONYM or @FILE, got {spec!r}")
        mapping[user] = pseudonym
    for user, pseudonym in mapping.items():
        # What the wire accepts: a bad one would have every batch of that user rejected.
        if not is_identifier(pseudonym):
            raise ValueError(
                f"pseudonym for {user!r} must be printable, 1 to {MAX_ID_LENGTH} bytes in UTF-8"
            )
    return mapping


def _pseudonym_for(user_map: Mapping[str, str] | None, dataset_user: str) -> str:
    if user_map and dataset_user in user_map:
        return user_map[dataset_user]
    return replay_pseudonym(dataset_user)


def _sessions_back_to_back(
    recordings: list[Recording], session_prefix: str, gap_ms: float, max_idle_ms: float | None
) -> Iterator[tuple[Episode, str]]:
    start = 0.0
    for rec in recordings:
        try:
            ep = rec.load()
        except (OSError, ValueError, csv.Error) as exc:
            # One unreadable file must not end the replay of everything after it.
            log.warning("skipped recording %s/%s: %s", rec.dataset_user, rec.session_id, exc)
            continue
        if not len(ep):
            continue
        if max_idle_ms is not None:
            # Long idle stretches make real-time playback dull; shorten them.
            gaps = np.diff(ep.t_ms, prepend=ep.t_ms[0])
            ep = Episode(
                np.cumsum(np.minimum(gaps, max_idle_ms)), ep.kind, ep.a, ep.b, ep.c, ep.d, ep.e
            )
        session = session_prefix + hashlib.sha256(rec.session_id.encode()).hexdigest()[:16]
        yield ep.shifted(start - float(ep.t_ms[0])), session
        start += ep.end_ms - float(ep.t_ms[0]) + gap_ms


def replay_timed(
    recordings: Iterable[Recording],
    *,
    user_map: Mapping[str, str] | None = None,
    start_wall_ms: float | None = None,
    gap_s: float = 1.0,
    max_idle_s: float | None = None,
    run: str = "",
    kind: str = "",
) -> Iterator[tuple[float, EventBatch]]:
    """``(close time in s since the start, batch)`` of all recordings, in close-time order.

    Recordings must come grouped by dataset user (the readers yield them that way).
    ``run`` renames devices and sessions so a rerun is not deduplicated away; ``kind``
    (the dataset's) keeps a mouse and a keystroke replay of one user name, in the same
    run, on different devices, whose sequence numbers would otherwise collide.
    """
    wall = time.time() * 1000.0 if start_wall_ms is None else start_wall_ms
    streams: list[DeviceStream] = []
    for dataset_user, group in groupby(recordings, key=lambda r: r.dataset_user):
        name = f"replay:{run}:{dataset_user}" if not kind else f"replay:{kind}:{run}:{dataset_user}"
        tag = hashlib.sha256(name.encode()).hexdigest()
        streams.append(
            DeviceStream(
                "replay-dev-" + tag[:24],
                _pseudonym_for(user_map, dataset_user),
                _sessions_back_to_back(
                    list(group),
                    f"replay-ses-{tag[:8]}-",
                    gap_s * 1000.0,
                    None if max_idle_s is None else max_idle_s * 1000.0,
                ),
                start_wall_ms=wall,
                # A plausible device uptime, fixed per device so reruns agree.
                boot_ms=1e6 + int(tag[24:32], 16) % 10**8,
            )
        )
    return merge_streams(streams)


def replay_batches(
    recordings: Iterable[Recording],
    *,
    user_map: Mapping[str, str] | None = None,
    start_wall_ms: float | None = None,
    gap_s: float = 1.0,
    max_idle_s: float | None = None,
    run: str = "",
) -> Iterator[EventBatch]:
    """The batches of :func:`replay_timed` without their close times (for tests)."""
    for _, batch in replay_timed(
        recordings,
        user_map=user_map,
        start_wall_ms=start_wall_ms,
        gap_s=gap_s,
        max_idle_s=max_idle_s,
        run=run,
    ):
        yield batch
