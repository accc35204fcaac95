"""The paper's Jacobian bounds against depth and alpha, beside measured ||df/dx|| (eqs. 18-21)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine.architectures import Architecture
from engine.experiments import parameters as P
from engine.experiments.common import ALPHAS, BYTES, Progress, Steps, architectures, weights
from engine.experiments.registry import Experiment

if TYPE_CHECKING:
    from engine.networks import Params


def bounds(*, depths: list[int], alphas: list[float], width: int, n_init: int, train_depth: int,
           train_alphas: list[float], steps: int, lr_fraction: float, n_grid: int, seed: int,
           progress: Progress | None = None) -> dict[str, Any]:
    """The Jacobian bounds B_ResNet / B_MLP against depth and alpha, the alpha threshold
    curve, next to the measured max ||df/dx|| of networks at initialisation and after GD on
    the 6-sample set (step: lr_fraction of each network's bound 2 / (lambda_min + lambda_max)).
    Arrays: depths (D,), ratio (alphas, D), threshold (D,)."""
    from engine.bounds import jacobian_bounds
    from engine.smoothness import circle_grid, circle_points, paper_target, paper_train_angles
    from engine.training import lr_bound, train

    ratio = np.array([[jacobian_bounds(Architecture("resnet", d, alpha=a), width, 2)["ratio_to_mlp"]
                       for d in depths] for a in alphas])
    threshold = np.array([jacobian_bounds(Architecture("resnet", d), width, 2)["alpha_threshold"] or 0.0
                          for d in depths])
    archs = architectures(train_depth, train_alphas)
    step = Steps(len(archs), progress)
    b = paper_train_angles(6)
    x, y, points = circle_points(b), paper_target(b), circle_points(circle_grid(n_grid))
    table = []
    for label, arch in archs:
        run = train(arch, x, y, width=width, seed=seed, n_init=n_init, steps=steps,
                    lr=lr_fraction * lr_bound(arch, x))
        initial = _ensemble_jacobians(arch, width, seed, n_init, points, None)
        final = _ensemble_jacobians(arch, width, seed, n_init, points, run["params"])
        table.append({"network": label, "bound B": jacobian_bounds(arch, width, 2)["bound"],
                      "max ||df/dx|| at init (mean)": float(initial.mean()),
                      "max ||df/dx|| trained (mean)": float(final.mean())})
        step(f"trained {label}")
    return {"depths": np.array(depths, dtype=float), "ratio": ratio, "threshold": threshold,
            "tables": {"measured": table}, "labels": {"alphas": alphas, "width": width}}


def _ensemble_jacobians(arch: Architecture, width: int, seed: int, n_init: int, points: np.ndarray,
                        params: Params | None) -> np.ndarray:
    """max over points of ||df/dx|| for each network: of `params` (an ensemble), or at init."""
    from engine.empirical import input_jacobian_norms
    from engine.networks import ensemble_member, ensemble_members

    members = (ensemble_members(arch, width, 2, seed, n_init) if params is None
               else (ensemble_member(params, i) for i in range(n_init)))
    return np.array([input_jacobian_norms(arch, member, points).max() for member in members])

DECLARED = {"depths": P.depths(max_items=1000, maximum=200), "alphas": P.alphas(16), "width": P.WIDTH,
            "n_init": P.N_INIT, "train_depth": P.DEPTH, "train_alphas": P.alphas(4), "steps": P.STEPS,
            "lr_fraction": P.Parameter("float", "GD step as a fraction of the bound 2 / (lambda_min + lambda_max).",
                                       positive=True, maximum=1),
            "n_grid": P.N_GRID, "seed": P.SEED}


def cost(p: dict[str, Any]) -> dict[str, int]:
    nets = p["n_init"] * (len(p["train_alphas"]) + 1)
    train = nets * (6 * p["steps"] + 2 * 3 * p["n_grid"]) * weights(p["train_depth"], p["width"])
    return {"kernel_entry_layers": (len(p["train_alphas"]) + 1) * 36 * p["train_depth"],
            "training_weight_steps": train,
            "output_bytes": BYTES * (len(p["depths"]) * (len(p["alphas"]) + 2))}


EXPERIMENT = Experiment("bounds", "Jacobian bounds against depth and alpha, and measured ||df/dx||", bounds, DECLARED,
                        {"depths": list(range(1, 31)), "alphas": ALPHAS, "width": 128, "n_init": 2,
                         "train_depth": 5, "train_alphas": [1.0, 0.1], "steps": 200, "lr_fraction": 0.5,
                         "n_grid": 512, "seed": 0},
                        cost, {"width": 2000, "n_init": 10, "steps": 2000, "n_grid": 4096})
