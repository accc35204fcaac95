"""Outside the NTK regime: SGD and Adam with the paper's Xavier initialisation (Figs. 3-4)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import BYTES, Progress, Steps, architectures, weights
from engine.experiments.registry import Experiment, same_length


def beyond_ntk(*, width: int, n_init: int, depth: int, alphas: list[float], n_trains: list[int], steps: int,
               optimizers: list[str], lrs: list[float], n_grid: int, seed: int, parametrization: str,
               progress: Progress | None = None) -> dict[str, Any]:
    """Outside the NTK regime (Fig. 3): the paper's Xavier initialisation (by default), batch size 1, SGD / Adam;
    mu (eq. 22) of each trained network's function on the grid. Arrays: grid (G,),
    mean_<optimizer>_<m> (curves, G) the mean prediction of the networks that did not diverge
    (labels.curves["<optimizer>_<m>"] names them), train_angles_<m>, train_values_<m>."""
    from engine.smoothness import circle_grid, circle_points, mu_curvature, paper_target, paper_train_angles
    from engine.training import train

    grid = circle_grid(n_grid)
    archs = architectures(depth, alphas)
    step = Steps(len(optimizers) * len(n_trains) * len(archs), progress)
    out: dict[str, Any] = {"grid": grid}
    table, curves = [], {}
    for optimizer, lr in zip(optimizers, lrs, strict=True):
        for m in n_trains:
            b = paper_train_angles(m)
            x, y = circle_points(b), paper_target(b)
            means, labels = [], []
            for label, arch in archs:
                row = {"optimizer": optimizer, "lr": lr, "m": m, "network": label}
                try:
                    run = train(arch, x, y, width=width, seed=seed, n_init=n_init, optimizer=optimizer, lr=lr,
                                steps=steps, batch_size=1, parametrization=parametrization, x_test=circle_points(grid),
                                predict_every_record=False)
                except ValueError as exc:  # a diverging run is a result here, reported as such
                    if "diverged" not in str(exc):
                        raise
                    table.append(row | {"mu mean": None, "mu std": None, "final loss (mean)": None,
                                        "note": str(exc)})
                    step(f"{optimizer} m={m} {label}: diverged")
                    continue
                mus = [mu_curvature(f) for f in run["predictions"][-1]]
                means.append(run["mean_prediction"][-1])
                labels.append(label)
                table.append(row | {"mu mean": float(np.mean(mus)), "mu std": float(np.std(mus)),
                                    "final loss (mean)": float(run["loss"][:, -1].mean()), "note": ""})
                step(f"{optimizer} m={m} {label}: mu {np.mean(mus):.4g}")
            out[f"mean_{optimizer}_{m}"] = np.array(means).reshape(len(means), len(grid))
            curves[f"{optimizer}_{m}"] = labels
            out[f"train_angles_{m}"], out[f"train_values_{m}"] = b, y
    out["tables"] = {"mu": table}
    out["labels"] = {"curves": curves, "optimizers": optimizers, "n_trains": n_trains,
                     "parametrization": parametrization}
    return out

DECLARED = {"width": P.WIDTH, "n_init": P.N_INIT, "depth": P.DEPTH, "alphas": P.alphas(4), "n_trains": P.n_trains(),
            "steps": P.STEPS,
            "optimizers": P.Parameter("str", "Optimizers.", choices=("gd", "sgd", "adam"), list=True, max_items=3,
                                      unique=True),
            "lrs": P.Parameter("float", "Step size, one per optimizer.", positive=True, maximum=100, list=True,
                               max_items=3),
            "n_grid": P.N_GRID, "seed": P.SEED, "parametrization": P.PARAMETRIZATION}


def cost(p: dict[str, Any]) -> dict[str, int]:
    nets = p["n_init"] * (len(p["alphas"]) + 1) * len(p["optimizers"])
    # batch 1 for SGD and Adam (the paper's); the trained function on the grid: n_grid forward passes
    train = nets * sum(p["steps"] + p["n_grid"] for _ in p["n_trains"]) * weights(p["depth"], p["width"])
    return {"kernel_entry_layers": 0, "training_weight_steps": train,
            "output_bytes": BYTES * (len(p["optimizers"]) * len(p["n_trains"]) * (len(p["alphas"]) + 1) + 1)
            * p["n_grid"]}


EXPERIMENT = Experiment(
    "beyond-ntk", "Outside the NTK regime: SGD and Adam, Xavier initialisation (Figs. 3-4)", beyond_ntk, DECLARED,
    {"width": 128, "n_init": 3, "depth": 5, "alphas": [1.0, 0.1], "n_trains": [6], "steps": 300,
     "optimizers": ["sgd", "adam"], "lrs": [0.01, 0.001], "n_grid": 4096, "seed": 0, "parametrization": "xavier"},
    cost, {"width": 500, "n_init": 30, "n_trains": [6, 10], "steps": 1000}, same_length("optimizers", "lrs"))
