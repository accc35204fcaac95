"""The paper's circle experiment: how smooth are NTK interpolants of MLPs and ResNets?

Interpolates y(b) = 0.5 cos b + sin 4b from m equispaced samples on the unit circle with
the analytic NTK and prints mu (paper eq. 22; smaller = smoother) beside the published
values (Tirer, Bruna & Giryes 2021). Run: .venv/bin/python examples/circle.py [--depth 15]
"""

import argparse

from engine import Architecture, circle_interpolation
from engine.compilation import enable_compilation_cache

PUBLISHED = {
    (5, 6): (58.36, 13.99, 4.090, 1.012, 1.000), (5, 10): (191.3, 158.7, 145.3, 110.2, 105.1),
    (15, 6): (292.4, 60.23, 14.72, 1.104, 1.000), (15, 10): (421.7, 205.4, 162.5, 118.6, 102.8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=5)
    depth = parser.parse_args().depth
    enable_compilation_cache()
    alphas = (1.0, 0.5, 0.1, 0.01)
    archs = [Architecture("mlp", depth)] + [Architecture("resnet", depth, alpha=a) for a in alphas]
    print(f"mu of NTK interpolants, ReLU, L = {depth}   (published in parentheses)")
    print(f"{'m':>3} " + " ".join(f"{name:>17}" for name in ["MLP", *(f"ResNet a={a}" for a in alphas)]))
    for m in (6, 10):
        published = PUBLISHED.get((depth, m), (None,) * 5)
        cells = []
        for arch, ref in zip(archs, published, strict=True):
            mu = circle_interpolation(arch, m)["mu"]
            cells.append(f"{mu:8.4g} ({ref:.4g})" if ref else f"{mu:17.4g}")
        print(f"{m:>3} " + " ".join(f"{c:>17}" for c in cells))


if __name__ == "__main__":
    main()
