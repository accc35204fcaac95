"""Kernel shapes and spectra: the kernel against the angle on the unit circle, its
Fourier magnitudes, and eigenvalues of Gram matrices."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from engine.analytic import KERNELS, analytic_kernels
from engine.architectures import Architecture
from engine.profile import LayerProgress, correlation_profile
from engine.smoothness import circle_grid


def kernel_profile(arch: Architecture, angles: ArrayLike, *, kernel: str = "ntk",
                   normalize: bool = False, progress: LayerProgress | None = None) -> np.ndarray:
    """K((1, 0), (cos a, sin a)) for each angle a: (n,) -> (n,).

    normalize=True divides by the peak value K(x, x) (the kernel at angle 0), so the
    profile has unit peak, as in the paper's Fig. 2. The kernel depends on cos a alone: each distinct
    value is computed once (`engine.profile`); progress(layers done, depth) as the layers run.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError("angles contain NaN or Inf")
    q12 = 0.5 * np.concatenate([[1.0], np.cos(np.abs(a))])  # x.x'/d, d = 2; cos is even: -a is a
    row = correlation_profile(arch, 0.5, q12, kernel=kernel, progress=progress)
    peak, profile = row[0], row[1:]
    return profile / peak if normalize else profile


def circle_spectrum(arch: Architecture, n_grid: int = 1024, *, kernel: str = "ntk", normalize: bool = True,
                    progress: LayerProgress | None = None) -> dict[str, np.ndarray]:
    """Fourier magnitudes of the kernel profile on the circle (the paper's Fig. 8).

    Returns {"frequencies": k = 0 .. n_grid/2, "magnitudes": |c_k|, "angles": `circle_grid(n_grid)`,
    "profile": the kernel at those angles (normalised to unit peak unless normalize=False)}, with
    c_k the Fourier coefficients of the profile. These are the eigenvalues of the kernel as an
    integral operator on the circle, per harmonic.
    """
    angles = circle_grid(n_grid)
    profile = kernel_profile(arch, angles, kernel=kernel, normalize=normalize, progress=progress)
    coef = np.fft.rfft(profile) / n_grid
    return {"frequencies": np.arange(coef.size), "magnitudes": np.abs(coef), "angles": angles, "profile": profile}


def gram_spectrum(x: ArrayLike | None = None, *, arch: Architecture | None = None, kernel: str = "ntk",
                  gram: ArrayLike | None = None) -> dict[str, Any]:
    """Eigenvalues (descending) and condition number of a Gram matrix.

    Either x: (n, d) with `arch` (the analytic `kernel` is computed), or a symmetric
    `gram` (n, n). condition = lambda_max / lambda_min, inf when lambda_min <= 0.
    """
    if gram is None:
        if x is None or arch is None:
            raise ValueError("give either gram, or x and arch")
        gram = analytic_kernels(x, arch=arch, kernels=(kernel,))[kernel]
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.size == 0:
        raise ValueError(f"gram must be a non-empty square matrix, got shape {gram.shape}")
    if not np.all(np.isfinite(gram)):
        raise ValueError("gram contains NaN or Inf")
    eig = np.linalg.eigvalsh(0.5 * (gram + gram.T))[::-1]
    condition = float(eig[0] / eig[-1]) if eig[-1] > 0 else float("inf")
    return {"eigenvalues": eig, "condition": condition}
