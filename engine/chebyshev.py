"""Dual activations as 1-D functions of the correlation, for pairs that share their variances.

Where every point of x1 has one norm and every point of x2 another (the circle, the sphere:
the paper's whole setting), each layer's S11 and S22 are two numbers, so T and Tdot depend
on the pair only through rho = S12 / sqrt(S11 S22). They are then sampled once per layer, by
the quadrature of `engine.dual`, at the Chebyshev-Lobatto points rho_j = cos(pi j / D), and
each entry costs a Clenshaw evaluation of the interpolant instead of a 2-D quadrature.

The degree is the smallest of `DEGREES` whose trailing coefficients say the interpolant is
within `TOLERANCE` (relative) of the samples' function; T becomes steep near rho = +-1 as the
variances grow (it tends to arcsin for tanh), and when even the largest degree does not
resolve it the layer falls back to the quadrature, entry by entry (`lax.switch`: only the
chosen branch runs). rho_0 = 1 is a node, so identical points get the sampled value exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jnp.ndarray

DEGREES = (32, 128)  # each a multiple of the previous (nested Lobatto points)
TOLERANCE = 1e-12
TAIL = 4  # trailing coefficients that estimate the truncation error


def lobatto(degree: int) -> np.ndarray:
    """(degree + 1,) Chebyshev-Lobatto points cos(pi j / degree), from 1 down to -1."""
    return np.cos(np.pi * np.arange(degree + 1) / degree)


def _transform(degree: int) -> np.ndarray:
    """(degree + 1, degree + 1) matrix taking values at `lobatto(degree)` to Chebyshev
    coefficients of the interpolant (a type-I DCT)."""
    j = np.arange(degree + 1)
    m = np.cos(np.pi * np.outer(j, j) / degree) * (2.0 / degree)
    m[:, [0, degree]] *= 0.5
    m[[0, degree], :] *= 0.5
    return m


def clenshaw(coef: Array, x: Array) -> Array:
    """sum_k coef[k] T_k(x), elementwise over x; coef (D + 1,), a static length.

    A loop unrolled by 8: XLA fuses each 8 steps into one pass over x, and compiles quickly.
    """
    coef, x = jnp.asarray(coef), jnp.asarray(x)
    x2 = 2.0 * x
    top = coef.shape[0] - 1

    def step(i: Array, b: tuple[Array, Array]) -> tuple[Array, Array]:
        b1, b2 = b
        return coef[top - i] + x2 * b1 - b2, b1

    zero = jnp.zeros_like(x)
    b1, b2 = lax.fori_loop(0, top, step, (zero, zero), unroll=8)
    return coef[0] + x * b1 - b2


def interpolated_dual(
    sample: Callable[[Array], tuple[Array, Array]], rho: Array,
    exact: Callable[[], tuple[Array, Array]],
) -> tuple[Array, Array]:
    """(T, Tdot) at each correlation of `rho` (any shape).

    sample(nodes) -> (T, Tdot) at an array of correlations; exact() -> (T, Tdot) shaped like
    rho, the fallback when no degree is accurate enough. Samples are drawn lazily: the Lobatto
    points of each degree include those of the previous one, so a
    degree that is not needed is never sampled (`lax.cond`: only the taken branch runs).
    """
    dtype = rho.dtype

    def attempt(level: int, values: Array) -> tuple[Array, Array]:
        degree = DEGREES[level]
        coef = values @ jnp.asarray(_transform(degree).T, dtype)  # (2, degree + 1)
        scale = jnp.maximum(jnp.max(jnp.abs(values), axis=1), jnp.finfo(dtype).tiny)
        accurate = jnp.all(jnp.sum(jnp.abs(coef[:, -TAIL:]), axis=1) <= TOLERANCE * scale)

        def use() -> tuple[Array, Array]:
            return clenshaw(coef[0], rho), clenshaw(coef[1], rho)

        if level + 1 == len(DEGREES):
            return lax.cond(accurate, use, exact)

        def refine() -> tuple[Array, Array]:
            finer = DEGREES[level + 1]
            old = np.arange(0, finer + 1, finer // degree)  # the points already sampled
            new = np.setdiff1d(np.arange(finer + 1), old)
            merged = jnp.zeros((2, finer + 1), dtype).at[:, old].set(values)
            fresh = jnp.stack(sample(jnp.asarray(lobatto(finer)[new], dtype)))
            return attempt(level + 1, merged.at[:, new].set(fresh))

        return lax.cond(accurate, use, refine)

    return attempt(0, jnp.stack(sample(jnp.asarray(lobatto(DEGREES[0]), dtype))))
