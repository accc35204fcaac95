"""The cost of each path of a quadrature activation's layer (engine.dual_plan): on points of one norm the
degree-32 and degree-128 Chebyshev interpolants and the fallback to the quadrature; on points of several
norms Mehler's series at two degrees (`--series`: that part alone); in CPU seconds, and the ratio to ReLU at
the same N and depth, measured in the same run, beside the cost model's factor (docs/performance.md).

    .venv/bin/python bench/dual_paths.py [--series]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's service, not bench/service.py
from engine import Architecture, analytic_kernels, dual_plan
from service.operations.cost import series_factor


def circle(n: int) -> np.ndarray:
    b = np.linspace(-np.pi, np.pi, n, endpoint=False)
    return np.stack([np.cos(b), np.sin(b)], axis=1)


def spread(n: int, scale: float) -> np.ndarray:
    """n points of R^3, directions uniform, norms uniform in [0.5, 2] x scale (seeded)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    return x * scale * rng.uniform(0.5, 2.0, (n, 1)) / np.linalg.norm(x, axis=1, keepdims=True)


def cpu_seconds(n: int, arch: Architecture, repeats: int = 2, x: np.ndarray | None = None) -> float:
    """The shortest of `repeats` calls on n circle points (or x), after one that compiles."""
    x = circle(n) if x is None else x
    analytic_kernels(x, arch=arch, kernels=("ntk",))
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        analytic_kernels(x, arch=arch, kernels=("ntk",))
        best = min(best, time.process_time() - start)
    return best


def series() -> None:
    n, depth = 512, 5
    for activation in ("tanh", "softplus", "sigmoid"):
        for scale in (0.3, 1.0):
            x = spread(n, scale)
            arch = Architecture("resnet", depth, activation, alpha=0.1)
            q_max = float(np.max(np.einsum("ij,ij->i", x, x))) / 3
            (path,) = dual_plan.layer_methods(arch, None, None, q_max)
            relu = cpu_seconds(n, Architecture("resnet", depth, alpha=0.1), 5, x)
            seconds = cpu_seconds(n, arch, 3, x)
            print(f"{activation:8s} norms x {scale} N {n} depth {depth} {path}: {seconds:.3f} CPU s, "
                  f"{seconds / relu:,.1f}x ReLU's {relu:.4f} s "
                  f"(model {series_factor(activation, int(path.split()[1])):.1f}x)",
                  flush=True)


def main() -> None:
    if "--series" in sys.argv:
        series()
        return
    relu: dict[tuple[int, int], float] = {}  # ReLU at the same (N, depth), measured in this run
    for activation in ("tanh", "softplus", "sigmoid"):
        fallback_sigma = 6.0 if activation == "tanh" else 20.0
        for sigma_w, depth, n in ((1.0, 5, 512), (2.0, 5, 512), (fallback_sigma, 1, 64)):
            arch = Architecture("resnet", depth, activation, sigma_w=sigma_w, alpha=0.1)
            paths = dict(dual_plan.layer_methods(arch, 0.5, 0.5))
            seconds = cpu_seconds(n, arch, 1 if n == 64 else 2)
            if (n, depth) not in relu:
                relu[n, depth] = cpu_seconds(n, Architecture("resnet", depth, sigma_w=sigma_w, alpha=0.1), 5)
            print(f"{activation:8s} sigma_w {sigma_w:4g} depth {depth} N {n:4d} {paths}: {seconds:.3f} CPU s, "
                  f"{seconds / relu[n, depth]:,.0f}x ReLU's {relu[n, depth]:.4f} s")


if __name__ == "__main__":
    main()
    if "--series" not in sys.argv:
        series()
