"""Kernel regression: the NTK interpolant, infinitely wide networks after GD for time t,
and the GP posterior of the NNGP.

Conventions: loss 1/2 ||f(X) - y||^2 (a sum, no 1/n), gradient flow from f_0 = 0, so
f_t(x) = k(x)^T Theta^-1 (I - exp(-Theta t)) y, where t is the training time (learning
rate x steps). `ridge` is absolute: it is added to the diagonal of the training Gram matrix
in every case (the paper uses 1e-10), and it is the observation-noise variance of the GP.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

from engine.analytic import KERNELS, analytic_diagonal, analytic_kernels
from engine.architectures import Architecture


class Prediction(NamedTuple):
    """mean: (m,) or (m, k) like y_train; variance: (m,) GP posterior variance, or None."""

    mean: np.ndarray
    variance: np.ndarray | None = None


def gram_regression(
    k_train, k_test_train, y_train, *, ridge: float = 1e-10, t: float | None = None,
    k_test_diag=None,
) -> Prediction:
    """Regression from precomputed Gram matrices.

    k_train: (n, n) symmetric; k_test_train: (m, n); y_train: (n,) or (n, k).
    t: None for the interpolant (t = infinity), else the GD training time (>= 0).
    k_test_diag: (m,) K(x, x) of the test points; given, the posterior variance
    K(x, x) - k(x)^T (K + ridge I)^-1 k(x) is returned (clipped at 0 against round-off).
    Raises ValueError when K + ridge I is not positive definite.
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
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    if t is not None and (not np.isfinite(t) or t < 0):
        raise ValueError(f"t must be None (the interpolant) or a finite time >= 0, got {t!r}")
    a = k_train + ridge * np.eye(n)
    try:
        factor = scipy.linalg.cho_factor(a, lower=True)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(a)[0])
        raise ValueError(
            f"the training Gram matrix plus ridge is not positive definite (smallest eigenvalue "
            f"{smallest:.3g}, ridge {ridge:g}); increase ridge or remove conflicting duplicates"
        ) from None
    if t is None:
        coef = scipy.linalg.cho_solve(factor, y)
    else:
        lam, v = np.linalg.eigh(a)
        lam = np.maximum(lam, 0.0)
        # (1 - exp(-lam t)) / lam, which tends to t as lam -> 0
        gain = np.where(lam > 0, -np.expm1(-lam * t) / np.where(lam > 0, lam, 1.0), t)
        coef = v @ (gain[:, None] * (v.T @ y.reshape(n, -1))).reshape((n, *y.shape[1:]))
    mean = k_test_train @ coef
    if k_test_diag is None:
        return Prediction(mean)
    k_test_diag = _finite(k_test_diag, "k_test_diag", 1)
    reduction = np.einsum("ij,ji->i", k_test_train, scipy.linalg.cho_solve(factor, k_test_train.T))
    return Prediction(mean, np.maximum(k_test_diag - reduction, 0.0))


def kernel_regression(
    x_train, y_train, x_test, *, arch: Architecture, kernel: str = "ntk", ridge: float = 1e-10,
    t: float | None = None, return_variance: bool = False,
) -> Prediction:
    """Kernel regression with the analytic `kernel` ("ntk" or "nngp") of `arch`.

    x_train: (n, d); y_train: (n,) or (n, k); x_test: (m, d). Duplicate training points
    are fine when ridge > 0. return_variance needs kernel="nngp" (the GP posterior).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if return_variance and kernel != "nngp":
        raise ValueError("return_variance needs kernel='nngp': the posterior variance is the NNGP's")
    k_train = analytic_kernels(x_train, arch=arch, kernels=(kernel,))[kernel]
    k_test_train = analytic_kernels(x_test, x_train, arch=arch, kernels=(kernel,))[kernel]
    k_test_diag = analytic_diagonal(x_test, arch=arch, kernels=(kernel,))[kernel] if return_variance else None
    return gram_regression(k_train, k_test_train, y_train, ridge=ridge, t=t, k_test_diag=k_test_diag)


def _finite(a, name: str, ndim: int | None) -> np.ndarray:
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf")
    return a
