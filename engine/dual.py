"""Dual activations: T(S) = E[phi(u) phi(v)] and Tdot(S) = E[phi'(u) phi'(v)].

(u, v) ~ N(0, [[s11, s12], [s12, s22]]). Every function here is elementwise over
broadcastable arrays (jnp), so one call serves a whole Gram tile: s11 (n1, 1),
s12 (n1, n2), s22 (1, n2). ReLU, erf, gelu and the identity have closed forms; the other
activations use a quadrature in polar coordinates (see `gaussian_dual`), or, where every
pair shares the same two variances, a Chebyshev interpolant of it (`engine.chebyshev`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

Array = jnp.ndarray

# asin(t) = t + t^3 P(t^2) on 0 <= t <= 1/2. P interpolates (asin(sqrt u) - sqrt u) / u^1.5
# at 13 Chebyshev nodes of [0, 1/4] (computed in 40-digit arithmetic, then converted to
# monomials); its relative error is below 2e-16 there, so acos below is accurate to a few
# ulps. Plain arithmetic plus one sqrt: XLA fuses it, where its own acos does not vectorise.
_ASIN_P = (
    0.16666666666666669, 0.07499999999998433, 0.04464285714635543, 0.030381944138531247,
    0.02237217294214989, 0.017352392720869973, 0.013971212973552933, 0.011479177415184906,
    0.01032281435018578, 0.005457506718640358, 0.01740087944269402, -0.014851887071247204,
    0.028757851367421566,
)


def _sqrt0(u: Array) -> Array:
    """sqrt(u) for u >= 0, with the derivative 0 instead of NaN where u = 0 (rho snapped to +-1, the
    kernels' own diagonal): the same values, and finite input derivatives (`engine.jacobians`)."""
    positive = u > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, u, 1.0)), 0.0)


def acos(rho: Array) -> Array:
    """arccos for rho in [-1, 1], elementwise; exact 0 at rho = 1 and pi at rho = -1."""
    a = jnp.abs(rho)
    big = a > 0.5
    t = jnp.where(big, _sqrt0(0.5 * (1.0 - a)), a)
    u = t * t
    p = jnp.full_like(u, _ASIN_P[-1])
    for c in _ASIN_P[-2::-1]:
        p = p * u + c
    asin_t = t + t * u * p
    acos_a = jnp.where(big, 2.0 * asin_t, 0.5 * math.pi - asin_t)
    return jnp.where(rho < 0, math.pi - acos_a, acos_a)


def correlation(s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """rho = s12 / sqrt(s11 s22) clipped to [-1, 1], and sqrt(s11 s22).

    rho within a few ulps of +-1 (identical or antipodal inputs, up to the rounding of
    their Gram entries) is set to exactly +-1, so identical points give exact values.
    A zero variance (the input x = 0 without biases) gives rho = 0, not NaN.
    The square roots act on s11 and s22 before broadcasting: on a tile (n1, 1) x (1, n2)
    they cost O(n1 + n2), and the per-entry work is multiplications.
    """
    root11, root22 = jnp.sqrt(s11), jnp.sqrt(s22)
    inv11 = jnp.where(root11 > 0, 1.0 / jnp.where(root11 > 0, root11, 1.0), 0.0)
    inv22 = jnp.where(root22 > 0, 1.0 / jnp.where(root22 > 0, root22, 1.0), 0.0)
    rho = s12 * inv11 * inv22
    snap = 1.0 - 8 * np.finfo(np.dtype(rho.dtype)).eps
    rho = jnp.where(rho >= snap, 1.0, jnp.where(rho <= -snap, -1.0, rho))
    return rho, root11 * root22


def relu_dual(s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """Arc-cosine kernel (Cho & Saul 2009)."""
    rho, norm = correlation(s11, s12, s22)
    theta = acos(rho)
    sin_theta = _sqrt0((1.0 - rho) * (1.0 + rho))
    pi_minus = math.pi - theta
    t = norm * (sin_theta + pi_minus * rho) * (0.5 / math.pi)
    tdot = pi_minus * (0.5 / math.pi)
    return t, tdot


def erf_dual(s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """phi = erf (Williams 1996)."""
    denom = (1.0 + 2.0 * s11) * (1.0 + 2.0 * s22)
    z = jnp.clip(2.0 * s12 / jnp.sqrt(denom), -1.0, 1.0)
    asin_z = 0.5 * math.pi - acos(z)
    t = (2.0 / math.pi) * asin_z
    tdot = (4.0 / math.pi) / jnp.sqrt(denom - 4.0 * s12 * s12)
    return t, tdot


def linear_dual(s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """phi(u) = u: T = s12, Tdot = 1."""
    shape = jnp.broadcast_shapes(jnp.shape(s11), jnp.shape(s12), jnp.shape(s22))
    return jnp.broadcast_to(s12, shape), jnp.ones(shape, dtype=jnp.result_type(s12))


def gelu_dual(s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """phi(u) = u Phi(u), Phi the standard normal CDF.

    With g1, g2 ~ N(0, 1) independent of (u, v), Phi(u) = P(g1 <= u | u), so
    T = E[u v 1{X >= 0} 1{Y >= 0}] for X = u - g1, Y = v - g2, (X, Y) ~ N(0, M),
    M = [[1 + s11, s12], [s12, 1 + s22]]. Projecting u and v on (X, Y) leaves residuals
    independent of the orthant, whose covariance is s12 / det M, and the orthant moments of
    a standard bivariate normal with correlation r are known:
    P = 1/4 + asin(r) / (2 pi), E[X'^2 1] = P + r sqrt(1 - r^2) / (2 pi),
    E[X' Y' 1] = r P + sqrt(1 - r^2) / (2 pi). Tdot = dT/ds12 (Price's theorem), by autodiff.
    det M >= 1 + s11 + s22, so nothing here is singular, identical points included.
    """
    return jax.jvp(lambda c: _gelu_t(s11, c, s22), (s12,), (jnp.ones_like(s12),))


def _gelu_t(a: Array, c: Array, b: Array) -> Array:
    big_a, big_b = 1.0 + a, 1.0 + b
    root = jnp.sqrt(big_a * big_b)
    det = 1.0 + a + b + (a * b - c * c)  # (1 + a)(1 + b) - c^2 without the cancellation
    r = jnp.clip(c / root, -1.0, 1.0)
    w = jnp.sqrt(det) / root  # sqrt(1 - r^2)
    p = 0.25 + (0.5 * math.pi - acos(r)) / (2.0 * math.pi)
    exx, exy = p + r * w / (2.0 * math.pi), r * p + w / (2.0 * math.pi)
    mu0, mu1 = (a * big_b - c * c) / det, c / det  # M^-1 Cov(u, (X, Y))
    mv0, mv1 = c / det, (big_a * b - c * c) / det  # M^-1 Cov(v, (X, Y))
    return (mu0 * mv0 * big_a * exx + (mu0 * mv1 + mu1 * mv0) * root * exy + mu1 * mv1 * big_b * exx
            + c * p / det)


def _gelu(u: Array) -> Array:
    return 0.5 * u * (1.0 + erf(u / math.sqrt(2.0)))


def _gelu_prime(u: Array) -> Array:
    return 0.5 * (1.0 + erf(u / math.sqrt(2.0))) + u * jnp.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)


def _sigmoid(u: Array) -> Array:
    return 0.5 * (1.0 + jnp.tanh(0.5 * u))


def _softplus(u: Array) -> Array:
    return jnp.maximum(u, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(u)))  # log(1 + e^u), cheaper than logaddexp


# name -> (phi, phi'), elementwise jnp functions
ACTIVATION_FUNCTIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "relu": (lambda u: jnp.maximum(u, 0.0), lambda u: (u > 0).astype(u.dtype)),
    "erf": (erf, lambda u: (2.0 / math.sqrt(math.pi)) * jnp.exp(-u * u)),
    "linear": (lambda u: u, jnp.ones_like),
    "tanh": (jnp.tanh, lambda u: 1.0 - jnp.tanh(u) ** 2),
    "gelu": (_gelu, _gelu_prime),
    "softplus": (_softplus, _sigmoid),
    "sigmoid": (_sigmoid, lambda u: _sigmoid(u) * (1.0 - _sigmoid(u))),
}

# Quadrature orders: Gauss-Legendre nodes per arc of the angle and per radial piece.
ANGLE_NODES = 32
RADIAL_NODES = 10
RADIAL_PIECES = 8
RADIAL_CUTOFF = 9.0


def _radial_rule(nodes_per_piece: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes r and weights w with sum w F(r) ~ int_0^R F(r) r exp(-r^2 / 2) dr, R = 9.

    Composite Gauss-Legendre on geometrically graded pieces [0, R/2^k], ..., [R/2, R], so
    activations that are steep at the origin (large variances) are resolved; the tail
    beyond R weighs below 1e-17.
    """
    x, w = np.polynomial.legendre.leggauss(nodes_per_piece)
    edges = np.concatenate([[0.0], RADIAL_CUTOFF * 2.0 ** -np.arange(RADIAL_PIECES - 1, -1, -1)])
    a, b = edges[:-1, None], edges[1:, None]
    r = (0.5 * (a + b) + 0.5 * (b - a) * x).ravel()
    weights = (0.5 * (b - a) * w).ravel() * r * np.exp(-0.5 * r * r)
    return r, weights


def gaussian_dual(
    phis: Sequence[Callable[[Array], Array]], s11: Array, s12: Array, s22: Array,
    angle_nodes: int = ANGLE_NODES, radial_nodes: int = RADIAL_NODES,
) -> list[Array]:
    """[E[phi(u) phi(v)] for phi in phis] for (u, v) ~ N(0, S), elementwise, by quadrature.

    With (z1, z2) = r (cos p, sin p), u = sqrt(s11) r cos p and v = sqrt(s22) r cos(p - theta),
    theta = arccos(rho). Folding p and p + pi together leaves p in [0, pi) and the even part
    of the integrand in r (see `_radial_rule`). The angle is
    split where u or v changes sign (p = pi/2 and theta +- pi/2), so kinked activations
    (ReLU, steps) are integrated exactly by Gauss-Legendre on each arc. The functions share
    the nodes (one pass for T and Tdot).
    """
    rho, _ = correlation(s11, s12, s22)
    theta = acos(rho)[..., None]
    sin_theta = _sqrt0((1.0 - rho) * (1.0 + rho))[..., None]
    kink = jnp.where(theta <= 0.5 * math.pi, theta + 0.5 * math.pi, theta - 0.5 * math.pi)
    lo, hi = jnp.minimum(kink, 0.5 * math.pi), jnp.maximum(kink, 0.5 * math.pi)
    x, w = np.polynomial.legendre.leggauss(angle_nodes)
    starts = jnp.concatenate([jnp.zeros_like(lo), lo, hi], axis=-1)  # (..., 3)
    ends = jnp.concatenate([lo, hi, jnp.full_like(hi, math.pi)], axis=-1)
    half = 0.5 * (ends - starts)
    p = (0.5 * (starts + ends))[..., None] + half[..., None] * x  # (..., 3, angle_nodes)
    wp = half[..., None] * w
    cos_p, sin_p = jnp.cos(p), jnp.sin(p)
    u_dir = jnp.sqrt(s11)[..., None, None] * cos_p
    v_dir = jnp.sqrt(s22)[..., None, None] * (cos_p * rho[..., None, None] + sin_p * sin_theta[..., None])
    r, wr = _radial_rule(radial_nodes)
    u, v = u_dir[..., None] * r, v_dir[..., None] * r  # (..., 3, angle_nodes, radial)
    out = []
    for phi in phis:
        even = phi(u) * phi(v) + phi(-u) * phi(-v)
        inner = jnp.sum(even * wr, axis=-1)
        out.append(jnp.sum(inner * wp, axis=(-2, -1)) / (2.0 * math.pi))
    return out


def quadrature_dual(activation: str, s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """(T, Tdot) of any activation in ACTIVATION_FUNCTIONS, by `gaussian_dual`."""
    s11, s12, s22 = jnp.broadcast_arrays(s11, s12, s22)
    t, tdot = gaussian_dual(ACTIVATION_FUNCTIONS[activation], s11, s12, s22)
    return t, tdot


CLOSED_FORMS = {"relu": relu_dual, "erf": erf_dual, "linear": linear_dual, "gelu": gelu_dual}


def dual(activation: str, s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """(T, Tdot) for `activation`: closed form where one exists, else quadrature."""
    if activation in CLOSED_FORMS:
        return CLOSED_FORMS[activation](s11, s12, s22)
    return quadrature_dual(activation, s11, s12, s22)
