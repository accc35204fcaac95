"""Analytic NNGP and NTK Gram matrices of infinitely wide ResNets and MLPs.

The kernels follow forward recursions (shared/docs/kernels.md section 2), applied
entrywise to Gram tiles. A tile of entries needs only q = x.x'/d for its pairs and the
diagonal q of its rows and columns, so the matrix is computed tile by tile, in bounded
memory, in a few fixed tile shapes (few compilations whatever N is), on all cores, and can
be written straight into a `.npy` memory map.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import islice

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from engine.architectures import Architecture, check_architecture
from engine.dual import CLOSED_FORMS, dual

KERNELS = ("nngp", "ntk")
# Tile edge for closed-form activations (a power of two); quadrature ones use a smaller one,
# since each entry of theirs holds thousands of quadrature nodes.
TILE = 512
QUADRATURE_TILE = 16
MIN_BUCKET = 16

Progress = Callable[[int, int], None]


def _variances(arch: Architecture, q) -> jnp.ndarray:
    """Diagonal recursion: S_l(x, x) entering each layer's activation. q (n,) -> (L, n)."""
    sw2, sb2, act = arch.sigma_w**2, arch.sigma_b**2, arch.activation
    c = (arch.alpha * arch.sigma_v) ** 2

    def step(k, _):
        s = sw2 * k + sb2
        t = dual(act, s, s, s)[0]
        return (k + c * t if arch.kind == "resnet" else t), s

    _, s = lax.scan(step, q, None, length=arch.depth)
    return s


def _recursion(arch: Architecture, kernels: tuple[str, ...], q12, s11, s22) -> dict[str, jnp.ndarray]:
    """Entrywise recursions for pairs with q12 = x.x'/d, of any shape.

    s11, s22: (L, ...) the `_variances` of the first and second points of each pair,
    broadcastable against q12 (for a tile: (L, n1, 1) and (L, 1, n2)).
    Returns {name: array of q12's shape}.
    """
    sw2, sb2, act = arch.sigma_w**2, arch.sigma_b**2, arch.activation

    # Layers run in a loop (unrolled, XLA splits and duplicates the chain, several times
    # slower). The pair state (K or S, and Theta) travels as one complex array K + i Theta:
    # XLA then fuses each layer into a single pass over the tile instead of four.
    if arch.kind == "resnet":
        c = (arch.alpha * arch.sigma_v) ** 2

        def layer(layer_index, z):
            k12, th = z.real, z.imag
            s12 = sw2 * k12 + sb2
            t12, tdot12 = dual(act, s11[layer_index], s12, s22[layer_index])
            return lax.complex(k12 + c * t12, th + c * (t12 + tdot12 * (s12 + sw2 * th)))

        z = lax.fori_loop(0, arch.depth, layer, lax.complex(q12, q12))
        out = {"nngp": sw2 * z.real + sb2, "ntk": sw2 * (z.real + z.imag) + sb2}
    else:

        def layer(layer_index, z):
            s12, th = z.real, z.imag
            t12, tdot12 = dual(act, s11[layer_index], s12, s22[layer_index])
            s12 = sw2 * t12 + sb2
            return lax.complex(s12, s12 + sw2 * tdot12 * th)

        s12 = sw2 * q12 + sb2
        z = lax.fori_loop(0, arch.depth, layer, lax.complex(s12, s12))
        out = {"nngp": z.real, "ntk": z.imag}
    return {name: out[name] for name in kernels}


@partial(jax.jit, static_argnames=("arch", "kernels"))
def _tile(q12, q11, q22, *, arch: Architecture, kernels: tuple[str, ...]):
    """One Gram tile: q12 (b1, b2), q11 (b1,), q22 (b2,) -> {name: (b1, b2)}.

    The diagonal variances are computed first, at O((b1 + b2) L) cost, and held apart (an
    optimisation barrier) so the entrywise loop reads them rather than recomputing them.
    """
    s11, s22 = lax.optimization_barrier((_variances(arch, q11)[:, :, None], _variances(arch, q22)[:, None, :]))
    return _recursion(arch, kernels, q12, s11, s22)


@partial(jax.jit, static_argnames=("arch", "kernels"))
def _diagonal(q, *, arch: Architecture, kernels: tuple[str, ...]):
    """K(x, x) for q = x.x/d of shape (n,) -> {name: (n,)}."""
    s = _variances(arch, q)
    return _recursion(arch, kernels, q, s, s)


def check_points(x, name: str) -> np.ndarray:
    """x as a float64 (n, d) array, or ValueError naming `name` (ragged, empty, NaN/Inf)."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 2-D array of numbers (points x dimension): {exc}") from exc
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (points, dimension), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def check_pair(x1, x2) -> tuple[np.ndarray, np.ndarray | None]:
    """`check_points` of x1 and of x2 (None stays None), which must share the dimension d."""
    x1 = check_points(x1, "x1")
    x2 = None if x2 is None else check_points(x2, "x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ValueError(f"x1 and x2 must have the same dimension d; got x1 {x1.shape}, x2 {x2.shape}")
    return x1, x2


def check_kernels(kernels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(kernels, str):
        kernels = (kernels,)
    kernels = tuple(kernels)
    bad = [k for k in kernels if k not in KERNELS]
    if bad or not kernels:
        raise ValueError(f"kernels must be a non-empty subset of {KERNELS}, got {list(kernels)}")
    return tuple(k for k in KERNELS if k in kernels)


def _check_dtype(dtype: str) -> np.dtype:
    if str(dtype) not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return np.dtype(str(dtype))


def _bucket(n: int, tile: int) -> int:
    """Padded tile edge for n points: a power of two in [MIN_BUCKET, tile]."""
    return min(tile, max(MIN_BUCKET, 1 << (n - 1).bit_length()))


def _pad(a: np.ndarray, size: int, value: float) -> np.ndarray:
    if a.shape[0] == size:
        return a
    width = [(0, size - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    return np.pad(a, width, constant_values=value)


def analytic_diagonal(x, *, arch: Architecture, kernels: Sequence[str] = KERNELS,
                      dtype: str = "float64") -> dict[str, np.ndarray]:
    """K(x_i, x_i) for each point. x: (n, d) -> {name: (n,)}."""
    x = check_points(x, "x")
    check_architecture(arch)
    kernels, dt = check_kernels(kernels), _check_dtype(dtype)
    n, size = x.shape[0], _bucket(x.shape[0], TILE)
    q = np.einsum("ij,ij->i", x, x) / x.shape[1]
    parts = []
    with jax.enable_x64(dt == np.float64):
        for start in range(0, n, size):
            chunk = q[start:start + size]
            out = _diagonal(jnp.asarray(_pad(chunk, size, 1.0), dtype=dt), arch=arch, kernels=kernels)
            parts.append({k: np.asarray(v)[: chunk.size] for k, v in out.items()})
    return {k: np.concatenate([part[k] for part in parts]) for k in kernels}


def analytic_kernels(
    x1, x2=None, *, arch: Architecture, kernels: Sequence[str] = KERNELS, dtype: str = "float64",
    progress: Progress | None = None, out: Mapping[str, np.ndarray] | None = None,
    should_stop: Callable[[], bool] | None = None, workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Analytic NNGP/NTK Gram matrices of the infinitely wide `arch`.

    x1: (n1, d); x2: (n2, d), None means x1 (only tiles on and above the diagonal are
    computed, and the diagonal comes from the exact diagonal recursion).
    Returns {name: (n1, n2) array of `dtype`} for each name in `kernels`.
    out: optional {name: preallocated (n1, n2) array}, e.g. `np.lib.format.open_memmap`,
    to write a large Gram matrix straight to disk; it is filled and returned.
    progress(done, total) is called as tiles finish; should_stop() is polled between tiles
    and, when true, stops the work with `Cancelled`. workers: threads (default: all cores).
    """
    x1, x2 = check_pair(x1, x2)
    check_architecture(arch)
    kernels, dt = check_kernels(kernels), _check_dtype(dtype)
    symmetric = x2 is None
    xb = x1 if symmetric else x2
    n1, n2, d = x1.shape[0], xb.shape[0], x1.shape[1]
    result = _outputs(out, kernels, (n1, n2), dt)

    tile = TILE if arch.activation in CLOSED_FORMS else QUADRATURE_TILE
    b1, b2 = _bucket(n1, tile), _bucket(n2, tile)
    q1 = np.einsum("ij,ij->i", x1, x1) / d
    q2 = q1 if symmetric else np.einsum("ij,ij->i", xb, xb) / d
    blocks = [(i, j) for i in range(0, n1, b1) for j in range(0, n2, b2) if not symmetric or j >= i]

    def compute(block):
        i, j = block
        xi, xj = x1[i:i + b1], xb[j:j + b2]
        q12 = _pad(xi @ xj.T / d, b1, 0.0)
        q12 = np.pad(q12, ((0, 0), (0, b2 - q12.shape[1]))) if q12.shape[1] < b2 else q12
        with jax.enable_x64(dt == np.float64):
            tiles = _tile(jnp.asarray(q12, dt), jnp.asarray(_pad(q1[i:i + b1], b1, 1.0), dt),
                          jnp.asarray(_pad(q2[j:j + b2], b2, 1.0), dt), arch=arch, kernels=kernels)
            return block, {k: np.asarray(v)[: len(xi), : len(xj)] for k, v in tiles.items()}

    workers = workers or os.cpu_count() or 1
    todo = iter(blocks)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # a bounded window of tiles in flight, so finished tiles never pile up in memory
        pending = deque(pool.submit(compute, block) for block in islice(todo, 2 * workers))
        done = 0
        while pending:
            (i, j), tiles = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(compute, following))
            for name, values in tiles.items():
                ni, nj = values.shape
                if symmetric and i == j:  # mirror the upper triangle: exactly symmetric
                    values = np.triu(values) + np.triu(values, 1).T
                result[name][i:i + ni, j:j + nj] = values
                if symmetric and i != j:
                    result[name][j:j + nj, i:i + ni] = values.T
            done += 1
            if progress is not None:
                progress(done, len(blocks))
            if should_stop is not None and should_stop():
                for future in pending:
                    future.cancel()
                raise Cancelled("analytic_kernels was cancelled")
    if symmetric:
        diagonal = analytic_diagonal(x1, arch=arch, kernels=kernels, dtype=str(dt))
        for name in kernels:
            idx = np.arange(n1)
            result[name][idx, idx] = diagonal[name]
    return result


class Cancelled(Exception):
    """A long computation stopped because its caller asked it to."""


def _outputs(out, kernels, shape, dt) -> dict[str, np.ndarray]:
    if out is None:
        return {k: np.empty(shape, dtype=dt) for k in kernels}
    missing = [k for k in kernels if k not in out]
    if missing:
        raise ValueError(f"out is missing arrays for kernels {missing}")
    for k in kernels:
        if tuple(out[k].shape) != shape:
            raise ValueError(f"out[{k!r}] must have shape {shape}, got {tuple(out[k].shape)}")
    return {k: out[k] for k in kernels}
