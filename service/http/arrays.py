"""The body's large arrays of numbers read lean: in pieces of about `PIECE` bytes, each parsed by
`json` (so its grammar is exactly JSON's) and turned into float64 at once, so a body of points
never exists as one list of Python floats (about 4x its text).

`cut_arrays(raw, names)` finds each top-level member `"name": [...]` whose array holds only
numbers (or rows of numbers), reads it, and returns the body with those arrays replaced by
placeholders, and the arrays. Anything unusual (a nested match, an empty row, ragged rows, NaN,
an integer beyond float64, invalid JSON) leaves that array in the body, for `json` and the
request's validation to refuse with their exact errors.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from itertools import pairwise

import numpy as np

PIECE = 1 << 18  # bytes of an array parsed at once (its Python lists hold ~4x that)
CHUNK = 1 << 18  # bytes scanned at once (the scan's temporaries hold ~10x that)
MIN_CUT = 1 << 16  # smaller arrays are left to json
_ALLOWED = np.zeros(256, dtype=bool)
_ALLOWED[list(b"0123456789-+.eE,[] \t\n\r")] = True
_OPEN, _CLOSE, _COMMA = ord("["), ord("]"), ord(",")


def _member(names: Iterable[str]) -> re.Pattern[bytes]:
    return re.compile(rb'"(' + b"|".join(re.escape(n.encode()) for n in names) + rb')"[ \t\n\r]*:[ \t\n\r]*\[')


def _extent(view: np.ndarray, start: int) -> tuple[int, list[int]] | None:
    """The end (exclusive) of the array opening at view[start], and the commas between its
    top-level items about every PIECE bytes; None when it holds anything but numbers and brackets
    or nests deeper than rows of numbers."""
    depth, cuts, mark, pos = 0, [], start + PIECE, start
    while pos < len(view):
        chunk = view[pos:pos + CHUNK]
        level = np.cumsum((chunk == _OPEN).astype(np.int32) - (chunk == _CLOSE), dtype=np.int32) + depth
        closed = np.flatnonzero(level == 0)
        if closed.size:
            chunk, level = chunk[:closed[0] + 1], level[:closed[0] + 1]
        if not _ALLOWED[chunk].all() or level.max(initial=0) > 2 or level.min(initial=1) < 0:
            return None
        commas = np.flatnonzero((chunk == _COMMA) & (level == 1)) + pos
        while mark < pos + len(chunk) and commas.size:
            after = commas[commas >= mark]
            if not after.size:
                break
            cuts.append(int(after[0]))
            mark = int(after[0]) + PIECE
        if closed.size:
            return pos + len(chunk), cuts
        depth, pos = int(level[-1]), pos + len(chunk)
    return None


def _read(raw: bytes | bytearray, start: int, end: int, cuts: list[int]) -> np.ndarray | None:
    """The array raw[start:end] read piece by piece; None if a piece is not plain numbers (or
    equal-length rows of numbers) that float64 holds."""
    bounds = [start, *cuts, end - 1]
    parts: list[np.ndarray] = []
    for a, b in pairwise(bounds):
        try:
            items = json.loads(b"[" + bytes(raw[a + 1:b]) + b"]")
        except ValueError:
            return None
        if not items or any(isinstance(i, list) and not i for i in items):
            return None
        try:
            part = np.array(items, dtype=np.float64)
        except (ValueError, OverflowError, TypeError):
            return None
        if part.ndim not in (1, 2) or (parts and part.shape[1:] != parts[0].shape[1:]):
            return None
        parts.append(part)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def cut_arrays(raw: bytes | bytearray, names: Iterable[str]) -> tuple[bytes, dict[str, tuple[str, np.ndarray]]]:
    """(the body with its large top-level arrays of numbers replaced by placeholder strings,
    {placeholder: (name, array)}). The caller checks each placeholder is a top-level value of its
    member (`restore`); if one is not, the body must be parsed whole instead."""
    view = np.frombuffer(raw, dtype=np.uint8)
    pieces, found, last = [], {}, 0
    for match in _member(names).finditer(raw):
        start = match.end() - 1
        if start < last:
            continue
        extent = _extent(view, start)
        if extent is None or extent[0] - start < MIN_CUT:
            continue
        array = _read(raw, start, extent[0], extent[1])
        if array is None:
            continue
        placeholder = f"\u0000array {secrets.token_hex(8)}"
        found[placeholder] = (match.group(1).decode(), array)
        pieces += [bytes(raw[last:start]), json.dumps(placeholder).encode()]
        last = extent[0]
    if not found:
        return bytes(raw), {}
    pieces.append(bytes(raw[last:]))
    return b"".join(pieces), found


def restore(data: object, found: dict[str, tuple[str, np.ndarray]]) -> bool:
    """Put the arrays back into the parsed body, in place; False if a placeholder is not where it
    was cut (a nested member, or a key given twice): then the body must be parsed whole."""
    if not found:
        return True
    if not isinstance(data, dict):
        return False
    for placeholder, (name, array) in found.items():
        if data.get(name) != placeholder:
            return False
        data[name] = array
    return True
