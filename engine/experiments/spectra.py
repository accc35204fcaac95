"""Fourier magnitudes of the NTK profiles (Fig. 8) and Gram condition numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import ALPHAS, BYTES, Progress, Steps, architectures
from engine.experiments.registry import Experiment


def spectra(*, depths: list[int], alphas: list[float], n_grid: int, condition_depths: list[int], n_points: int,
            progress: Progress | None = None) -> dict[str, Any]:
    """Fourier magnitudes of the NTK profiles (Fig. 8) and Gram condition numbers against
    depth on n_points equispaced circle points. Arrays: frequencies (K,), magnitudes
    (depths, curves, K), condition_depths (D,), inverse_condition (curves, D): lambda_min /
    lambda_max, 0 for a singular Gram matrix ("singular" in the table)."""
    from engine.smoothness import circle_grid, circle_points
    from engine.spectra import circle_spectrum, gram_spectrum

    step = Steps(len(depths) * (len(alphas) + 1) + len(condition_depths), progress)
    magnitudes = []
    for depth in depths:
        row = []
        for label, arch in architectures(depth, alphas):
            spectrum = circle_spectrum(arch, n_grid)
            row.append(spectrum["magnitudes"])
            step(f"spectrum L={depth} {label}")
        magnitudes.append(row)
    x = circle_points(circle_grid(n_points))
    inverse = np.zeros((len(alphas) + 1, len(condition_depths)))
    for j, depth in enumerate(condition_depths):
        for c, (_, arch) in enumerate(architectures(depth, alphas)):
            inverse[c, j] = 1 / gram_spectrum(x, arch=arch)["condition"]
        step(f"condition numbers L={depth}")
    table = [{"L": d, **{label: float(1 / inverse[c, j]) if inverse[c, j] > 0 else "singular"
                         for c, (label, _) in enumerate(architectures(d, alphas))}}
             for j, d in enumerate(condition_depths)]
    return {"frequencies": spectrum["frequencies"].astype(float), "magnitudes": np.array(magnitudes),
            "condition_depths": np.array(condition_depths, dtype=float), "inverse_condition": inverse,
            "tables": {"condition": table},
            "labels": {"curves": [label for label, _ in architectures(depths[0], alphas)], "depths": depths}}

DECLARED = {"depths": P.depths(), "alphas": P.alphas(), "n_grid": P.N_GRID,
            "condition_depths": P.depths(max_items=64),
            "n_points": P.Parameter("int", "Equispaced circle points of the Gram matrices.", minimum=2, maximum=2048)}


def cost(p: dict[str, Any]) -> dict[str, int]:
    curves = len(p["alphas"]) + 1
    kernel = curves * (p["n_grid"] * sum(p["depths"]) + p["n_points"] ** 2 * sum(p["condition_depths"]))
    return {"kernel_entry_layers": kernel, "training_weight_steps": 0,
            "output_bytes": BYTES * (len(p["depths"]) * curves + 1) * p["n_grid"]
            + BYTES * (curves + 1) * len(p["condition_depths"])}


EXPERIMENT = Experiment("spectra", "Kernel spectra (Fig. 8) and Gram condition numbers", spectra, DECLARED,
                        {"depths": [5, 15], "alphas": ALPHAS, "n_grid": 1024,
                         "condition_depths": [1, 2, 3, 5, 8, 10, 15, 20, 30], "n_points": 16}, cost)
