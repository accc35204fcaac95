"""Kernel regression at N = 100k with Nystrom centres and Falkon's preconditioned CG (engine.nystrom),
and its agreement with the exact solve (engine.kernel_regression, the baseline measured in the same run).

    PYTHONPATH=$PWD .venv/bin/python bench/nystrom.py [--n 100000] [--centres 4096] [--exact-n 8000]

Points uniform on S^9 (d = 10, seeded); target sin(2 x_0) + x_1 x_2 + 0.1 noise; ResNet depth 5,
alpha 0.5, NTK, ridge 1e-4 (relative). Times are wall seconds in this process (all cores), the
kernels' JAX compilation excluded by a first small call. Agreement: the RMS of (Nystrom - exact) over
the RMS of the exact prediction at 1000 test points, for M = 512 .. N.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np


def points(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def target(x: np.ndarray, seed: int) -> np.ndarray:
    return np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * np.random.default_rng(seed).standard_normal(len(x))


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    from engine import Architecture, kernel_regression, nystrom_regression

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--centres", type=int, default=4096)
    parser.add_argument("--exact-n", type=int, default=8000)
    args = parser.parse_args()
    arch = Architecture.from_dict({"kind": "resnet", "depth": 5, "alpha": 0.5})
    x_test = points(1000, 10, 99)
    nystrom_regression(points(64, 10, 1), np.ones(64), x_test[:8], arch=arch, ridge=1e-4, centres=16)  # compile

    x = points(args.exact_n, 10, 0)
    y = target(x, 0)
    start = time.perf_counter()
    exact = kernel_regression(x, y, x_test, arch=arch, ridge=1e-4).mean
    exact_s = time.perf_counter() - start
    print(f"N = {args.exact_n}: exact solve {exact_s:.1f} s")
    for m in (512, 1024, 2048, 4096, args.exact_n):
        start = time.perf_counter()
        fit = nystrom_regression(x, y, x_test, arch=arch, ridge=1e-4, centres=m)
        seconds = time.perf_counter() - start
        rms = np.sqrt(np.mean((fit.prediction.mean - exact) ** 2) / np.mean(exact**2))
        print(f"  M = {m:6d}: {seconds:6.1f} s ({seconds / exact_s:.2f}x the exact solve), {fit.iterations:3d} CG "
              f"steps, residual {fit.residual:.1e}, RMS relative difference from exact {rms:.2e}")

    x = points(args.n, 10, 0)
    y = target(x, 0)
    start = time.perf_counter()
    fit = nystrom_regression(x, y, x_test, arch=arch, ridge=1e-4, centres=args.centres)
    seconds = time.perf_counter() - start
    test_y = np.sin(2 * x_test[:, 0]) + x_test[:, 1] * x_test[:, 2]
    error = np.sqrt(np.mean((fit.prediction.mean - test_y) ** 2) / np.mean(test_y**2))
    print(f"N = {args.n}, M = {args.centres}: {seconds:.1f} s, {fit.iterations} CG steps, residual "
          f"{fit.residual:.1e}, relative test RMS error against the noiseless target {error:.3f}")


if __name__ == "__main__":
    main()
