"""The seed slides' Gaussian-RKHS ratio beside the paper's mu."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import ALPHAS, BYTES, Progress, Steps, architectures
from engine.experiments.registry import Experiment


def rkhs_vs_curvature(*, depth: int, n_trains: list[int], alphas: list[float], n_grid: int, bandwidth: float,
                      cutoff: int | None, progress: Progress | None = None) -> dict[str, Any]:
    """The slides' Gaussian-RKHS ratio beside the paper's mu on the same NTK interpolants
    (bandwidth and cut-off reported). Arrays: mu_curvature (m's, curves), mu_rkhs (m's, curves)."""
    from engine.smoothness import circle_interpolation, mu_rkhs

    archs = architectures(depth, alphas)
    step = Steps(len(n_trains) * len(archs), progress)
    curvature, rkhs, table = np.zeros((len(n_trains), len(archs))), np.zeros((len(n_trains), len(archs))), []
    for i, m in enumerate(n_trains):
        for c, (label, arch) in enumerate(archs):
            fit = circle_interpolation(arch, m, n_grid=n_grid)
            ratio = mu_rkhs(fit["interpolant"], fit["train_angles"], fit["train_values"], bandwidth=bandwidth,
                            cutoff=cutoff)
            curvature[i, c], rkhs[i, c] = fit["mu"], ratio["mu"]
            table.append({"m": m, "network": label, "mu (eq. 22, smaller = smoother)": fit["mu"],
                          "mu_rkhs (larger = smoother)": ratio["mu"], "bandwidth": ratio["bandwidth"],
                          "cutoff": ratio["cutoff"]})
            step(f"m={m} {label}")
    return {"mu_curvature": curvature, "mu_rkhs": rkhs, "tables": {"mu": table},
            "labels": {"curves": [label for label, _ in archs], "n_trains": n_trains, "depth": depth}}

DECLARED = {"depth": P.Parameter("int", "Depth L.", minimum=1, maximum=1000), "n_trains": P.n_trains(),
            "alphas": P.alphas(), "n_grid": P.N_GRID,
            "bandwidth": P.Parameter("float", "Gaussian bandwidth (radians).", positive=True, maximum=10),
            "cutoff": P.Parameter("int", "Highest harmonic kept (null: automatic).", minimum=1, maximum=32767,
                                  nullable=True)}


def cost(p: dict[str, Any]) -> dict[str, int]:
    fits = len(p["n_trains"]) * (len(p["alphas"]) + 1)
    return {"kernel_entry_layers": fits * max(p["n_trains"]) * (max(p["n_trains"]) + p["n_grid"]) * p["depth"],
            "training_weight_steps": 0, "output_bytes": BYTES * 2 * fits}


EXPERIMENT = Experiment("rkhs-vs-curvature", "The slides' RKHS ratio beside the paper's mu", rkhs_vs_curvature,
                        DECLARED, {"depth": 5, "n_trains": [6, 10], "alphas": ALPHAS, "n_grid": 4096,
                                   "bandwidth": 0.5, "cutoff": None}, cost)
