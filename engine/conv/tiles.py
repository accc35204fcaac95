"""How `engine.conv.analytic` cuts a Gram matrix into tiles of image pairs (plain Python: the
service's cost model reads it without JAX)."""

from __future__ import annotations

import math

# Pixel pairs per tile (a power of two): 2^18 complex128 states are 4 MiB; a layer holds about
# ten such arrays at once, per thread.
TILE_ENTRIES = 1 << 18


def _ceil2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _floor2(n: int) -> int:
    return 1 << max(0, n.bit_length() - 1)


def pixel_pairs(readout: str, spatial: tuple[int, ...]) -> int:
    """Pixel pairs an image pair carries: P^2 for "pool", P for "flatten" (P = prod(spatial))."""
    pixels = math.prod(spatial)
    return pixels * pixels if readout == "pool" else pixels


def tile_edges(n1: int, n2: int, per_pair: int, symmetric: bool, entries: int = TILE_ENTRIES) -> tuple[int, int]:
    """Images per tile (b1, b2): powers of two with b1 b2 per_pair <= entries (or 1 x 1); square
    when symmetric; against a few images (n2 small) the tile grows along n1."""
    pairs = max(1, entries // per_pair)
    square = _floor2(math.isqrt(pairs))
    if symmetric:
        b = min(_ceil2(n1), square)
        return b, b
    b1 = min(_ceil2(n1), max(square, _floor2(max(1, pairs // _ceil2(n2)))))
    b2 = min(_ceil2(n2), _floor2(max(1, pairs // b1)))
    return b1, b2


def tile_count(n1: int, n2: int | None, b1: int, b2: int) -> int:
    """Tiles computed: the upper triangle (diagonal included) when symmetric (n2 None)."""
    k1 = math.ceil(n1 / b1)
    return k1 * (k1 + 1) // 2 if n2 is None else k1 * math.ceil(n2 / b2)
