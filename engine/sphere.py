"""Spectra of the kernels on the sphere S^(d-1): Funk-Hecke eigenvalues and their decay.

A kernel of points on the unit sphere of R^d that depends only on t = x.x' (every kernel of the
engine does, for |x| = |x'| = 1) has the spherical harmonics as eigenfunctions; degree k's
eigenvalue is (Funk-Hecke)

    lambda_k = (|S^(d-2)| / |S^(d-1)|) int_0^pi K(cos th) P_{k,d}(cos th) sin(th)^(d-2) dth,

P_{k,d} the Gegenbauer polynomial normalised to P_{k,d}(1) = 1 (cos(k th) for d = 2), and
K(t) = sum_k lambda_k N(d, k) P_{k,d}(t), N(d, k) the number of degree-k harmonics. At d = 2,
lambda_k is the k-th Fourier coefficient of the circle profile (`engine.spectra.circle_spectrum`).

The integral is a fixed Gauss-Legendre rule in the angle th on [0, pi] (`nodes_for`): K(cos th) is
analytic in th there (the cusp of the ReLU kernels at t = 1 is a smooth point in th), so the rule
converges geometrically once it resolves the oscillation of P_{k,d}. docs/numerics.md has the
accuracy measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.special import roots_legendre

from engine.architectures import Architecture

MAX_NODES = 1 << 16
RESOLVED = 100.0  # a degree enters the decay fit when |lambda_k| exceeds this many times its error estimate
# asymptotic decay exponents of lambda_k, k -> infinity, as functions of d (Bietti & Mairal 2019,
# Belfer et al. 2021): the ReLU NTK (MLP and ResNet alike) and the ReLU NNGP (arc-cosine kernel)
ASYMPTOTIC = {"ntk": lambda d: -float(d), "nngp": lambda d: -float(d + 2)}


def nodes_for(k_max: int, d: int) -> int:
    """Gauss-Legendre nodes in th for degrees 0..k_max on S^(d-1).

    The integrand is K(cos th), analytic in th, times a trigonometric polynomial of degree
    k + d - 2. The n-node rule is exact for polynomials in th of degree 2n - 1, and cos(m th) on
    [0, pi] is one of degree about m pi / 2 to full precision, so about 0.8 m nodes suffice (300
    resolve k <= 256 to 1e-13 for a ReLU ResNet). The rule takes 2 (k_max + d), over twice that,
    and 512 more for kernels narrower than the oscillation. Its error against a rule of 4x the nodes,
    k <= 256, every activation: below 5e-14 of lambda_0 (docs/numerics.md).
    """
    return int(min(MAX_NODES, 2 * (k_max + d) + 512))


def check_rule(n: int) -> int:
    """The nodes of the rule every spectrum is computed with again, for its error estimate."""
    return n + n // 4


@lru_cache(maxsize=16)
def gauss_angles(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(angles, weights) of the n-node Gauss-Legendre rule on [0, pi] (read-only arrays).

    The starting nodes are scipy's `roots_legendre` (O(n^2): numpy's `leggauss` solves a dense
    eigenproblem, 14 s at n = 5767 against 0.7 s); nodes from such solvers are off by ~n ulps, which
    moves lambda_k by ~1e-14 at n = 500 and 3e-13 at n = 4000, so here they are made exactly symmetric
    and refined by two Newton steps on P_n, and the weights are 2 / ((1 - x^2) P_n'(x)^2), symmetrised too.
    """
    x = roots_legendre(n)[0]
    x = 0.5 * (x - x[::-1])
    for _ in range(2):
        p, dp = _legendre(n, x)
        x = x - p / dp
        x = 0.5 * (x - x[::-1])
    dp = _legendre(n, x)[1]
    w = 2.0 / ((1.0 - x * x) * dp * dp)
    w = 0.5 * (w + w[::-1])
    angles, weights = 0.5 * math.pi * (x + 1.0), 0.5 * math.pi * w
    angles.flags.writeable = weights.flags.writeable = False
    return angles, weights


def _legendre(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P_n(x) and P_n'(x) by the three-term recurrence."""
    p0, p1 = np.ones_like(x), x.copy()
    for j in range(1, n):
        p0, p1 = p1, ((2 * j + 1) * x * p1 - j * p0) / (j + 1)
    return p1, n * (x * p1 - p0) / (x * x - 1.0)


def gegenbauer(k_max: int, d: int, t: np.ndarray) -> np.ndarray:
    """P_{k,d}(t) for k = 0..k_max: (k_max + 1, *t.shape), normalised to P_{k,d}(1) = 1.

    The three-term recurrence P_{k+1} = ((2k + d - 2) t P_k - k P_{k-1}) / (k + d - 2), stable
    forward on [-1, 1] (the values stay within [-1, 1]); at d = 2 it is Chebyshev's, cos(k th).
    """
    _check(k_max, d)
    t = np.asarray(t, dtype=np.float64)
    p = np.empty((k_max + 1, *t.shape))
    p[0] = 1.0
    if k_max >= 1:
        p[1] = t
    for k in range(1, k_max):
        p[k + 1] = ((2 * k + d - 2) * t * p[k] - k * p[k - 1]) / (k + d - 2)
    return p


def multiplicities(d: int, k_max: int) -> np.ndarray:
    """N(d, k), k = 0..k_max: the dimension of the degree-k spherical harmonics on S^(d-1),
    (2k + d - 2) / k * C(k + d - 3, k - 1) for k >= 1, and 1 for k = 0 (float64: exact up to 2^53)."""
    _check(k_max, d)
    n = [1] + [(2 * k + d - 2) * math.comb(k + d - 3, k - 1) // k for k in range(1, k_max + 1)]
    return np.array(n, dtype=np.float64)


def area_ratio(d: int) -> float:
    """|S^(d-2)| / |S^(d-1)| = Gamma(d / 2) / (sqrt(pi) Gamma((d - 1) / 2)); 1 / pi at d = 2."""
    return math.exp(math.lgamma(d / 2) - math.lgamma((d - 1) / 2)) / math.sqrt(math.pi)


def funk_hecke(kernel: Callable[[np.ndarray], np.ndarray], d: int, k_max: int, nodes: int | None = None) -> np.ndarray:
    """lambda_0..lambda_k_max of the zonal kernel K(t) on S^(d-1) (`kernel` maps an array of t to K(t))."""
    _check(k_max, d)
    th, w = gauss_angles(_nodes(k_max, d, nodes))
    return project(np.asarray(kernel(np.cos(th)), dtype=np.float64), th, w, d, k_max)


def funk_hecke_checked(kernel: Callable[[np.ndarray], np.ndarray], d: int, k_max: int,
                       nodes: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(lambda_0..lambda_k_max, errors, nodes): `funk_hecke`'s eigenvalues by a rule of `nodes` (default
    `nodes_for`), and each degree's error estimate, their difference from a rule of a quarter more nodes
    (`check_rule`); `kernel` is called once, on both rules' t."""
    _check(k_max, d)
    n = _nodes(k_max, d, nodes)
    (th, w), (th2, w2) = gauss_angles(n), gauss_angles(check_rule(n))
    values = np.asarray(kernel(np.cos(np.concatenate([th, th2]))), dtype=np.float64).reshape(-1)
    lam = project(values[:n], th, w, d, k_max)
    return lam, np.abs(lam - project(values[n:], th2, w2, d, k_max)), n


def project(values: np.ndarray, th: np.ndarray, w: np.ndarray, d: int, k_max: int) -> np.ndarray:
    """The Funk-Hecke sums of K's `values` at the angles th of a rule with weights w."""
    values = values.reshape(-1)
    if values.shape != th.shape or not np.all(np.isfinite(values)):
        raise ValueError("the kernel must give one finite value per correlation")
    weights = area_ratio(d) * w * values * np.sin(th) ** (d - 2)
    return gegenbauer(k_max, d, np.cos(th)) @ weights


def sphere_profile(arch: Architecture, d: int, t: np.ndarray, *, kernel: str = "ntk") -> np.ndarray:
    """K(x, x') of `arch` for unit vectors of R^d with x.x' = t (the engine's analytic kernel: x.x/d = 1/d,
    x.x'/d = t/d, `engine.profile`)."""
    from engine.profile import correlation_profile

    _check(0, d)
    t = np.clip(np.asarray(t, dtype=np.float64).reshape(-1), -1.0, 1.0)
    return correlation_profile(arch, 1.0 / d, t / d, kernel=kernel)


def decay_exponent(coefficients: np.ndarray, k_min: int, k_max: int,
                   errors: np.ndarray | None = None) -> dict[str, Any]:
    """Least-squares slope of log |lambda_k| against log k over k_min <= k <= k_max.

    Exact zeros are skipped, and with `errors` (an estimate per degree) so is every degree not
    resolved beyond RESOLVED times the largest error of its neighbours (k - 2 .. k + 2): the odd
    degrees of an even kernel, which come out as rounding, and the degrees below the rule's error
    floor. Returns {"value", "standard_error", "k_min", "k_max", "points": degrees fitted} (value and
    standard_error None when fewer than 3 degrees remain).
    """
    lam = np.abs(np.asarray(coefficients, dtype=np.float64))
    if not 1 <= k_min < k_max < lam.size:
        raise ValueError(f"need 1 <= k_min < k_max <= {lam.size - 1}, got k_min {k_min}, k_max {k_max}")
    k = np.arange(k_min, k_max + 1)
    keep = lam[k] > 0
    if errors is not None:
        err = np.abs(np.asarray(errors, dtype=np.float64))
        near = np.max([err[np.clip(k + j, 0, lam.size - 1)] for j in range(-2, 3)], axis=0)
        keep &= lam[k] > RESOLVED * near
    k, y = k[keep], lam[k[keep]]
    result: dict[str, Any] = {"value": None, "standard_error": None, "k_min": int(k_min), "k_max": int(k_max),
                              "points": int(k.size)}
    if k.size < 3:
        return result
    x, y = np.log(k), np.log(y)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ y) / sxx
    rss = float(np.sum((y - y.mean() - slope * xc) ** 2))
    se = math.sqrt(rss / (k.size - 2) / sxx)
    result.update(value=float(slope), standard_error=se)
    return result


def sphere_spectrum(arch: Architecture, d: int = 3, k_max: int = 64, *, kernel: str = "ntk",
                    fit_range: tuple[int, int] | None = None, nodes: int | None = None) -> dict[str, Any]:
    """The Funk-Hecke spectrum of `arch`'s `kernel` on S^(d-1), points of unit norm in R^d.

    The coefficients come from the rule of `nodes` (default `nodes_for`) and again from one of a
    quarter more nodes; their difference is each degree's error estimate, and the decay is fitted on
    the degrees resolved beyond it (`decay_exponent`). Returns {"coefficients": lambda_0..lambda_k_max,
    "errors": the estimates, "multiplicities": N(d, k), "decay_exponent": the fit over fit_range
    (default: the upper half of the degrees, k_max // 2 .. k_max), "asymptotic_exponent": the
    ReLU law, -d for the NTK and -(d + 2) for the NNGP (None for the other activations, whose
    smooth kernels decay faster), "nodes": the rule's size}.
    """
    from engine.analytic import check_kernels

    (kernel,) = check_kernels((kernel,))
    _check(k_max, d)
    if k_max < 4:
        raise ValueError(f"k_max must be >= 4 (the decay is fitted on >= 3 degrees), got {k_max}")
    lam, errors, n = funk_hecke_checked(lambda t: sphere_profile(arch, d, t, kernel=kernel), d, k_max, nodes)
    k_min, k_top = fit_range if fit_range is not None else (max(1, k_max // 2), k_max)
    law = ASYMPTOTIC[kernel](d) if arch.activation == "relu" else None
    return {"coefficients": lam, "errors": errors, "multiplicities": multiplicities(d, k_max),
            "decay_exponent": decay_exponent(lam, k_min, k_top, errors), "asymptotic_exponent": law, "nodes": n}


def _nodes(k_max: int, d: int, nodes: int | None) -> int:
    n = nodes_for(k_max, d) if nodes is None else nodes
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= MAX_NODES:
        raise ValueError(f"nodes must be an integer in [2, {MAX_NODES}], got {nodes!r}")
    return int(n)


def _check(k_max: int, d: int) -> None:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"d (the sphere S^(d-1) in R^d) must be an integer >= 2, got {d!r}")
    if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or k_max < 0:
        raise ValueError(f"k_max must be an integer >= 0, got {k_max!r}")
