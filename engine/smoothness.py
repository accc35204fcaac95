"""Smoothness of interpolants on the unit circle: the paper's mu (eq. 22), the seed
slides' Gaussian-RKHS ratio, and the paper's 1-D experiment.

Inputs on the circle are (cos b, sin b) with the angle b in [-pi, pi); functions are
sampled on the uniform grid b_q = 2 pi q / N, q = -N/2 .. N/2 - 1 (`circle_grid`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from engine.architectures import Architecture
from engine.regression import kernel_regression


def paper_target(b: np.ndarray) -> np.ndarray:
    """The paper's target y(b) = 0.5 cos b + sin 4b."""
    return 0.5 * np.cos(b) + np.sin(4 * b)


def circle_grid(n_grid: int) -> np.ndarray:
    """(n_grid,) angles 2 pi q / n_grid for q = -n_grid/2 .. n_grid/2 - 1 (n_grid even)."""
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 4 or n_grid % 2:
        raise ValueError(f"n_grid must be an even integer >= 4, got {n_grid!r}")
    return 2 * np.pi * np.arange(-n_grid // 2, n_grid // 2) / n_grid


def circle_points(angles: ArrayLike) -> np.ndarray:
    """(n,) angles -> (n, 2) points (cos b, sin b)."""
    b = np.asarray(angles, dtype=np.float64)
    return np.stack([np.cos(b), np.sin(b)], axis=-1)


def paper_train_angles(n_train: int) -> np.ndarray:
    """The paper's training angles 2 pi linspace(0, 1, m) - pi (both -pi and pi included)."""
    if not isinstance(n_train, (int, np.integer)) or n_train < 2:
        raise ValueError(f"n_train must be an integer >= 2, got {n_train!r}")
    return 2 * np.pi * np.linspace(0, 1, n_train) - np.pi


def _grid_values(values: ArrayLike, name: str = "values") -> np.ndarray:
    f = np.asarray(values, dtype=np.float64)
    if f.ndim != 1 or f.size < 4 or f.size % 2:
        raise ValueError(f"{name} must be 1-D of an even length >= 4 (a uniform angle grid), got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} contains NaN or Inf")
    return f


def _unit_peak(f: np.ndarray) -> np.ndarray:
    """f / max |f|: the measures are scale-free, and f * f then cannot overflow (|f| ~ 1e200)."""
    peak = np.max(np.abs(f))
    if peak == 0:
        raise ValueError("values are all zero: mu is undefined for the zero function")
    return f / peak


def mu_curvature(values: ArrayLike) -> float:
    """The paper's smoothness measure (eq. 22) of f sampled on a uniform angle grid.

    values: (N,) f(b_q). mu = sqrt(sum_k k^4 |F(k)|^2 / N^2), F the FFT of f / rms(f):
    about the L2 norm of f''. Smaller is smoother; 1 for a pure first harmonic.
    Raises ValueError for a zero function (its normalisation is undefined).
    """
    f = _unit_peak(_grid_values(values))
    rms = np.sqrt(np.mean(f * f))
    spectrum = np.fft.fft(f / rms)
    k = np.fft.fftfreq(f.size, d=1.0 / f.size)
    return float(np.sqrt(np.sum(k**4 * np.abs(spectrum) ** 2) / f.size**2))


def mu_interior(values: ArrayLike) -> float:
    """mu without the wrap-around: sqrt(mean (f'')^2) / rms(f), with f'' the central second
    difference on the grid's interior points (b_1 .. b_{N-2}). For a smooth periodic f it
    equals mu (eq. 22) up to O(h^2) (Parseval); for a function of the angle that is not
    periodic (the paper's Fig. 5) it leaves out the jump between b = pi and -pi, which eq. 22
    counts as curvature. values: (N,) f(b_q) on `circle_grid(N)`."""
    f = _unit_peak(_grid_values(values))
    rms = np.sqrt(np.mean(f * f))
    h = 2 * np.pi / f.size
    second = (f[2:] - 2 * f[1:-1] + f[:-2]) / h**2
    return float(np.sqrt(np.mean(second * second)) / rms)


def circle_interpolation(
    arch: Architecture, n_train: int | None = None, *, kernel: str = "ntk", ridge: float = 1e-10,
    n_grid: int = 4096, target: Callable[[np.ndarray], ArrayLike] | ArrayLike | None = None,
    train_angles: ArrayLike | None = None,
) -> dict[str, Any]:
    """The paper's experiment: interpolate samples on the circle, measure mu.

    Training angles: `train_angles`, else the paper's n_train equispaced ones.
    target: a function of the angle (default `paper_target`), or the (n_train,) values
    at the training angles. Returns {"angles": (n_grid,), "interpolant": (n_grid,),
    "train_angles": (n,), "train_values": (n,), "mu": float}.
    """
    if train_angles is None:
        if n_train is None:
            raise ValueError("give n_train or train_angles")
        train_angles = paper_train_angles(n_train)
    train_angles = np.asarray(train_angles, dtype=np.float64)
    if train_angles.ndim != 1 or train_angles.size < 1 or not np.all(np.isfinite(train_angles)):
        raise ValueError(f"train_angles must be a non-empty 1-D array of finite angles, got shape {train_angles.shape}")
    if target is None:
        target = paper_target
    y = np.asarray(target(train_angles) if callable(target) else target, dtype=np.float64)
    if y.shape != train_angles.shape:
        raise ValueError(f"target values must have the training angles' shape {train_angles.shape}, got {y.shape}")
    grid = circle_grid(n_grid)
    mean = kernel_regression(circle_points(train_angles), y, circle_points(grid),
                             arch=arch, kernel=kernel, ridge=ridge).mean
    return {"angles": grid, "interpolant": mean, "train_angles": train_angles,
            "train_values": y, "mu": mu_curvature(mean)}


def mu_rkhs(values: ArrayLike, train_angles: ArrayLike, train_values: ArrayLike, *, bandwidth: float = 0.5,
            cutoff: int | None = None, min_weight: float = 1e-12) -> dict[str, float]:
    """The seed slides' Gaussian-RKHS ratio mu = ||f_gauss||_H / ||f||_H, on the circle.

    H is the RKHS of the Gaussian kernel in the angle, with Fourier weights
    g_k = exp(-bandwidth^2 k^2 / 2) kept for |k| <= cutoff (the weights underflow beyond;
    default cutoff: the largest k with g_k >= min_weight, at most N/2 - 1), so
    ||f||_H^2 = sum_{|k| <= cutoff} |c_k|^2 / g_k with c_k the Fourier coefficients of f.
    f_gauss is the minimum-norm interpolant in H of (train_angles, train_values).
    values: (N,) the interpolant f on the uniform grid. Larger mu = smoother; mu <= 1 up to
    the energy of f above the cut-off. Returns mu, the two norms, bandwidth and cutoff.
    """
    f = _grid_values(values)
    if not np.isfinite(bandwidth) or bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth!r}")
    n = f.size
    if cutoff is None:
        cutoff = int(np.floor(np.sqrt(-2 * np.log(min_weight)) / bandwidth))
    if not isinstance(cutoff, (int, np.integer)) or cutoff < 1:
        raise ValueError(f"cutoff must be an integer >= 1, got {cutoff!r}")
    cutoff = int(min(cutoff, n // 2 - 1))
    b = np.asarray(train_angles, dtype=np.float64)
    y = np.asarray(train_values, dtype=np.float64)
    if b.ndim != 1 or b.shape != y.shape or b.size == 0:
        raise ValueError(f"train_angles and train_values must be 1-D of one length, got {b.shape} and {y.shape}")
    k = np.arange(-cutoff, cutoff + 1)
    g = np.exp(-0.5 * (bandwidth * k) ** 2)
    coef = np.fft.fft(f) / n
    # the grid starts at -pi: shift the FFT phases so c_k refers to e^{ikb} with b in [-pi, pi)
    c = coef[k % n] * np.exp(1j * np.pi * k)
    norm_f = float(np.sqrt(np.sum(np.abs(c) ** 2 / g)))
    gram = (g * np.cos(np.subtract.outer(b, b)[..., None] * k)).sum(-1)
    weights = np.linalg.lstsq(gram, y, rcond=1e-13)[0]
    norm_gauss = float(np.sqrt(max(weights @ gram @ weights, 0.0)))
    if norm_f == 0:
        raise ValueError("values are all zero: mu_rkhs is undefined for the zero function")
    return {"mu": norm_gauss / norm_f, "norm_f": norm_f, "norm_gauss": norm_gauss,
            "bandwidth": float(bandwidth), "cutoff": cutoff}
