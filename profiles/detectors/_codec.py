"""Pickle-free serialisation of a few numpy arrays: a tiny self-describing header.

Layout: 4-byte magic, then for each array one byte dtype code, one byte ndim,
``ndim`` little-endian uint32 dimensions and the raw little-endian data.

>>> b = pack(b"TEST", np.arange(3, dtype=np.float32), np.eye(2))
>>> a, m = unpack(b, b"TEST")
>>> a.tolist(), m.tolist()
([0.0, 1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]])
"""

from __future__ import annotations

import math
import struct

import numpy as np

# Codes are positions in this tuple: append only, never reorder.
_DTYPES: tuple[str, ...] = ("<f4", "<f8", "<u4", "<i4", "<u2", "<i8", "|u1")


def pack(magic: bytes, *arrays: np.ndarray) -> bytes:
    if len(magic) != 4:
        raise ValueError("magic must be 4 bytes")
    parts = [magic]
    for a in arrays:
        a = np.asarray(a)
        dt = a.dtype.newbyteorder("<").str
        if dt not in _DTYPES:
            raise TypeError(f"unsupported dtype {a.dtype}")
        parts.append(struct.pack("<BB", _DTYPES.index(dt), a.ndim))
        parts.append(struct.pack(f"<{a.ndim}I", *a.shape))
        parts.append(np.ascontiguousarray(a, dtype=dt).tobytes())
    return b"".join(parts)


def unpack(data: bytes, magic: bytes) -> list[np.ndarray]:
    if data[:4] != magic:
        raise ValueError(f"expected magic {magic!r}, got {data[:4]!r}")
    out: list[np.ndarray] = []
    pos = 4
    view = memoryview(data)
    while pos < len(data):
        # Stored state is untrusted bytes: whatever they hold must raise ValueError, the
        # error a reader of a damaged record is told to expect (not IndexError, struct.error).
        if pos + 2 > len(data):
            raise ValueError("array header truncated")
        code, ndim = struct.unpack_from("<BB", data, pos)
        pos += 2
        if code >= len(_DTYPES):
            raise ValueError(f"unknown dtype code {code}")
        if pos + 4 * ndim > len(data):
            raise ValueError("array shape truncated")
        shape = struct.unpack_from(f"<{ndim}I", data, pos)
        pos += 4 * ndim
        dt = np.dtype(_DTYPES[code])
        n = math.prod(shape)  # exact: numpy's product of a damaged shape could wrap
        if pos + n * dt.itemsize > len(data):
            raise ValueError("array data truncated")
        arr = np.frombuffer(view[pos : pos + n * dt.itemsize], dtype=dt).reshape(shape)
        out.append(arr.astype(dt.newbyteorder("="), copy=True))
        pos += n * dt.itemsize
    return out
