"""Kernel regression at large N: Nystrom centres and a preconditioned conjugate gradient (Falkon).

Rudi, Carratino & Rosasco, "FALKON: An Optimal Large Scale Kernel Method" (NeurIPS 2017), Alg. 1.
With M centres x_M drawn uniformly (seeded) from the n training points, the predictor is
f(x) = K(x, x_M) alpha, alpha minimising

    sum_i c_i (K(x_i, x_M) alpha - y_i)^2 + r alpha^T K_MM alpha,

r = ridge x s (s = mean diag K(X, X), as `engine.regression`), c_i the multiplicities of coincident
points (`merge_coincident`); that is (K_nM^T C K_nM + r K_MM) alpha = K_nM^T C y. With M = n it is the
exact ridge solve. Everything runs on K / s. Falkon's preconditioner: K_MM = T^T T, A^T A = T T^T / M +
lambda I with lambda = r / n (n = sum c_i), B = T^-1 A^-1 / sqrt(n); conjugate gradient on
B^T H B beta = B^T K_nM^T C y, alpha = B beta, whose condition number stays O(1) when M exceeds the
kernel's effective dimension at lambda.

The GP posterior variance is the DTC approximation (Quinonero-Candela & Rasmussen, JMLR 2005, eq. 20
without the noise term): var(x) = k(x, x) - q(x, x) + r k_xM Sigma k_Mx, q(x, x) = k_xM K_MM^-1 k_Mx,
Sigma = (r K_MM + K_Mn C K_nM)^-1; with M = n it is the exact posterior variance.

Memory: K_nM, n M floats (3.3 GB at n = 100k, M = 4096), and a few M x M matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from engine.analytic import KERNELS, analytic_diagonal, analytic_kernels
from engine.architectures import Architecture
from engine.regression import Prediction, merge_coincident
from engine.tiling import Cancelled

JITTER = 1e-13  # added to the scaled K_MM's diagonal, times M, so that its Cholesky exists (Falkon's eps M)

Report = Callable[[float, str], None]  # (fraction done, message)
Gram = Callable[[np.ndarray, np.ndarray, Callable[[int, int], None]], np.ndarray]  # (points, centres, progress) -> K


class NystromFit(NamedTuple):
    """prediction: the mean (m,) or (m, k), and the variance when asked; iterations: CG steps taken;
    residual: the largest relative residual over the columns at the end; centres: (M,) their indices
    into the (merged) training points."""

    prediction: Prediction
    iterations: int
    residual: float
    centres: np.ndarray


def nystrom_regression(
    x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, *, arch: Architecture, kernel: str = "ntk",
    ridge: float = 1e-6, centres: int = 4096, seed: int = 0, tolerance: float = 1e-10, max_iterations: int = 200,
    return_variance: bool = False, report: Report | None = None, should_stop: Callable[[], bool] | None = None,
    gram: Gram | None = None,
) -> NystromFit:
    """Nystrom kernel regression with `arch`'s analytic `kernel` (module docstring).

    x_train: (n, d); y_train: (n,) or (n, k); x_test: (m, d). ridge: relative to the training Gram's
    mean diagonal (> 0: the Nystrom system needs it). centres: M (at most the distinct training
    points). tolerance: CG stops when every column's residual norm is below tolerance x its right-hand
    side's. report(fraction, message) is told of the kernels and of each CG step; should_stop() is
    polled between steps (then `Cancelled`). gram(points, centres, progress): K(points, centres) of
    `kernel`, (len(points), M), unscaled; default `analytic_kernels` in this process (a caller may
    spread it over machines: it must return the same numbers).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if return_variance and kernel != "nngp":
        raise ValueError("return_variance needs kernel='nngp': the posterior variance is the NNGP's")
    if isinstance(ridge, bool) or not np.isfinite(ridge) or ridge <= 0:
        raise ValueError(f"ridge must be a finite number > 0 for the Nystrom solver, got {ridge!r}")
    if isinstance(centres, bool) or not isinstance(centres, (int, np.integer)) or centres < 1:
        raise ValueError(f"centres must be an integer >= 1, got {centres!r}")
    if not 0 < tolerance < 1 or isinstance(max_iterations, bool) or max_iterations < 1:
        raise ValueError(f"need 0 < tolerance < 1 and max_iterations >= 1, got {tolerance!r}, {max_iterations!r}")
    tell = report or (lambda fraction, message: None)
    merged = merge_coincident(x_train, y_train)
    x, c = merged.x, merged.multiplicity.astype(np.float64)
    y = merged.y.reshape(len(x), -1)
    n_eff = float(c.sum())
    pick = np.sort(np.random.default_rng(seed).choice(len(x), size=min(centres, len(x)), replace=False))
    m = pick.size
    scale = float(np.sum(c * analytic_diagonal(x, arch=arch, kernels=(kernel,))[kernel]) / n_eff)
    if not scale > 0:
        raise ValueError(f"the training Gram matrix has mean diagonal {scale:.3g}: a kernel that vanishes "
                         "(or underflowed float64) on the training points cannot be solved")

    def kernels_to(points: np.ndarray, what: str, start: float, span: float) -> np.ndarray:
        def progress(done: int, total: int) -> None:
            tell(start + span * done / total, f"{what}: {done}/{total} tiles")

        if gram is not None:
            return gram(points, x[pick], progress) / scale
        return analytic_kernels(points, x[pick], arch=arch, kernels=(kernel,), progress=progress,
                                should_stop=should_stop)[kernel] / scale

    k_mm = analytic_kernels(x[pick], arch=arch, kernels=(kernel,))[kernel] / scale
    k_nm = kernels_to(x, f"K_nM {len(x)} x {m}", 0.0, 0.6)
    t = _cholesky(k_mm + JITTER * m * np.eye(m), "K_MM of the centres")
    lam = ridge / n_eff
    a = _cholesky(t @ t.T / m + lam * np.eye(m), "Falkon's preconditioner")

    def precondition(v: np.ndarray) -> np.ndarray:  # B v
        return scipy.linalg.solve_triangular(t, scipy.linalg.solve_triangular(a, v), check_finite=False) \
            / math.sqrt(n_eff)

    def precondition_t(v: np.ndarray) -> np.ndarray:  # B^T v
        inner = scipy.linalg.solve_triangular(t, v, trans="T", check_finite=False)
        return scipy.linalg.solve_triangular(a, inner, trans="T", check_finite=False) / math.sqrt(n_eff)

    def system(v: np.ndarray) -> np.ndarray:  # B^T H B v, H = K_nM^T C K_nM + lambda n K_MM
        u = precondition(v)
        return precondition_t(k_nm.T @ (c[:, None] * (k_nm @ u)) + lam * n_eff * (k_mm @ u))

    beta, iterations, residual = _conjugate_gradient(
        system, precondition_t(k_nm.T @ (c[:, None] * y)), tolerance, max_iterations, tell, should_stop)
    alpha = precondition(beta)
    x_test = np.asarray(x_test, dtype=np.float64)
    k_test = kernels_to(x_test, f"K_test {len(x_test)} x {m}", 0.9, 0.05 if return_variance else 0.1)
    mean = (k_test @ alpha).reshape((len(k_test), *merged.y.shape[1:]))
    variance = None
    if return_variance:
        tell(0.95, "DTC variance: K_Mn C K_nM")
        diag = analytic_diagonal(x_test, arch=arch, kernels=(kernel,))[kernel] / scale
        sigma = _cholesky(k_nm.T @ (c[:, None] * k_nm) + ridge * k_mm + JITTER * m * np.eye(m), "r K_MM + K_Mn C K_nM")
        q = np.sum(scipy.linalg.solve_triangular(t, k_test.T, trans="T") ** 2, axis=0)
        s = np.sum(scipy.linalg.solve_triangular(sigma, k_test.T, trans="T") ** 2, axis=0)
        variance = np.maximum(diag - q + ridge * s, 0.0) * scale
    return NystromFit(Prediction(mean, variance), iterations, residual, pick)


def _cholesky(a: np.ndarray, what: str) -> np.ndarray:
    """The upper Cholesky factor T of a (a = T^T T); ValueError naming `what` when it fails."""
    try:
        return scipy.linalg.cholesky(a, lower=False, check_finite=False)
    except np.linalg.LinAlgError:
        raise ValueError(f"{what} is not positive definite: too many coincident or near-coincident centres "
                         "for float64; use fewer centres or a larger ridge") from None


def _conjugate_gradient(apply: Callable[[np.ndarray], np.ndarray], b: np.ndarray, tolerance: float,
                        max_iterations: int, tell: Report,
                        should_stop: Callable[[], bool] | None) -> tuple[np.ndarray, int, float]:
    """Solve apply(X) = b, b (M, k), a symmetric positive definite operator, column by column in one
    loop. Returns (X, iterations, the largest relative residual ||b - apply(X)|| / ||b|| at the end)."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = np.sum(r * r, axis=0)
    norm_b = np.sqrt(np.sum(b * b, axis=0))
    norm_b[norm_b == 0] = 1.0
    residual = float(np.max(np.sqrt(rr) / norm_b))
    iterations = 0
    while residual > tolerance and iterations < max_iterations:
        if should_stop is not None and should_stop():
            raise Cancelled("the Nystrom solve was cancelled")
        ap = apply(p)
        step = rr / np.where(rr > 0, np.sum(p * ap, axis=0), 1.0)
        x += step * p
        r -= step * ap
        rr_next = np.sum(r * r, axis=0)
        p = r + (rr_next / np.where(rr > 0, rr, 1.0)) * p
        rr = rr_next
        iterations += 1
        residual = float(np.max(np.sqrt(rr) / norm_b))
        tell(0.6 + 0.3 * iterations / max_iterations, f"conjugate gradient: step {iterations}, relative residual "
             f"{residual:.3g}")
    return x, iterations, residual
