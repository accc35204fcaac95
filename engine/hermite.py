"""The Gauss-Hermite rule and Hermite coefficients behind the Mehler series of a dual activation (numpy
only: `engine.dual_plan` decides each layer's path with it in the service's API process).

With h_k = He_k / sqrt(k!) the orthonormal Hermite polynomials of N(0, 1) and (z1, z2) standard normal
with correlation rho, Mehler's formula gives E[f(z1) g(z2)] = sum_k a_k b_k rho^k, a_k = E[f(z) h_k(z)].
For (u, v) ~ N(0, [[s11, s12], [s12, s22]]), f = phi(sqrt(s11) .), g = phi(sqrt(s22) .):
T = sum_k a_k(s11) a_k(s22) rho^k, and Tdot likewise with phi'. The coefficients of a point depend on its
variance alone: n quadratures of one variable per layer, and each Gram entry is a polynomial in rho.

The coefficients come from an `NODES`-point Gauss-Hermite rule (probabilists' weight, normalised to a
probability). A series may stop at degree K when its tail sum_{k>=K} a_k^2 is at most `TOLERANCE` times
sum_k a_k^2 = E[phi^2] for every point: by Cauchy-Schwarz the omitted terms of an entry are then below
TOLERANCE sqrt(E[phi(u)^2] E[phi(v)^2]) at every rho. `degree_needed` is that test, the engine's own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

NODES = 384  # Gauss-Hermite nodes of the coefficients' quadrature
# the series' truncation degrees (even, below NODES): Horner's rule runs to K, the terms beyond K are summed
# into a tail (engine.mehler)
DEGREES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 320)
TOLERANCE = 1e-12  # sum_{k >= K} a_k^2 / E[phi^2] at which degree K is accepted


@lru_cache(maxsize=1)
def _eigen() -> tuple[np.ndarray, np.ndarray]:
    """Golub-Welsch: the Jacobi matrix of the h_k (z h_k = sqrt(k+1) h_(k+1) + sqrt(k) h_(k-1)) has the
    nodes as eigenvalues, and its unit eigenvector for z_m has components sqrt(w_m) h_k(z_m)."""
    k = np.arange(1, NODES)
    z, vectors = np.linalg.eigh(np.diag(np.sqrt(k), 1) + np.diag(np.sqrt(k), -1))
    return z, vectors * np.sign(vectors[0])


def rule() -> tuple[np.ndarray, np.ndarray]:
    """(NODES,) nodes z and weights w with sum w f(z) ~ E[f(z)], z ~ N(0, 1)."""
    z, vectors = _eigen()
    return z, vectors[0] ** 2


@lru_cache(maxsize=1)
def projection() -> np.ndarray:
    """(NODES, NODES) matrix P with P[m, k] = w_m h_k(z_m): values at the nodes @ P -> coefficients a_k.
    Taken from the eigenvectors (sqrt(w_m) times sqrt(w_m) h_k(z_m)), accurate where w_m underflows and
    h_k(z_m) overflows."""
    vectors = _eigen()[1]
    return (vectors[0][None, :] * vectors).T


def _softplus(u: np.ndarray) -> np.ndarray:
    return np.maximum(u, 0.0) + np.log1p(np.exp(-np.abs(u)))


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))


# numpy twins of engine.dual.ACTIVATION_FUNCTIONS for the series' activations: (phi, phi')
FUNCTIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "tanh": (np.tanh, lambda u: 1.0 - np.tanh(u) ** 2),
    "softplus": (_softplus, _sigmoid),
    "sigmoid": (_sigmoid, lambda u: _sigmoid(u) * (1.0 - _sigmoid(u))),
}


def tails(coef: np.ndarray) -> np.ndarray:
    """(..., NODES) coefficients -> (..., len(DEGREES)): sum_{k >= K} a_k^2 / sum_k a_k^2 for each K
    (0 where phi = 0)."""
    squares = coef * coef
    total = squares.sum(axis=-1)
    after = np.stack([squares[..., d:].sum(axis=-1) for d in DEGREES], axis=-1)
    return np.where(total[..., None] > 0, after / np.where(total > 0, total, 1.0)[..., None], 0.0)


def degree_needed(activation: str, variances: np.ndarray) -> int | None:
    """The smallest of `DEGREES` whose series is accurate (T and Tdot) for every variance, None if none is."""
    z = rule()[0]
    roots = np.sqrt(np.asarray(variances, dtype=np.float64).reshape(-1, 1))
    ok = np.ones(len(DEGREES), dtype=bool)
    for f in FUNCTIONS[activation]:
        ok &= np.all(tails(f(roots * z) @ projection()) <= TOLERANCE, axis=0)
    return next((d for d, good in zip(DEGREES, ok, strict=True) if good), None)
