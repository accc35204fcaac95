"""Evaluation sets on the unit sphere S^(d-1) of R^d and the harmonic energies of sampled functions.

d = 2: the uniform circle grid of eq. 22 (`engine.smoothness.circle_grid`). d = 3: the Gauss product
grid, n_lat Gauss-Legendre nodes in z = cos(theta) times n_lon = 2 n_lat uniform longitudes; it
integrates exactly every polynomial of degree <= 2 n_lat - 1 on S^2, so the discrete spherical
harmonic transform (`grid_energies`) is exact for functions of degree <= L = n_lat - 1. d > 3: uniform
random points (seed 0), equal weights; no harmonic transform.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from engine.smoothness import circle_grid, circle_points

RANDOM_SEED = 0  # the d > 3 evaluation set's seed (equal requests give equal sets)


class SphereGrid(NamedTuple):
    """points: (M, d) unit vectors; weights: (M,) quadrature weights summing to 1 (the normalised
    surface measure); shape: (n_lat, n_lon) for d = 3 (rows latitude-major, z ascending), (M,)
    otherwise; degree: the highest harmonic degree the set resolves (n_grid / 2 - 1 on the circle,
    n_lat - 1 on S^2), None for d > 3."""

    points: np.ndarray
    weights: np.ndarray
    shape: tuple[int, ...]
    degree: int | None


def product_lat(n_grid: int) -> int:
    """Latitudes of the S^2 product grid for a set of at most n_grid points: floor(sqrt(n_grid / 2))."""
    return max(2, math.isqrt(n_grid // 2))


def sphere_grid(d: int, n_grid: int) -> SphereGrid:
    """The evaluation set of S^(d-1) sized by n_grid (module docstring); n_grid even, >= 8."""
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"d (the sphere S^(d-1) in R^d) must be an integer >= 2, got {d!r}")
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 8 or n_grid % 2:
        raise ValueError(f"n_grid must be an even integer >= 8, got {n_grid!r}")
    if d == 2:
        return SphereGrid(circle_points(circle_grid(n_grid)), np.full(n_grid, 1.0 / n_grid), (n_grid,),
                          n_grid // 2 - 1)
    if d == 3:
        n_lat = product_lat(n_grid)
        points, weights = product_grid(n_lat)
        return SphereGrid(points, weights, (n_lat, 2 * n_lat), n_lat - 1)
    g = np.random.default_rng(RANDOM_SEED).standard_normal((n_grid, d))
    return SphereGrid(g / np.linalg.norm(g, axis=1, keepdims=True), np.full(n_grid, 1.0 / n_grid), (n_grid,), None)


def product_grid(n_lat: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_lat 2 n_lat, 3) points and their weights (sum 1) of the Gauss product grid of S^2;
    row i n_lon + j: latitude z_i (Gauss-Legendre, ascending), longitude 2 pi j / n_lon."""
    z, w = np.polynomial.legendre.leggauss(n_lat)
    n_lon = 2 * n_lat
    phi = 2 * np.pi * np.arange(n_lon) / n_lon
    s = np.sqrt(1.0 - z * z)
    points = np.stack([np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(z, np.ones(n_lon))], axis=-1)
    weights = np.outer(w / 2, np.full(n_lon, 1.0 / n_lon))
    return points.reshape(-1, 3), weights.reshape(-1)


def normalized_legendre(degree: int, z: np.ndarray) -> np.ndarray:
    """(degree + 1, degree + 1, len(z)) Pbar[l, m](z), m <= l (zero above): the associated Legendre
    functions normalised so that Pbar_lm(cos th) cos(m phi) and sin(m phi) have mean square 1 on S^2
    (4 pi-normalised, no Condon-Shortley phase), by the standard stable recurrences in l."""
    z = np.asarray(z, dtype=np.float64)
    s = np.sqrt(np.maximum(1.0 - z * z, 0.0))
    p = np.zeros((degree + 1, degree + 1, z.size))
    p[0, 0] = 1.0
    for m in range(1, degree + 1):
        p[m, m] = math.sqrt(3.0 if m == 1 else (2 * m + 1) / (2 * m)) * s * p[m - 1, m - 1]
    for m in range(degree):
        p[m + 1, m] = math.sqrt(2 * m + 3) * z * p[m, m]
        for n in range(m + 2, degree + 1):
            a = math.sqrt((2 * n - 1) * (2 * n + 1) / ((n - m) * (n + m)))
            b = math.sqrt((2 * n + 1) * (n + m - 1) * (n - m - 1) / ((n - m) * (n + m) * (2 * n - 3)))
            p[n, m] = a * z * p[n - 1, m] - b * p[n - 2, m]
    return p


def grid_energies(values: ArrayLike, n_lat: int) -> np.ndarray:
    """(n_lat,) E_l = ||degree-l part of f||^2 (normalised surface measure), l = 0..n_lat - 1, of f
    sampled on `product_grid(n_lat)`: values (n_lat 2 n_lat,), latitude-major. Exact (to rounding)
    when f has degree <= n_lat - 1; otherwise the higher degrees alias into these."""
    f = np.asarray(values, dtype=np.float64).reshape(n_lat, 2 * n_lat)
    z, w = np.polynomial.legendre.leggauss(n_lat)
    g = np.fft.rfft(f, axis=1)[:, :n_lat] / (2 * n_lat)  # (n_lat latitudes, m = 0..L)
    p = normalized_legendre(n_lat - 1, z)  # (l, m, latitude)
    coef = np.einsum("lmi,im->lm", p * (w / 2), g)
    return np.sum(np.abs(coef) ** 2, axis=1)
