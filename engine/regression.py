"""Kernel regression: the NTK interpolant, infinitely wide networks after GD for time t,
and the GP posterior of the NNGP.

Conventions: loss 1/2 ||f(X) - y||^2 (a sum, no 1/n), gradient flow from f_0 = 0, so
f_t(x) = k(x)^T Theta^-1 (I - exp(-Theta t)) y, where t is the training time (learning
rate x steps).

Scale-free solves: the interpolant does not depend on the kernel's scale, which grows or
shrinks geometrically with depth (1e55 for a ReLU ResNet at L = 300, 1e-89 for the MLP).
So `ridge` is relative: ridge x s is added to the diagonal, s = mean(diag K(X, X)), and
every solve runs on K / s (the paper's absolute 1e-10 is the same thing for its kernels,
whose diagonal is of order 1). The GP's noise variance is ridge x s.

Coincident training points (`merge_coincident`) are merged exactly: c copies of a point
with one target are one point with weight c (the loss counts it c times, the GP sees c
observations: noise variance ridge x s / c). Copies with different targets have no
interpolant: ValueError naming their indices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from engine.analytic import KERNELS, analytic_diagonal, analytic_kernels
from engine.architectures import Architecture

POINT_RTOL = 1e-12  # points closer than this (max-norm, relative to the larger one) coincide
TARGET_RTOL = 1e-9  # coincident points' targets are equal within this, relative to max |y|


class Prediction(NamedTuple):
    """mean: (m,) or (m, k) like y_train; variance: (m,) GP posterior variance, or None."""

    mean: np.ndarray
    variance: np.ndarray | None = None


class Merged(NamedTuple):
    """x: (u, d) the distinct points (first of each group); y: (u,) or (u, k) their targets;
    multiplicity: (u,) copies of each; groups: indices into the original points, per point."""

    x: np.ndarray
    y: np.ndarray
    multiplicity: np.ndarray
    groups: list[list[int]]


def merge_coincident(x_train: ArrayLike, y_train: ArrayLike) -> Merged:
    """Merge training points that coincide (max-norm distance <= POINT_RTOL x the larger
    point's max-norm). Their targets must agree (within TARGET_RTOL x max |y|); else
    ValueError naming the indices. x_train: (n, d); y_train: (n,) or (n, k).

    Candidates come from sorting a random projection (|p_i - p_j| <= sqrt(d) x the
    max-norm distance), so the cost is O(n log n + n d), not O(n^2 d)."""
    x = _finite(x_train, "x_train", 2)
    y = _finite(y_train, "y_train", None)
    n, d = x.shape
    if y.shape[0] != n or y.ndim not in (1, 2):
        raise ValueError(f"y_train must have shape ({n},) or ({n}, k) for x_train {x.shape}, got {y.shape}")
    norms = np.max(np.abs(x), axis=1)
    direction = np.random.default_rng(0).standard_normal(d)
    projection = x @ (direction / np.linalg.norm(direction))
    order = np.argsort(projection, kind="stable")
    sorted_p = projection[order]
    ends = np.searchsorted(sorted_p, sorted_p + POINT_RTOL * norms.max() * np.sqrt(d) * (1 + 1e-9), side="right")
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in np.flatnonzero(ends > np.arange(n) + 1):  # only points with a candidate neighbour
        i, others = order[a], order[a + 1:ends[a]]
        close = np.max(np.abs(x[others] - x[i]), axis=1) <= POINT_RTOL * np.maximum(norms[others], norms[i])
        for j in others[close]:
            ri, rj = root(i), root(j)
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([root(i) for i in range(n)])
    firsts, inverse = np.unique(roots, return_inverse=True)
    if len(firsts) == n:
        return Merged(x, y, np.ones(n), [[i] for i in range(n)])
    groups = [np.flatnonzero(inverse == g).tolist() for g in range(len(firsts))]
    scale = float(np.max(np.abs(y))) if y.size else 0.0
    for group in groups:
        spread = np.max(np.abs(y[group] - y[group[0]]))
        if len(group) > 1 and spread > TARGET_RTOL * scale:
            raise ValueError(f"training points {group} coincide but have different targets "
                             f"({', '.join(f'{v:.6g}' for v in np.ravel(y[group])[:6])}): no function "
                             "interpolates them; remove or average them")
    merged_y = np.stack([y[group].mean(axis=0) for group in groups])
    return Merged(x[firsts], merged_y, np.array([len(g) for g in groups], dtype=float), groups)


def gram_regression(
    k_train: ArrayLike, k_test_train: ArrayLike, y_train: ArrayLike, *, ridge: float = 1e-10, t: float | None = None,
    k_test_diag: ArrayLike | None = None, multiplicity: ArrayLike | None = None,
) -> Prediction:
    """Regression from precomputed Gram matrices, solved scale-free (module docstring).

    k_train: (n, n) symmetric; k_test_train: (m, n); y_train: (n,) or (n, k).
    ridge: relative to s = mean(diag k_train). t: None for the interpolant (t = infinity),
    else the GD training time (>= 0, absolute: it multiplies the kernel itself).
    k_test_diag: (m,) K(x, x) of the test points; given, the posterior variance
    K(x, x) - k(x)^T (K + ridge s C^-1)^-1 k(x) is returned (clipped at 0 against round-off).
    multiplicity: (n,) copies c_i of each training point (`merge_coincident`); None = ones.
    Raises ValueError when the scaled K + ridge C^-1 is not positive definite.
    """
    k_train = _finite(k_train, "k_train", 2)
    k_test_train = _finite(k_test_train, "k_test_train", 2)
    y = _finite(y_train, "y_train", None)
    n = k_train.shape[0]
    if k_train.shape != (n, n):
        raise ValueError(f"k_train must be square, got shape {k_train.shape}")
    if k_test_train.shape[1] != n or y.shape[0] != n or y.ndim not in (1, 2):
        raise ValueError(
            f"shapes disagree: k_train {k_train.shape}, k_test_train {k_test_train.shape}, "
            f"y_train {y.shape}; expected (n, n), (m, n), (n,) or (n, k)")
    if isinstance(ridge, bool) or not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    if t is not None and (not np.isfinite(t) or t < 0):
        raise ValueError(f"t must be None (the interpolant) or a finite time >= 0, got {t!r}")
    c = np.ones(n) if multiplicity is None else _finite(multiplicity, "multiplicity", 1)
    if c.shape != (n,) or np.any(c < 1):
        raise ValueError(f"multiplicity must be ({n},) counts >= 1, got shape {c.shape}")
    scale = float(np.mean(np.diag(k_train)))
    if not scale > 0:
        raise ValueError(f"the training Gram matrix has mean diagonal {scale:.3g}: a kernel that vanishes "
                         "(or underflowed float64) on the training points cannot be solved")
    w = np.sqrt(c)
    # M = C^1/2 (K / s) C^1/2 + ridge I: symmetric, O(1) entries, the same solution as the raw one
    a = w[:, None] * (k_train / scale) * w[None, :] + ridge * np.eye(n)
    k_test = k_test_train / scale
    wy = w.reshape((n,) + (1,) * (y.ndim - 1)) * y
    try:
        factor = scipy.linalg.cho_factor(a, lower=True)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(a)
        raise ValueError(
            f"the training Gram matrix plus ridge is not positive definite: scaled to unit mean diagonal, its "
            f"eigenvalues run from {eig[0]:.3g} to {eig[-1]:.3g} (ridge {ridge:g}, relative); increase ridge"
        ) from None
    if t is None:
        coef = scipy.linalg.cho_solve(factor, wy)
    else:
        lam, v = np.linalg.eigh(a)
        lam = np.maximum(lam, 0.0)
        # (1 - exp(-lam s t)) / lam, in units of 1 / s; it tends to s t as lam -> 0
        gain = np.where(lam > 0, -np.expm1(-lam * scale * t) / np.where(lam > 0, lam, 1.0), scale * t)
        coef = v @ (gain[:, None] * (v.T @ wy.reshape(n, -1))).reshape((n, *y.shape[1:]))
    mean = k_test @ (w.reshape((n,) + (1,) * (y.ndim - 1)) * coef)
    if k_test_diag is None:
        return Prediction(mean)
    k_test_diag = _finite(k_test_diag, "k_test_diag", 1)
    weighted = k_test * w[None, :]
    reduction = np.einsum("ij,ji->i", weighted, scipy.linalg.cho_solve(factor, weighted.T))
    return Prediction(mean, np.maximum(k_test_diag - scale * reduction, 0.0))


def kernel_regression(
    x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, *, arch: Architecture, kernel: str = "ntk",
    ridge: float = 1e-10, t: float | None = None, return_variance: bool = False,
) -> Prediction:
    """Kernel regression with the analytic `kernel` ("ntk" or "nngp") of `arch`.

    x_train: (n, d); y_train: (n,) or (n, k); x_test: (m, d). Coincident training points
    are merged (`merge_coincident`; different targets raise ValueError naming them).
    ridge: relative to the mean of the training Gram's diagonal. return_variance needs
    kernel="nngp" (the GP posterior).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if return_variance and kernel != "nngp":
        raise ValueError("return_variance needs kernel='nngp': the posterior variance is the NNGP's")
    merged = merge_coincident(x_train, y_train)
    k_train = analytic_kernels(merged.x, arch=arch, kernels=(kernel,))[kernel]
    k_test_train = analytic_kernels(x_test, merged.x, arch=arch, kernels=(kernel,))[kernel]
    k_test_diag = analytic_diagonal(x_test, arch=arch, kernels=(kernel,))[kernel] if return_variance else None
    return gram_regression(k_train, k_test_train, merged.y, ridge=ridge, t=t, k_test_diag=k_test_diag,
                           multiplicity=merged.multiplicity)


def _finite(a: ArrayLike, name: str, ndim: int | None) -> np.ndarray:
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf (a kernel that overflowed float64?)")
    return a
