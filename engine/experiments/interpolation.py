"""NTK interpolation of the paper's target and its smoothness mu (Figs. 2, 6)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import ALPHAS, BYTES, PUBLISHED_MU, Progress, Steps, architectures
from engine.experiments.registry import Experiment

PAPER_RIDGE, PAPER_GRID = 1e-10, 4096


def interpolation(*, depths: list[int], n_trains: list[int], alphas: list[float], n_grid: int, ridge: float,
                  kernel: str, progress: Progress | None = None) -> dict[str, Any]:
    """NTK interpolants of 0.5 cos b + sin 4b from m equispaced samples, and mu (eq. 22) of
    each (Fig. 2 / Fig. 6 and their legends); the published table beside it when it applies
    (kernel "ntk", ridge 1e-10, n_grid 4096). Arrays: angles (G,), interpolants
    (depths, m's, curves, G), train_angles_<m> and train_values_<m>."""
    from engine.smoothness import circle_interpolation

    step = Steps(len(depths) * len(n_trains) * (len(alphas) + 1), progress)
    curves = np.zeros((len(depths), len(n_trains), len(alphas) + 1, n_grid))
    table, out = [], {}
    for i, depth in enumerate(depths):
        for j, m in enumerate(n_trains):
            row: dict[str, Any] = {"L": depth, "m": m}
            for c, (label, arch) in enumerate(architectures(depth, alphas)):
                fit = circle_interpolation(arch, m, kernel=kernel, ridge=ridge, n_grid=n_grid)
                curves[i, j, c], row[label] = fit["interpolant"], fit["mu"]
                out[f"train_angles_{m}"], out[f"train_values_{m}"] = fit["train_angles"], fit["train_values"]
                out["angles"] = fit["angles"]
                step(f"L={depth} m={m} {label}: mu {fit['mu']:.4g}")
            table.append(row)
    # the published table is the ReLU NTK's with the paper's ridge, measured on 4096 angles
    applies = kernel == "ntk" and ridge == PAPER_RIDGE and n_grid == PAPER_GRID
    out |= {"interpolants": curves, "tables": {"mu": table} | ({"published_mu": _published_mu(alphas)} if applies
                                                                else {}),
            "labels": {"curves": [label for label, _ in architectures(depths[0], alphas)], "depths": depths,
                       "n_trains": n_trains, "published_applies": applies}}
    return out


def _published_mu(alphas: list[float]) -> list[dict[str, Any]]:
    labels = [label for label, _ in architectures(1, ALPHAS)]
    return [{"L": depth, "m": m, **{label: value for label, value in zip(labels, values, strict=True)
                                     if label == "MLP" or float(label.split("=")[1]) in alphas}}
            for (depth, m), values in PUBLISHED_MU.items()]

DECLARED = {"depths": P.depths(), "n_trains": P.n_trains(), "alphas": P.alphas(), "n_grid": P.N_GRID,
            "ridge": P.RIDGE, "kernel": P.KERNEL}


def cost(p: dict[str, Any]) -> dict[str, int]:
    fits = len(p["depths"]) * (len(p["alphas"]) + 1)
    entries = sum(m * (m + p["n_grid"]) for m in p["n_trains"])
    return {"kernel_entry_layers": entries * fits // len(p["depths"]) * sum(p["depths"]), "training_weight_steps": 0,
            "output_bytes": BYTES * (fits * len(p["n_trains"]) * p["n_grid"] + p["n_grid"]
                                     + 2 * sum(p["n_trains"]))}


EXPERIMENT = Experiment("interpolation", "NTK interpolation and its smoothness mu (Figs. 2, 6)", interpolation,
                        DECLARED, {"depths": [5, 15], "n_trains": [6, 10], "alphas": ALPHAS, "n_grid": PAPER_GRID,
                                   "ridge": PAPER_RIDGE, "kernel": "ntk"}, cost)
