"""What the experiments share: the compared architectures, progress over steps, and the
paper's published numbers (shared/docs/kernels.md section 6)."""

from __future__ import annotations

from collections.abc import Callable

from engine.architectures import Architecture

Progress = Callable[[float, str], None]
ALPHAS = [1.0, 0.5, 0.1, 0.01]
BYTES = 8  # float64

PUBLISHED_MU = {  # (L, m) -> [MLP, alpha=1, 0.5, 0.1, 0.01]
    (5, 6): [58.36, 13.99, 4.090, 1.012, 1.000],
    (5, 10): [191.3, 158.7, 145.3, 110.2, 105.1],
    (15, 6): [292.4, 60.23, 14.72, 1.104, 1.000],
    (15, 10): [421.7, 205.4, 162.5, 118.6, 102.8],
}
PUBLISHED_TABLE1 = {  # (N, L) -> [MLP, ResNet alpha=1, ResNet alpha=0.1], MNIST 0 vs 8
    (50, 5): [0.9625, 0.967, 0.972], (50, 15): [0.9615, 0.9625, 0.972], (50, 30): [0.958, 0.9615, 0.9715],
    (100, 5): [0.981, 0.9885, 0.9905], (100, 15): [0.973, 0.982, 0.9925], (100, 30): [0.9645, 0.9795, 0.991],
}
PUBLISHED_PROFILE = {"angle 0": 1.0508, "angle pi/2": 0.0081, "angle pi": -1.0010}  # NTK, alpha 0.1, L 5


def architectures(depth: int, alphas: list[float], activation: str = "relu") -> list[tuple[str, Architecture]]:
    """The paper's comparison: the MLP, then ResNets for each alpha (sigma_w = sigma_v = 1)."""
    return [("MLP", Architecture("mlp", depth, activation))] + [
        (f"ResNet alpha={a:g}", Architecture("resnet", depth, activation, alpha=a)) for a in alphas]


def weights(depth: int, width: int, input_dim: int = 2) -> int:
    """Weights of the ResNet of `depth` blocks (the larger of the two families)."""
    return 2 * depth * width * width + (input_dim + 1) * width


class Steps:
    """progress(fraction, message) over a known number of steps."""

    def __init__(self, total: int, progress: Progress | None):
        self.total, self.done, self.progress = max(total, 1), 0, progress

    def __call__(self, message: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done / self.total, 1.0), message)
