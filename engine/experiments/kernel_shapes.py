"""Kernel shapes on the unit circle (Fig. 2, top)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.architectures import Architecture
from engine.experiments import parameters as P
from engine.experiments.common import BYTES, PUBLISHED_PROFILE, Progress, Steps, architectures
from engine.experiments.registry import Experiment


def kernel_shapes(*, depths: list[int], alphas: list[float], n_angles: int, kernels: list[str],
                  progress: Progress | None = None) -> dict[str, Any]:
    """Kernels against the angle on the unit circle, normalised to unit peak (Fig. 2, top).
    Arrays: angles (A,), <kernel> (depths, curves, A)."""
    from engine.spectra import kernel_profile

    angles = np.linspace(-np.pi, np.pi, n_angles)
    step = Steps(len(depths) * (len(alphas) + 1) * len(kernels), progress)
    out: dict[str, Any] = {"angles": angles}
    for kernel in kernels:
        rows = []
        for depth in depths:
            curves = []
            for label, arch in architectures(depth, alphas):
                curves.append(kernel_profile(arch, angles, kernel=kernel, normalize=True))
                step(f"{kernel} L={depth} {label}")
            rows.append(curves)
        out[kernel] = np.array(rows)
    check = kernel_profile(Architecture("resnet", 5, alpha=0.1), [0.0, np.pi / 2, np.pi], kernel="ntk")
    out["tables"] = {"profile": [{"value": name, "published": published, "measured": float(v)}
                                 for (name, published), v in zip(PUBLISHED_PROFILE.items(), check, strict=True)]}
    out["labels"] = {"curves": [label for label, _ in architectures(depths[0], alphas)], "depths": depths}
    return out

DECLARED = {"depths": P.depths(), "alphas": P.alphas(), "n_angles": P.N_ANGLES,
            "kernels": P.Parameter("str", "Kernels to draw.", choices=("ntk", "nngp"), list=True, max_items=2,
                                   unique=True)}


def cost(p: dict[str, Any]) -> dict[str, int]:
    curves = len(p["kernels"]) * len(p["depths"]) * (len(p["alphas"]) + 1)
    return {"kernel_entry_layers": 2 * p["n_angles"] * (len(p["alphas"]) + 1) * len(p["kernels"]) * sum(p["depths"]),
            "training_weight_steps": 0, "output_bytes": BYTES * (curves * p["n_angles"] + p["n_angles"])}


EXPERIMENT = Experiment("kernel-shapes", "Kernel shapes on the unit circle (Fig. 2, top)", kernel_shapes, DECLARED,
                        {"depths": [5, 15], "alphas": [1.0, 0.5, 0.1, 0.01], "n_angles": 361,
                         "kernels": ["ntk", "nngp"]}, cost)
