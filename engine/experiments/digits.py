"""The paper's Table 1 protocol on scikit-learn's 8x8 digits (not MNIST)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import BYTES, PUBLISHED_TABLE1, Progress, Steps, architectures
from engine.experiments.registry import Experiment


def digits(*, n_trains: list[int], depths: list[int], alphas: list[float], classes: list[int], draws: int,
           ridge: float, seed: int, progress: Progress | None = None) -> dict[str, Any]:
    """The paper's Table 1 protocol on scikit-learn's 8x8 handwritten digits (not MNIST):
    two classes, N/2 training samples per class, the rest for testing, training mean
    subtracted, unit-norm inputs, labels +-1, sign of NTK regression. Test accuracy, mean
    and std over `draws` random training sets."""
    from sklearn.datasets import load_digits

    from engine.regression import kernel_regression

    if len(classes) != 2:
        raise ValueError(f"classes must name two digits, got {classes!r}")
    data = load_digits()
    keep = np.isin(data.target, classes)
    images, labels = data.data[keep].astype(np.float64), np.where(data.target[keep] == classes[0], 1.0, -1.0)
    rng = np.random.default_rng(seed)
    archs = architectures(1, alphas)
    accuracy = np.zeros((len(n_trains), len(depths), len(archs), draws))
    step = Steps(len(n_trains) * draws, progress)
    for i, n in enumerate(n_trains):
        for k in range(draws):
            train_idx = np.concatenate([rng.choice(np.flatnonzero(labels == s), n // 2, replace=False)
                                        for s in (1.0, -1.0)])
            test_idx = np.setdiff1d(np.arange(len(labels)), train_idx)
            mean = images[train_idx].mean(axis=0)
            x = images - mean
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            for j, depth in enumerate(depths):
                for c, (_, arch) in enumerate(archs):
                    fit = kernel_regression(x[train_idx], labels[train_idx], x[test_idx],
                                            arch=arch.replace(depth=depth), ridge=ridge)
                    accuracy[i, j, c, k] = np.mean(np.sign(fit.mean) == labels[test_idx])
            step(f"N={n}, draw {k + 1}/{draws}")
    names = [label for label, _ in archs]
    table = [{"N": n, "L": depth, **{f"{name} mean": float(accuracy[i, j, c].mean()) for c, name in enumerate(names)},
              **{f"{name} std": float(accuracy[i, j, c].std()) for c, name in enumerate(names)}}
             for i, n in enumerate(n_trains) for j, depth in enumerate(depths)]
    published = [{"N": n, "L": depth, "MLP": v[0], "ResNet alpha=1": v[1], "ResNet alpha=0.1": v[2]}
                 for (n, depth), v in PUBLISHED_TABLE1.items()]
    return {"accuracy": accuracy, "tables": {"accuracy": table, "published_mnist": published},
            "labels": {"curves": names, "n_trains": n_trains, "depths": depths,
                       "test_size": int(len(labels) - n_trains[-1]), "dataset": "scikit-learn digits (8x8)"}}

DECLARED = {"n_trains": P.Parameter("int", "Training set sizes N (N/2 per class).", minimum=2, maximum=300, even=True,
                                    list=True, max_items=4, unique=True),
            "depths": P.depths(maximum=200), "alphas": P.alphas(4),
            "classes": P.Parameter("int", "The two digits.", minimum=0, maximum=9, list=True, min_items=2,
                                   max_items=2, unique=True),
            "draws": P.Parameter("int", "Random training sets per N.", minimum=1, maximum=200),
            "ridge": P.RIDGE, "seed": P.SEED}


def cost(p: dict[str, Any]) -> dict[str, int]:
    fits = p["draws"] * len(p["depths"]) * (len(p["alphas"]) + 1)
    kernel = sum(n * 360 for n in p["n_trains"]) * fits * max(p["depths"])  # at most ~360 images of two classes
    return {"kernel_entry_layers": kernel, "training_weight_steps": 0,
            "output_bytes": BYTES * len(p["n_trains"]) * fits}


EXPERIMENT = Experiment("digits", "Two-class digits by NTK regression (Table 1 protocol, scikit-learn's 8x8 digits)",
                        digits, DECLARED,
                        {"n_trains": [50, 100], "depths": [5, 15, 30], "alphas": [1.0, 0.1], "classes": [0, 8],
                         "draws": 10, "ridge": 1e-10, "seed": 0}, cost, {"draws": 50})
