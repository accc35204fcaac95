"""Dual activations of tanh, softplus and sigmoid on points of different norms, by Mehler's series.

T(s11, s12, s22) = sum_k a_k(s11) a_k(s22) rho^k with a_k(s) = E[phi(sqrt(s) z) h_k(z)] (`engine.hermite`):
the 2-D Gaussian expectation splits into one 1-D quadrature per point (a row or a column of the tile,
O(n1 + n2) per layer) and, per entry, a polynomial in rho evaluated by Horner's rule: a few flops per
degree instead of thousands of quadrature nodes. Tdot is the same series with phi'.

The series is kept to degree K (static, chosen on the host by `engine.dual_plan.series_degree` so that
the omitted tail is below `engine.hermite.TOLERANCE`), and the coefficients beyond K are not dropped:
their even and odd parts are summed into two matrices (tail_a @ tail_b.T, a BLAS product) multiplying
the first omitted even and odd powers of rho. At rho = +-1 that is the whole `engine.hermite.NODES`-term
series, so pairs of parallel or antipodal points (identical ones included) get the full quadrature's
value; in between the omitted terms' error stays below the tail bound. Odd phi (tanh) and even phi'
(tanh, sigmoid) skip the chain of the other parity, whose coefficients vanish by symmetry.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from engine.dual import ACTIVATION_FUNCTIONS, correlation
from engine.hermite import projection, rule

Array = jnp.ndarray

# activation -> the parities present in (phi, phi'): "odd" (tanh: a_k = 0 for even k), "even", "odd+1"
# (an odd function plus a constant: sigmoid = 1/2 + tanh(u/2)/2), "all"
PARITY = {"tanh": ("odd", "even"), "sigmoid": ("odd+1", "even"), "softplus": ("all", "all")}


def coefficients(activation: str, variances: Array) -> tuple[Array, Array]:
    """(n,) variances -> the (n, NODES) Hermite coefficients of phi(sqrt(s) .) and phi'(sqrt(s) .)."""
    z, p = jnp.asarray(rule()[0], variances.dtype), jnp.asarray(projection(), variances.dtype)
    u = jnp.sqrt(variances)[:, None] * z
    phi, dphi = ACTIVATION_FUNCTIONS[activation]
    return phi(u) @ p, dphi(u) @ p


def diagonal_dual(activation: str, variances: Array) -> tuple[Array, Array]:
    """(E[phi(sqrt(s) z)^2], E[phi'(sqrt(s) z)^2]) for each variance s, shape preserved: the series at
    rho = 1 (all its terms), summed on the rule's nodes."""
    z, w = (jnp.asarray(a, variances.dtype) for a in rule())
    u = jnp.sqrt(variances)[..., None] * z
    phi, dphi = ACTIVATION_FUNCTIONS[activation]
    return jnp.sum(phi(u) ** 2 * w, axis=-1), jnp.sum(dphi(u) ** 2 * w, axis=-1)


def _series(a: Array, b: Array, rho: Array, degree: int, parity: str) -> Array:
    """sum_k a[:, k] b[:, k] rho^k over all NODES coefficients, (n1, NODES) x (n2, NODES) -> (n1, n2):
    Horner in x = rho^2 for the even and the odd chain to `degree`, the rest as the two tail products."""
    x = rho * rho
    half = degree // 2
    even, odd = parity in ("even", "all"), parity in ("odd", "odd+1", "all")

    def chain(first: int) -> Array:  # sum_j a_(2j+first) b_(2j+first) x^j, j < half, + tail x^half
        a_c, b_c = a[:, first:degree + first:2], b[:, first:degree + first:2]  # (n, half)
        tail = a[:, degree + first::2] @ b[:, degree + first::2].T

        def step(i: Array, p: Array) -> Array:
            j = half - 1 - i
            return p * x + lax.dynamic_index_in_dim(a_c, j, 1) * lax.dynamic_index_in_dim(b_c, j, 1).T

        return lax.fori_loop(0, half, step, tail, unroll=8)

    out = chain(0) if even else (a[:, :1] * b[:, :1].T if parity == "odd+1" else jnp.zeros_like(rho))
    if odd:
        out = out + rho * chain(1)
    return out


def series_dual(activation: str, degree: int, s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """(T, Tdot) of a tile: s11 (n1, 1), s12 (n1, n2), s22 (1, n2); `degree` even, below NODES."""
    rho, _ = correlation(s11, s12, s22)
    rows, cols = coefficients(activation, s11[:, 0]), coefficients(activation, s22[0, :])
    return tuple(_series(a, b, rho, degree, parity)  # type: ignore[return-value]
                 for a, b, parity in zip(rows, cols, PARITY[activation], strict=True))


def check_degree(degree: int) -> int:
    """`degree` if it is an even number below NODES, else ValueError."""
    if degree % 2 or not 0 < degree < np.size(rule()[0]):
        raise ValueError(f"the series degree must be even and below {np.size(rule()[0])}, got {degree}")
    return degree
