"""Smoothness of kernel interpolants on the unit sphere S^(d-1) of R^d: the paper's curvature
measure (eq. 22) by the Laplace-Beltrami operator, and the seed slides' RKHS ratio with the heat
kernel of the sphere. Both reduce to `engine.smoothness` on the circle (d = 2).

The interpolant of training points x_i (unit vectors) is f(x) = sum_i a_i K(x . x_i), K the kernel's
profile (`engine.sphere.sphere_profile`). With K(t) = sum_k lambda_k N(d, k) P_{k,d}(t) (Funk-Hecke,
`engine.sphere`) and the addition theorem, f's degree-k part has the energy (normalised measure)

    E_k = lambda_k^2 N(d, k) a^T P_{k,d}(X X^T) a.

RKHS ratio: H is the RKHS of the heat kernel G(x.y) = sum_k g_k N(d, k) P_{k,d}(x.y), g_k =
exp(-t k (k + d - 2)), t = bandwidth^2 / 2 (on the circle the Gaussian weight exp(-(bandwidth k)^2 / 2)
of `mu_rkhs`); ||f||_H^2 = sum_{k <= cutoff} E_k / g_k, and mu = ||f_heat||_H / ||f||_H with f_heat
the minimum-norm interpolant in H of the same data.

Curvature: mu = ||Delta f|| / ||f|| on the evaluation set's harmonics, Delta the Laplace-Beltrami
operator (eigenvalue -k (k + d - 2) on degree k): on the circle grid, eq. 22 itself (`mu_curvature`);
on S^2, sqrt(sum_{l <= L} (l (l + 1))^2 E_l) / rms(f), E_l by the discrete transform on the Gauss
product grid (`engine.sphere_sets`), rms by its quadrature. d > 3 (no product grid): the same sum from
the exact energies above, sqrt(sum_{k <= K} (k (k + d - 2))^2 E_k / sum_{k <= K} E_k)
(`mu_curvature_spectral`), K = min(n_grid / 2 - 1, MAX_CURVATURE_DEGREE), stopped earlier where the
eigenvalues' rule errors would move either sum by more than SUM_TOLERANCE. For the ReLU NTK
(lambda_k ~ k^-d, the cusp at t = 1) the terms fall as k^(2 - d): the sum grows like K on the circle and
log K on S^2, and converges for d >= 4 (docs/numerics.md).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from engine.architectures import Architecture
from engine.regression import gram_regression, merge_coincident
from engine.smoothness import _unit_peak, mu_curvature
from engine.sphere import funk_hecke, funk_hecke_checked, gegenbauer, multiplicities, sphere_profile
from engine.sphere_sets import grid_energies, sphere_grid

UNIT_TOLERANCE = 1e-9  # | |x_i| - 1 | of the training points
MIN_WEIGHT = 1e-12  # the automatic cut-off's smallest heat weight (as mu_rkhs's)
MAX_CURVATURE_DEGREE = 511  # d > 3: the curvature's highest degree (the d = 4 ReLU sum within ~2e-3 of its limit)
SUM_TOLERANCE = 1e-6  # d > 3: the relative error of the curvature's sums the eigenvalues' errors may cause


class Expansion(NamedTuple):
    """f(x) = sum_i coef_i K(x . centres_i): centres (u, d) the distinct training points, coef (u,), or
    (u, C) for C outputs (a one-hot regression): then energies and norms are sums over the outputs."""

    centres: np.ndarray
    coef: np.ndarray


def check_points(points: ArrayLike, name: str = "points") -> np.ndarray:
    """(n, d) float64 unit vectors, d >= 2, n >= 1; ValueError naming the first row off the sphere."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise ValueError(f"{name} must be an (n, d) matrix with n >= 1 and d >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf")
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(x, axis=1)
    off = ~(np.abs(norms - 1.0) <= UNIT_TOLERANCE)
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(f"{name}[{i}] has norm {norms[i]:.17g}: points must lie on the unit sphere")
    return x


def interpolant(points: ArrayLike, targets: ArrayLike, *, arch: Architecture, kernel: str = "ntk",
                ridge: float = 1e-10) -> Expansion:
    """The kernel interpolant of (points (n, d), targets (n,)) as an expansion in K(x . x_i): the solve of
    `engine.regression.kernel_regression` (coincident points merged, ridge relative to the mean diagonal)."""
    from engine.analytic import analytic_kernels

    merged = merge_coincident(check_points(points), targets)
    k_train = analytic_kernels(merged.x, arch=arch, kernels=(kernel,))[kernel]
    scale = float(np.mean(np.diag(k_train)))
    # gram_regression's mean at test "points" whose kernel row is scale e_i is (its weights)_i
    weights = gram_regression(k_train, scale * np.eye(len(merged.x)), merged.y, ridge=ridge,
                              multiplicity=merged.multiplicity).mean
    return Expansion(merged.x, weights / scale)


def evaluate(expansion: Expansion, x: np.ndarray, *, arch: Architecture, kernel: str = "ntk") -> np.ndarray:
    """(m,) the expansion at x (m, d)."""
    from engine.analytic import analytic_kernels

    return analytic_kernels(x, expansion.centres, arch=arch, kernels=(kernel,))[kernel] @ expansion.coef


def addition_forms(expansion: Expansion, k_max: int) -> np.ndarray:
    """(k_max + 1,) a^T P_{k,d}(X X^T) a, k = 0..k_max, of the expansion (centres X (u, d), coef a (u,);
    for a (u, C) the sum over its columns): the Gegenbauer recurrence of `engine.sphere.gegenbauer`, two
    (u, u) matrices at a time."""
    x, a = expansion
    d, t = x.shape[1], np.clip(x @ x.T, -1.0, 1.0)
    forms = np.empty(k_max + 1)
    previous, current = np.ones_like(t), t
    forms[0] = np.sum(a.sum(axis=0) ** 2)
    for k in range(1, k_max + 1):
        forms[k] = np.sum(a * (current @ a))
        previous, current = current, ((2 * k + d - 2) * t * current - k * previous) / (k + d - 2)
    return forms


def harmonic_energies(expansion: Expansion, coefficients: np.ndarray) -> np.ndarray:
    """(k_max + 1,) E_k = lambda_k^2 N(d, k) a^T P_{k,d}(X X^T) a of the expansion, for the kernel's
    Funk-Hecke eigenvalues `coefficients` lambda_0..lambda_k_max on S^(d-1) (module docstring)."""
    lam = np.asarray(coefficients, dtype=np.float64)
    k_max, d = lam.size - 1, expansion.centres.shape[1]
    return lam**2 * multiplicities(d, k_max) * addition_forms(expansion, k_max)


def mu_curvature_spectral(expansion: Expansion, coefficients: np.ndarray,
                          errors: np.ndarray | None = None) -> tuple[float, int]:
    """(mu, K): the curvature measure ||Delta f|| / ||f|| of the expansion from its exact harmonic
    energies (module docstring), summed over degrees k <= K; for the kernel's Funk-Hecke eigenvalues
    `coefficients` lambda_0..lambda_k_max on S^(d-1) and, optionally, their error estimates `errors`
    (`engine.sphere.funk_hecke_checked`). K is k_max, or with errors the last degree before the
    eigenvalues' errors would move either sum (from degree 1 on) by more than SUM_TOLERANCE (relative):
    where lambda_k is below the rule's rounding, N(d, k) lambda_k^2 is noise that grows with N(d, k)."""
    lam = np.asarray(coefficients, dtype=np.float64)
    d, k_max = expansion.centres.shape[1], lam.size - 1
    if k_max < 1:
        raise ValueError("give the eigenvalues of degrees 0..k_max, k_max >= 1")
    k = np.arange(k_max + 1, dtype=np.float64)
    weights, forms, counts = (k * (k + d - 2)) ** 2, addition_forms(expansion, k_max), multiplicities(d, k_max)
    energies = lam**2 * counts * forms
    top = k_max
    if errors is not None:
        err = np.abs(np.asarray(errors, dtype=np.float64))
        slack = (2 * np.abs(lam) * err + err * err) * counts * np.abs(forms)  # each E_k's error bound
        within = ((np.cumsum(weights * slack) <= SUM_TOLERANCE * np.cumsum(weights * energies))
                  & (np.cumsum(slack) <= SUM_TOLERANCE * np.cumsum(energies)))[1:]  # degree 0: no curvature
        top = k_max if within.all() else int(np.argmin(within))
        if top < 1:
            raise ValueError("the kernel's eigenvalue of degree 1 is not resolved: the curvature is undefined")
    norm = float(np.sum(energies[: top + 1]))
    if not norm > 0:
        raise ValueError("the interpolant is zero: mu is undefined for the zero function")
    return math.sqrt(float(weights[: top + 1] @ energies[: top + 1]) / norm), top


def heat_cutoff(d: int, bandwidth: float, limit: int, cutoff: int | None = None,
                min_weight: float = MIN_WEIGHT) -> int:
    """The degrees kept: `cutoff`, else the largest k with exp(-t k (k + d - 2)) >= min_weight (t =
    bandwidth^2 / 2); at most `limit`, at least 1. On the circle it is `mu_rkhs`'s own rule."""
    if not np.isfinite(bandwidth) or bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth!r}")
    if cutoff is None:
        if d == 2:
            top = math.sqrt(-2 * math.log(min_weight)) / bandwidth
        else:  # k (k + d - 2) <= x: k <= (sqrt((d - 2)^2 + 4 x) - (d - 2)) / 2
            x = -2 * math.log(min_weight) / (bandwidth * bandwidth)
            top = (math.sqrt((d - 2) ** 2 + 4 * x) - (d - 2)) / 2
        cutoff = int(min(math.floor(top), limit))
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, np.integer)) or cutoff < 1:
        raise ValueError(f"cutoff must be an integer >= 1, got {cutoff!r}")
    return max(1, min(int(cutoff), limit))


def mu_rkhs_sphere(expansion: Expansion, coefficients: np.ndarray, train_points: ArrayLike, train_values: ArrayLike,
                   *, bandwidth: float = 0.5, cutoff: int | None = None) -> dict[str, float]:
    """The heat-kernel RKHS ratio mu = ||f_heat||_H / ||f||_H on S^(d-1) (module docstring).

    expansion: f; coefficients: its kernel's lambda_0..lambda_c (c >= 1: the cut-off is c unless
    `cutoff` is smaller); train_points (n, d), train_values (n,) (or (n, C) for an expansion of C outputs,
    the norms summed over them): the data f_heat interpolates.
    Returns mu, norm_f, norm_gauss (the heat interpolant's norm, named as on the circle), bandwidth
    and cutoff.
    """
    x = check_points(train_points, "train_points")
    y = np.asarray(train_values, dtype=np.float64)
    lam = np.asarray(coefficients, dtype=np.float64)
    if y.shape[:1] != (x.shape[0],) or y.ndim not in (1, 2):
        raise ValueError(f"train_values must have shape ({x.shape[0]},) or ({x.shape[0]}, C), got {y.shape}")
    d = x.shape[1]
    c = heat_cutoff(d, bandwidth, lam.size - 1, cutoff)
    k = np.arange(c + 1)
    g = np.exp(-0.5 * bandwidth**2 * k * (k + d - 2))
    energies = harmonic_energies(expansion, lam[: c + 1])
    norm_f = float(np.sqrt(np.sum(energies / g)))
    if norm_f == 0:
        raise ValueError("the interpolant is zero: mu_rkhs is undefined for the zero function")
    gram = np.tensordot(g * multiplicities(d, c), gegenbauer(c, d, np.clip(x @ x.T, -1.0, 1.0)), axes=1)
    weights = np.linalg.lstsq(gram, y, rcond=1e-13)[0]
    norm_gauss = math.sqrt(max(float(np.sum(weights * (gram @ weights))), 0.0))
    return {"mu": norm_gauss / norm_f, "norm_f": norm_f, "norm_gauss": norm_gauss, "bandwidth": float(bandwidth),
            "cutoff": c}


def mu_curvature_sphere(values: ArrayLike, d: int, n_grid: int) -> float:
    """mu = ||Delta f|| / ||f|| of f sampled on `sphere_grid(d, n_grid)` (module docstring): eq. 22 on the
    circle (d = 2), the Gauss product grid's harmonics on S^2 (d = 3); ValueError for d > 3, whose set
    resolves no harmonics (the interpolants' measure there is `mu_curvature_spectral`)."""
    grid = sphere_grid(d, n_grid)
    f = np.asarray(values, dtype=np.float64)
    if f.shape != (len(grid.points),):
        raise ValueError(f"values must have one entry per point of the set, ({len(grid.points)},), got {f.shape}")
    if d == 2:
        return mu_curvature(f)
    if d != 3:
        raise ValueError(f"the curvature of samples is computed on S^1 and S^2 (d = 2, 3), not d = {d}: "
                         "for an interpolant use mu_curvature_spectral")
    if not np.all(np.isfinite(f)):
        raise ValueError("values contains NaN or Inf")
    f = _unit_peak(f)
    energies = grid_energies(f, grid.shape[0])
    degree = np.arange(energies.size)
    rms = math.sqrt(float(grid.weights @ (f * f)))
    return float(np.sqrt(np.sum((degree * (degree + 1.0)) ** 2 * energies)) / rms)


def sphere_interpolation(arch: Architecture, points: ArrayLike, targets: ArrayLike, *, kernel: str = "ntk",
                         ridge: float = 1e-10, n_grid: int = 4096, curvature: bool = True, rkhs: bool = False,
                         bandwidth: float = 0.5, cutoff: int | None = None) -> dict[str, Any]:
    """Interpolate (points (n, d) on S^(d-1), targets (n,)) with `arch`'s kernel, evaluate the interpolant
    on `sphere_grid(d, n_grid)`, and measure it.

    Returns {"grid_points": (M, d), "interpolant": (M,), "train_points": (n, d), "train_values": (n,),
    "grid_shape", "grid_degree", "mu": the curvature measure (None unless `curvature`), "degree": the highest
    degree the curvature sums (the set's on S^1 and S^2, `mu_curvature_spectral`'s K for d > 3), "rkhs": the
    dict of `mu_rkhs_sphere` (None unless `rkhs`)}. The RKHS cut-off is at most n_grid / 2 - 1, as on the
    circle.
    """
    x = check_points(points)
    y = np.asarray(targets, dtype=np.float64)
    if y.shape != (x.shape[0],):
        raise ValueError(f"targets must have one value per point, ({x.shape[0]},), got {y.shape}")
    d = x.shape[1]
    grid = sphere_grid(d, n_grid)
    expansion = interpolant(x, y, arch=arch, kernel=kernel, ridge=ridge)
    values = evaluate(expansion, grid.points, arch=arch, kernel=kernel)
    out: dict[str, Any] = {"grid_points": grid.points, "interpolant": values, "train_points": x, "train_values": y,
                           "grid_shape": list(grid.shape), "grid_degree": grid.degree, "mu": None, "degree": None,
                           "rkhs": None}
    if curvature and d <= 3:
        out["mu"], out["degree"] = mu_curvature_sphere(values, d, n_grid), grid.degree
    elif curvature:
        lam, errors, _ = funk_hecke_checked(lambda t: sphere_profile(arch, d, t, kernel=kernel), d,
                                            min(n_grid // 2 - 1, MAX_CURVATURE_DEGREE))
        out["mu"], out["degree"] = mu_curvature_spectral(expansion, lam, errors)
    if rkhs:
        c = heat_cutoff(d, bandwidth, n_grid // 2 - 1, cutoff)
        lam = funk_hecke(lambda t: sphere_profile(arch, d, t, kernel=kernel), d, c)
        out["rkhs"] = mu_rkhs_sphere(expansion, lam, x, y, bandwidth=bandwidth, cutoff=c)
    return out
