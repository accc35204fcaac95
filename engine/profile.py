"""The kernel of two points of one norm as a function of their correlation, layer by layer.

On the circle and the sphere every point has the same x.x/d = q, so K(x, x') depends on x.x'/d alone: the
profile of `engine.spectra` and the Funk-Hecke nodes of `engine.sphere` are one row of distinct values,
not a Gram tile. They are laid out as a (rows, `ROW`) block and run through the recursions of
`engine.analytic` (closed forms, or the Chebyshev interpolant of each layer's dual) a few layers per
call, so a deep network reports its progress in layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from engine.analytic import KERNELS, Carry, hyperparameters, recursion_finish, recursion_start, recursion_step
from engine.architectures import Architecture, Family, check_architecture
from engine.dual import CLOSED_FORMS

ROW = 256  # values per row of the block (a multiple of engine.analytic.FALLBACK_CHUNK)
REPORTS = 200  # at most this many progress calls: every ceil(depth / REPORTS) layers

LayerProgress = Callable[[int, int], None]


def entries(n: int) -> int:
    """Kernel entries the profile of n distinct correlations evaluates per layer (padding included)."""
    return max(1, math.ceil(n / ROW)) * ROW


@partial(jax.jit, static_argnames=("family", "method"))
def _begin(q12: Array, q: Array, hyper: Array, *, family: Family, method: str) -> Carry:
    del method
    return recursion_start(family, hyper, q12, q, q)


@partial(jax.jit, static_argnames=("family", "method"))
def _advance(carry: Carry, hyper: Array, layers: Array, *, family: Family, method: str) -> Carry:
    """`layers` more layers of the recursions (a traced count: one compilation)."""
    return lax.fori_loop(0, layers, recursion_step(family, method, hyper, False), carry)


def correlation_profile(arch: Architecture, q: float, q12: np.ndarray, *, kernel: str = "ntk",
                        progress: LayerProgress | None = None) -> np.ndarray:
    """K(x, x') for points with x.x/d = x'.x'/d = q and x.x'/d = each of q12 (n,) -> (n,), float64.

    progress(layers done, depth) is called every ceil(depth / REPORTS) layers.
    """
    check_architecture(arch)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    values, where = np.unique(np.asarray(q12, dtype=np.float64).reshape(-1), return_inverse=True)
    block = np.full(entries(values.size), q, dtype=np.float64)
    block[: values.size] = values
    method = "closed" if arch.activation in CLOSED_FORMS else "chebyshev"
    static = {"family": arch.family, "method": method}
    chunk = max(1, math.ceil(arch.depth / REPORTS))
    with jax.enable_x64(True):
        hyper, _ = hyperparameters(arch, np.float64)
        carry = _begin(block.reshape(-1, ROW), np.asarray(q, np.float64), hyper, **static)
        for done in range(0, arch.depth, chunk):
            layers = min(chunk, arch.depth - done)
            carry = _advance(carry, hyper, np.asarray(layers, np.int32), **static)
            if progress is not None:
                jax.block_until_ready(carry)
                progress(done + layers, arch.depth)
        out = np.asarray(recursion_finish(arch.family, jnp.asarray(hyper), carry, (kernel,))[kernel]).reshape(-1)
    return out[: values.size][where.reshape(-1)]
