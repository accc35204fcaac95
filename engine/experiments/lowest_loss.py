"""Adam at a small step, each network kept at its lowest training loss: the paper's Fig. 4
(the circle embedding, Xavier initialisation) and Fig. 5 (the scalar angle as the input,
PyTorch's default initialisation with a bias in every layer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import BYTES, Progress, Steps, architectures, weights
from engine.experiments.registry import Experiment

INPUTS = ("circle", "angle")


def lowest_loss(*, width: int, n_init: int, depth: int, alphas: list[float], n_train: int, steps: int, lr: float,
                n_grid: int, seed: int, parametrization: str, input: str,
                progress: Progress | None = None) -> dict[str, Any]:
    """Networks trained by Adam (batch size 1) on the paper's target, each kept at its lowest
    training loss; mu (eq. 22) of each kept network's function of the angle, and mu without
    the wrap-around (`mu_interior`; the two agree for a periodic function). input "circle":
    x = (cos b, sin b); "angle": x = b itself (1-D). Arrays: grid (G,), predictions
    (curves, n_init, G), mu (curves, n_init), train_angles (m,), train_values (m,)."""
    from engine.smoothness import (
        circle_grid,
        circle_points,
        mu_curvature,
        mu_interior,
        paper_target,
        paper_train_angles,
    )
    from engine.training import train

    def embed(b: np.ndarray) -> np.ndarray:
        return circle_points(b) if input == "circle" else b[:, None]

    b, grid = paper_train_angles(n_train), circle_grid(n_grid)
    y = paper_target(b)
    archs = architectures(depth, alphas)
    step = Steps(len(archs), progress)
    predictions, mus, table = [], [], []
    for label, arch in archs:
        run = train(arch, embed(b), y, width=width, seed=seed, n_init=n_init, optimizer="adam", lr=lr, steps=steps,
                    batch_size=1, parametrization=parametrization, x_test=embed(grid), keep_best=True)
        kept = run["best_prediction"]
        mu = [mu_curvature(f) for f in kept]
        interior = [mu_interior(f) for f in kept]
        predictions.append(kept)
        mus.append(mu)
        table.append({"network": label, "mu mean": float(np.mean(mu)), "mu std": float(np.std(mu)),
                      "mu interior mean": float(np.mean(interior)), "mu interior std": float(np.std(interior)),
                      "lowest loss (mean)": float(np.mean(run["best_loss"])),
                      "final loss (mean)": float(np.mean(run["loss"][:, -1]))})
        step(f"{label}: mu {np.mean(mu):.4g}")
    return {"grid": grid, "predictions": np.array(predictions), "mu": np.array(mus), "train_angles": b,
            "train_values": y, "tables": {"mu": table},
            "labels": {"curves": [label for label, _ in archs], "input": input, "parametrization": parametrization,
                       "width": width, "n_init": n_init}}


def _declared() -> dict[str, P.Parameter]:
    return {"width": P.WIDTH, "n_init": P.N_INIT, "depth": P.DEPTH, "alphas": P.alphas(4),
            "n_train": P.Parameter("int", "Equispaced training angles m.", minimum=2, maximum=1000),
            "steps": P.STEPS, "lr": P.Parameter("float", "Adam's step size.", positive=True, maximum=1),
            "n_grid": P.N_GRID, "seed": P.SEED, "parametrization": P.PARAMETRIZATION,
            "input": P.Parameter("str", "'circle': (cos b, sin b); 'angle': b itself (1-D).", choices=INPUTS)}


def cost(p: dict[str, Any]) -> dict[str, int]:
    nets = p["n_init"] * (len(p["alphas"]) + 1)
    # per step: a batch of 1, and the full training set for the lowest-loss check; 21 records on the grid
    samples = p["steps"] * (1 + p["n_train"]) + 22 * (p["n_grid"] + p["n_train"])
    return {"kernel_entry_layers": (len(p["alphas"]) + 1) * p["n_train"] ** 2 * p["depth"],
            "training_weight_steps": nets * samples * weights(p["depth"], p["width"], 2),
            "output_bytes": BYTES * (nets * (p["n_grid"] + 1) + p["n_grid"] + 2 * p["n_train"])}


QUICK = {"width": 64, "n_init": 2, "depth": 5, "alphas": [1.0, 0.1], "n_train": 20, "steps": 1000, "lr": 1e-4,
         "n_grid": 1024, "seed": 0}
PAPER = {"width": 500, "n_init": 5, "n_grid": 4096}
FIG4 = Experiment("lowest-loss", "Adam at lr 1e-4, each network at its lowest loss (Fig. 4)", lowest_loss,
                  _declared(), QUICK | {"parametrization": "xavier", "input": "circle"}, cost, PAPER)
FIG5 = Experiment("scalar-angle", "The angle as a 1-D input, PyTorch initialisation, biases (Fig. 5)", lowest_loss,
                  _declared(), QUICK | {"parametrization": "pytorch", "input": "angle"}, cost, PAPER)
