"""What the worker keeps per user in its changelog-backed table.

The value is compact bytes, never a pickle: a small JSON header (sequence
cursors, counters) followed by the profile's own binary encoding. In memory the
worker also keeps the decoded profile (``decoded``), so that a window costs no
decoding; ``profile`` always holds its bytes as last persisted, which rebuild
exactly that profile after a restart.

>>> s = UserState(cursors={"d": Cursor("s", 9, 123456789, 1.7e12)}, windows=3, profile=b"\\x01\\x02")
>>> UserState.from_bytes(s.to_bytes()) == s
True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import orjson

from profiles.user import UserProfile
from streams.windows import Cursor, shape_digest

_MAGIC = b"CUS1"
_HEADER = struct.Struct("<4sI")


@dataclass(slots=True)
class UserState:
    cursors: dict[str, Cursor] = field(default_factory=dict)
    windows: int = 0
    # The profile's bytes as last persisted. A view into the stored state record when
    # there is one (:meth:`from_bytes`, :meth:`share_profile`): the table keeps that
    # record, and a second copy of the profile was ~4.5 KB per user in a worker.
    profile: bytes | memoryview = b""
    # Not persisted: the profile ``profile`` decodes to, once a window needed it.
    decoded: UserProfile | None = field(default=None, compare=False, repr=False)

    def to_bytes(self) -> bytes:
        fields: dict = {
            "c": [[d, c.session, c.last_seq] for d, c in self.cursors.items()],
            "w": self.windows,
        }
        # Beside the rows, not in them (the last batch's shape "h", the session's latest
        # close time "t"): code that unpacks [device, session, seq] rows (any worker
        # before dfebc3d) still reads these states after a rollback.
        shapes = {d: c.last_shape for d, c in self.cursors.items() if c.last_shape is not None}
        if shapes:
            fields["h"] = shapes
        sent = {
            d: int(c.last_sent_ms) for d, c in self.cursors.items() if c.last_sent_ms is not None
        }
        if sent:
            fields["t"] = sent
        meta = orjson.dumps(fields)
        return _HEADER.pack(_MAGIC, len(meta)) + meta + self.profile

    @classmethod
    def from_bytes(cls, data: bytes) -> UserState:
        magic, size = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a cadence user state")
        meta = orjson.loads(data[_HEADER.size : _HEADER.size + size])
        shapes, sent = meta.get("h", {}), meta.get("t", {})
        return cls(
            cursors={c[0]: _cursor(c, shapes.get(c[0]), sent.get(c[0])) for c in meta["c"]},
            windows=int(meta["w"]),
            profile=memoryview(data)[_HEADER.size + size :],
        )

    def share_profile(self, record: bytes) -> None:
        """Refer to the profile's bytes inside ``record`` (this state's :meth:`to_bytes`,
        which the caller stores) instead of keeping them apart."""
        self.profile = memoryview(record)[len(record) - len(self.profile) :]


def _cursor(row: list, shape: int | list | None, sent_ms: float | None) -> Cursor:
    # No shape: written before shapes were kept; such a cursor takes any batch at or
    # below its number for a duplicate, as it always did. For a few hours on main
    # (dfebc3d, 2ccaf58) the shape was a fourth element of the row: the shape itself
    # as [events, first, last], then its digest.
    if len(row) > 3:
        shape = row[3]
    if isinstance(shape, list):
        shape = shape_digest(int(shape[0]), float(shape[1]), float(shape[2]))
    return Cursor(
        str(row[1]),
        int(row[2]),
        None if shape is None else int(shape),
        None if sent_ms is None else float(sent_ms),
    )
