"""How the curvature measure on S^2 behaves as the evaluation set is refined (docs/numerics.md).

The ReLU NTK's profile has a cusp at t = 1 (K(cos th) ~ K(1) - c th), so the Laplace-Beltrami of
the interpolant has a 1 / th singularity at each training point: ||Delta f||^2 diverges like log L on
S^2 (like L on the circle, finite for d >= 4). This script measures mu on the Gauss product grid of
n_lat latitudes, and the same ratio from the analytic energies (Funk-Hecke eigenvalues and the
addition theorem) truncated at degree L, for the NTK and the NNGP (whose profile is C^2 at t = 1);
then, on S^3 and S^5 (d = 4, 6), the exact harmonic sum of d > 3 (`mu_curvature_spectral`) against its
degree K, which converges (the ReLU NTK's terms fall as k^(2 - d)).

    PYTHONPATH=$PWD python bench/sphere_curvature.py
"""

from __future__ import annotations

import time

import jax
import numpy as np


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    from engine import Architecture
    from engine.sphere import funk_hecke, funk_hecke_checked, sphere_profile
    from engine.sphere_smoothness import harmonic_energies, interpolant, mu_curvature_spectral, sphere_interpolation

    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = x[:, 0] + np.sin(3 * x[:, 2])
    for spec in ({"kind": "resnet", "depth": 5, "alpha": 0.5}, {"kind": "mlp", "depth": 5}):
        arch = Architecture.from_dict(spec)
        for kernel in ("ntk", "nngp"):
            print(f"{spec} {kernel}")
            for n_lat in (8, 16, 32, 64, 128):
                start = time.perf_counter()
                mu = sphere_interpolation(arch, x, y, kernel=kernel, n_grid=2 * n_lat * n_lat)["mu"]
                print(f"  product grid n_lat {n_lat:4d} (L = {n_lat - 1:4d}): mu {mu:10.4f}  "
                      f"({time.perf_counter() - start:.2f} s)")
            lam = funk_hecke(lambda t, a=arch, k=kernel: sphere_profile(a, 3, t, kernel=k), 3, 4096)
            e = harmonic_energies(interpolant(x, y, arch=arch, kernel=kernel), lam)
            k = np.arange(e.size)
            num, den = np.cumsum((k * (k + 1.0)) ** 2 * e), np.cumsum(e)
            print("  analytic energies, truncated at L: " + ", ".join(
                f"L {L}: {np.sqrt(num[L] / den[L]):.4f}" for L in (7, 15, 31, 63, 127, 255, 511, 1023, 2047, 4095)))
    for d in (4, 6):
        x = rng.standard_normal((10, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        y = x[:, 0] + np.sin(3 * x[:, 2])
        for spec in ({"kind": "mlp", "depth": 5}, {"kind": "resnet", "depth": 5, "alpha": 0.5}):
            arch = Architecture.from_dict(spec)
            start = time.perf_counter()
            lam, errors, _ = funk_hecke_checked(lambda t, a=arch, d=d: sphere_profile(a, d, t), d, 2047)
            expansion = interpolant(x, y, arch=arch)
            cells = [f"K {K}: {mu_curvature_spectral(expansion, lam[: K + 1], errors[: K + 1])[0]:.4f}"
                     for K in (15, 63, 255, 511, 1023, 2047)]
            print(f"d = {d}, {spec} NTK, harmonic sum: " + ", ".join(cells)
                  + f" ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
