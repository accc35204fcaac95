"""The cost of each path of a quadrature activation's layer on points of one norm (engine.dual_plan):
the degree-32 and degree-128 Chebyshev interpolants and the fallback to the quadrature, in CPU seconds,
and the ratio to ReLU at the same N and depth, measured in the same run (docs/performance.md, the cost
model).

    .venv/bin/python bench/dual_paths.py
"""

from __future__ import annotations

import time

import numpy as np

from engine import Architecture, analytic_kernels, dual_plan


def circle(n: int) -> np.ndarray:
    b = np.linspace(-np.pi, np.pi, n, endpoint=False)
    return np.stack([np.cos(b), np.sin(b)], axis=1)


def cpu_seconds(n: int, arch: Architecture, repeats: int = 2) -> float:
    """The shortest of `repeats` calls on n circle points, after one that compiles."""
    x = circle(n)
    analytic_kernels(x, arch=arch, kernels=("ntk",))
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        analytic_kernels(x, arch=arch, kernels=("ntk",))
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
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
