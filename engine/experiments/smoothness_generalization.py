"""Does smoothness predict generalisation? Test error beside smoothness measures, per architecture, on
real data and on the sphere (issue 23, section 3).

Tasks (`smoothness_data`): scikit-learn's 8x8 digits (ten classes, one-hot regression) as vectors on
S^63 for the MLP and ResNets and as (8, 8, 1) images for the conv kernels (`engine.conv`: CNN and
conv-ResNets, 3x3 filters, circular padding); and targets of spherical harmonics plus noise on S^(d-1).
Predictors: NTK and NNGP kernel regression, and finite networks trained by GD (`smoothness_measures`).
Measures: the paper's curvature mu and the heat-kernel RKHS ratio of the kernel predictors (dense kinds),
max ||df/dx|| over test points of every predictor (autodiff), the paper's Jacobian bound B at the finite
width, and the spectrally-normalised margin bound of Bartlett, Foster & Telgarsky (2017) of the trained
digit classifiers (`engine.margin_bound`). Spearman's rho between each measure and the test error across
architectures, with bootstrap intervals over splits and initialisations (`rank_correlation`). ReLU,
sigma_w = sigma_v = 1, no biases.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import BYTES, Progress, Steps
from engine.experiments.registry import Experiment, ParameterError, same_length
from engine.experiments.smoothness_data import CLASSES, DIGITS, Task

IMAGE = (8, 8, 1)
KERNEL_MEASURES = ("mu", "rkhs", "max_gradient", "jacobian_bound")
NET_MEASURES = ("max_gradient", "jacobian_bound", "margin_bound", "margin_complexity")
PREDICTOR_NAMES = {"ntk": "NTK regression", "nngp": "NNGP regression", "net": "trained networks"}


def dense_networks(depths: list[int], alphas: list[float]) -> list[tuple[str, str, Any]]:
    """(label, family, Architecture): the MLP at each depth, then the ResNets per alpha and depth (ReLU)."""
    from engine.architectures import Architecture

    return ([(f"MLP L={d}", "MLP", Architecture("mlp", d)) for d in depths]
            + [(f"ResNet alpha={a:g} L={d}", "ResNet", Architecture("resnet", d, alpha=a)) for a in alphas
               for d in depths])


def conv_networks(depths: list[int], alphas: list[float], readout: str) -> list[tuple[str, str, Any]]:
    """(label, family, ConvArchitecture): the CNN at each depth, then conv-ResNets per alpha and depth."""
    from engine.conv.architecture import ConvArchitecture

    return ([(f"CNN L={d}", "CNN", ConvArchitecture("cnn", d, readout=readout)) for d in depths]
            + [(f"conv-ResNet alpha={a:g} L={d}", "conv-ResNet", ConvArchitecture("conv-resnet", d, alpha=a,
                                                                                    readout=readout))
               for a in alphas for d in depths])


class Results:
    """Per (task, predictor): the compared networks and each quantity as (networks, replicates)."""

    def __init__(self) -> None:
        self.nets: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.values: dict[tuple[str, str], dict[str, list[list[float]]]] = {}

    def add(self, task: str, predictor: str, label: str, family: str, values: dict[str, Any]) -> None:
        key = (task, predictor)
        nets, store = self.nets.setdefault(key, []), self.values.setdefault(key, {})
        if (label, family) not in nets:
            nets.append((label, family))
        row = nets.index((label, family))
        for name, value in values.items():
            rows = store.setdefault(name, [])
            while len(rows) <= row:
                rows.append([])
            rows[row].extend(np.atleast_1d(value).tolist())

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{t}_{p}_{name}": np.array(rows) for (t, p), store in self.values.items()
                for name, rows in store.items()}


def smoothness_generalization(
    *, depths: list[int], alphas: list[float], kernels: list[str], n_train: int, n_test: int, splits: int,
    ridge: float, gradient_points: int, bandwidth: float, k_max: int, conv_depths: list[int], conv_alphas: list[float],
    conv_readout: str, conv_n_train: int, conv_n_test: int, conv_gradient_points: int, sphere_dim: int,
    sphere_n_train: int, sphere_n_test: int, target_degrees: list[int], target_powers: list[float], noise: float,
    width: int, n_init: int, steps: int, lr_fraction: float, net_depths: list[int], net_alphas: list[float],
    margin_quantile: float, delta: float, bootstrap: int, seed: int, progress: Progress | None = None,
) -> dict[str, Any]:
    """Test error against smoothness for the MLP, ResNets and conv nets: NTK / NNGP regression and trained
    networks on scikit-learn's digits (one-hot, ten classes; vectors and 8x8 images) and on spherical-harmonic
    targets on S^(d-1); mu, the RKHS ratio, max ||df/dx||, the paper's Jacobian bound, the spectrally-
    normalised margin bound; Spearman correlations with bootstrap intervals over splits and seeds. Arrays:
    <task>_<predictor>_<quantity> (networks, replicates), task digits / images / sphere, predictor ntk / nngp /
    net, replicates the splits (x n_init for net)."""
    from engine.experiments.smoothness_data import digits_task, sphere_task
    from engine.experiments.smoothness_measures import network_measures

    dense, convs = dense_networks(depths, alphas), conv_networks(conv_depths, conv_alphas, conv_readout)
    trained = dense_networks(net_depths, net_alphas)
    step = Steps(splits * (2 * len(dense) + len(convs) + 2 * len(trained)), progress)
    results, cache = Results(), dict[Any, Any]()
    net_options: dict[str, Any] = {"width": width, "n_init": n_init, "steps": steps, "lr_fraction": lr_fraction,
                   "margin_quantile": margin_quantile, "delta": delta, "seed": seed}
    for split in range(splits):
        digits = digits_task(n_train, n_test, split, seed)
        sphere = sphere_task(sphere_dim, sphere_n_train, sphere_n_test, target_degrees, target_powers, noise, split,
                             seed)
        for name, task in (("digits", digits), ("sphere", sphere)):
            _dense_kernels(results, name, task, dense, kernels, cache, step, ridge=ridge, width=width,
                           gradient_points=gradient_points, bandwidth=bandwidth, k_max=k_max)
        assert digits.labels_train is not None and digits.labels_test is not None  # a classification task
        images = Task(digits.x_train[:conv_n_train], digits.y_train[:conv_n_train], digits.labels_train[:conv_n_train],
                      digits.x_test[:conv_n_test], digits.truth_test[:conv_n_test], digits.labels_test[:conv_n_test])
        _conv_kernels(results, images, convs, kernels, step, ridge=ridge, gradient_points=conv_gradient_points,
                      bandwidth=bandwidth, k_max=k_max)
        for name, task in (("digits", digits), ("sphere", sphere)):
            for label, family, arch in trained:
                results.add(name, "net", label, family, network_measures(
                    task, arch, gradient_points=gradient_points, split=split, **net_options))
                step(f"split {split}: {name}, trained {label}")
    out: dict[str, Any] = results.arrays()
    labels = {f"{t}_{p}": [label for label, _ in nets] for (t, p), nets in results.nets.items()}
    families = {f"{t}_{p}": [family for _, family in nets] for (t, p), nets in results.nets.items()}
    out["tables"] = {"spearman": _spearman_rows(out, results, bootstrap, seed), **_network_tables(out, results),
                     "margin_bound": _margin_rows(out, results)}
    out["labels"] = {"networks": labels, "families": families, "predictors": PREDICTOR_NAMES, "width": width,
                     "n_init": n_init, "splits": splits, "image": list(IMAGE),
                     "dataset": "scikit-learn digits (8x8, all ten classes), not MNIST"}
    return out


def _dense_kernels(results: Results, name: str, task: Task, networks: list[tuple[str, str, Any]], kernels: list[str],
                   cache: dict[Any, Any], step: Steps, *, width: int, **options: Any) -> None:
    from engine.analytic import analytic_kernels
    from engine.bounds import jacobian_bounds
    from engine.experiments.smoothness_measures import kernel_measures

    for label, family, arch in networks:
        k_train = analytic_kernels(task.x_train, arch=arch, kernels=tuple(kernels))
        k_test = analytic_kernels(task.x_test, task.x_train, arch=arch, kernels=tuple(kernels))
        bound = jacobian_bounds(arch, width, task.x_train.shape[1])["bound"]
        grams = {k: (k_train[k], k_test[k]) for k in kernels}
        for kernel, measures in kernel_measures(task, arch, grams, cache=cache, **options).items():
            results.add(name, kernel, label, family, measures | {"jacobian_bound": bound})
        step(f"{name}: {label} kernels")


def _conv_kernels(results: Results, task: Task, networks: list[tuple[str, str, Any]], kernels: list[str],
                  step: Steps, **options: Any) -> None:
    from engine.conv.analytic import conv_kernels
    from engine.experiments.smoothness_measures import kernel_measures

    x, x_test = task.x_train.reshape(-1, *IMAGE), task.x_test.reshape(-1, *IMAGE)
    for label, family, arch in networks:
        k_train = conv_kernels(x, arch=arch, kernels=tuple(kernels))
        k_test = conv_kernels(x_test, x, arch=arch, kernels=tuple(kernels))
        grams = {k: (k_train[k], k_test[k]) for k in kernels}
        for kernel, measures in kernel_measures(task, arch, grams, cache={}, images=IMAGE, **options).items():
            results.add("images", kernel, label, family, measures)
        step(f"images: {label} kernels")


def distinct(measure: np.ndarray, target: np.ndarray) -> list[int]:
    """The networks (rows) whose (measure, target) values over the replicates differ from every earlier
    row's: one predictor entered under several names (the ResNet at alpha = 0 is the same linear kernel at
    every depth) counts once in a rank correlation."""
    rows = np.concatenate([measure, target], axis=1)
    return [i for i in range(len(rows)) if not any(np.array_equal(rows[i], rows[j]) for j in range(i))]


def _spearman_rows(out: dict[str, Any], results: Results, draws: int, seed: int) -> list[dict[str, Any]]:
    """Spearman's rho of every measure against the test error (and, for the margin bound, the measured gap),
    over all distinct networks of a predictor and within each family."""
    from engine.experiments.rank_correlation import spearman_interval

    rows = []
    for (task, predictor), nets in results.nets.items():
        key = f"{task}_{predictor}"
        error = out[f"{key}_test_error"]
        targets = {"test error": error}
        if f"{key}_train_error" in out and task == "digits":
            targets["gap"] = error - out[f"{key}_train_error"]
        families = [f for f in dict.fromkeys(f for _, f in nets)]
        for measure in (NET_MEASURES if predictor == "net" else KERNEL_MEASURES):
            if f"{key}_{measure}" not in out:
                continue
            for against, values in targets.items():
                if against == "gap" and not measure.startswith("margin"):
                    continue
                for family in ["all", *families]:
                    kept = distinct(out[f"{key}_{measure}"], values)
                    pick = [i for i in kept if family in ("all", nets[i][1])]
                    result = spearman_interval(out[f"{key}_{measure}"][pick], values[pick], draws=draws, seed=seed)
                    rows.append({"task": task, "predictor": predictor, "measure": measure, "against": against,
                                 "family": family, **result})
    return rows


def _network_tables(out: dict[str, Any], results: Results) -> dict[str, list[dict[str, Any]]]:
    """Per task and predictor: each network's means over the replicates."""
    tables = {}
    for (task, predictor), nets in results.nets.items():
        key = f"{task}_{predictor}"
        names = [name for name in results.values[(task, predictor)] if not name.startswith("margin_")
                 or name in ("margin_bound", "margin_complexity")]
        tables[key] = [{"network": label, "family": family,
                        **{name: float(out[f"{key}_{name}"][i].mean()) for name in names}}
                       for i, (label, family) in enumerate(nets)]
    return tables


def _margin_rows(out: dict[str, Any], results: Results) -> list[dict[str, Any]]:
    """The margin bound of the trained digit classifiers, every term, beside the measured gap."""
    if ("digits", "net") not in results.nets:
        return []
    rows = []
    for i, (label, _) in enumerate(results.nets[("digits", "net")]):
        get = {name: out[f"digits_net_{name}"][i] for name in ("test_error", "train_error", "margin_bound",
                                                               "margin_complexity", "margin_train_margin_error",
                                                               "margin_gamma", "margin_r_a", "margin_lipschitz")}
        rows.append({"network": label, "test error": float(get["test_error"].mean()),
                     "train error": float(get["train_error"].mean()),
                     "measured gap": float((get["test_error"] - get["train_error"]).mean()),
                     "bound on the test error": float(get["margin_bound"].mean()),
                     "complexity term": float(get["margin_complexity"].mean()),
                     "hat R_gamma": float(get["margin_train_margin_error"].mean()),
                     "gamma": float(get["margin_gamma"].mean()), "R_A": float(get["margin_r_a"].mean()),
                     "prod ||A_i||": float(get["margin_lipschitz"].mean()),
                     "vacuous (bound >= 1)": bool(np.all(get["margin_bound"] >= 1))})
    return rows


def _alphas(which: str) -> P.Parameter:
    return P.Parameter("float", f"Residual-branch scales alpha of the compared {which} (none: the networks "
                       "without skips alone).", minimum=0, maximum=100, list=True, min_items=0, max_items=8,
                       unique=True)


DECLARED = {
    "depths": P.depths(max_items=6, maximum=100), "alphas": _alphas("ResNets"),
    "kernels": P.Parameter("str", "Kernel predictors.", choices=("ntk", "nngp"), list=True, max_items=2, unique=True),
    "n_train": P.Parameter("int", "Training digits per split (stratified).", minimum=20, maximum=DIGITS - 10),
    "n_test": P.Parameter("int", "Test digits per split (n_train + n_test <= 1797).", minimum=10, maximum=DIGITS - 20),
    "splits": P.Parameter("int", "Seeded train/test splits (and sphere draws).", minimum=1, maximum=20),
    "ridge": P.RIDGE,
    "gradient_points": P.Parameter("int", "Test points (the first) at which max ||df/dx|| is taken.", minimum=1,
                                   maximum=DIGITS),
    "bandwidth": P.Parameter("float", "Heat-kernel bandwidth of the RKHS ratio (t = bandwidth^2 / 2).",
                             positive=True, maximum=10),
    "k_max": P.Parameter("int", "Highest harmonic degree of mu and the RKHS ratio (Funk-Hecke eigenvalues).",
                         minimum=4, maximum=511),
    "conv_depths": P.depths(max_items=6, maximum=100), "conv_alphas": _alphas("conv-ResNets"),
    "conv_readout": P.Parameter("str", "Readout of the conv nets (pool: every pixel pair).",
                                choices=("pool", "flatten")),
    "conv_n_train": P.Parameter("int", "Training images of the conv kernels (the split's first).", minimum=10,
                                maximum=DIGITS),
    "conv_n_test": P.Parameter("int", "Test images of the conv kernels (the split's first).", minimum=1,
                               maximum=DIGITS),
    "conv_gradient_points": P.Parameter("int", "Test images at which the conv predictors' ||df/dx|| is taken.",
                                        minimum=1, maximum=DIGITS),
    "sphere_dim": P.Parameter("int", "d of the sphere S^(d-1) (>= 4: the curvature by the spectrum).", minimum=4,
                              maximum=64),
    "sphere_n_train": P.Parameter("int", "Training points on the sphere.", minimum=10, maximum=4096),
    "sphere_n_test": P.Parameter("int", "Test points on the sphere.", minimum=10, maximum=16384),
    "target_degrees": P.Parameter("int", "Degrees of the target's harmonics.", minimum=0, maximum=64, list=True,
                                  max_items=8),
    "target_powers": P.Parameter("float", "Power of each degree.", minimum=0, maximum=1e3, list=True, max_items=8),
    "noise": P.Parameter("float", "Label noise sigma on the sphere.", minimum=0, maximum=10),
    "width": P.WIDTH, "n_init": P.N_INIT, "steps": P.STEPS,
    "lr_fraction": P.Parameter("float", "GD step: this fraction of 2 / (lambda_min + lambda_max) of the analytic NTK.",
                               positive=True, maximum=1),
    "net_depths": P.depths(max_items=6, maximum=100), "net_alphas": _alphas("trained ResNets"),
    "margin_quantile": P.Parameter("float", "The margin gamma: this quantile of the positive training margins.",
                                   positive=True, maximum=0.5),
    "delta": P.Parameter("float", "Failure probability of the margin bound.", positive=True, maximum=0.5),
    "bootstrap": P.Parameter("int", "Bootstrap draws of the rank-correlation intervals.", minimum=10, maximum=100000),
    "seed": P.SEED,
}


def _rules(p: dict[str, Any]) -> None:
    same_length("target_degrees", "target_powers")(p)
    if p["n_train"] + p["n_test"] > DIGITS:
        raise ParameterError(f"n_train + n_test must be <= {DIGITS}, got {p['n_train']} + {p['n_test']}", "n_test")
    if p["n_train"] < 5 * CLASSES:
        raise ParameterError(f"n_train must be >= {5 * CLASSES} (5 digits per class), got {p['n_train']}", "n_train")
    for name, limit in (("conv_n_train", "n_train"), ("conv_n_test", "n_test")):
        if p[name] > p[limit]:
            raise ParameterError(f"{name} must be <= {limit} ({p[limit]}), got {p[name]}", name)


def cost(p: dict[str, Any]) -> dict[str, int]:
    kernels, archs = len(p["kernels"]), 1 + len(p["alphas"])
    depth_sum = archs * sum(p["depths"])
    entries = 0
    for n, m, d in ((p["n_train"], p["n_test"], 64), (p["sphere_n_train"], p["sphere_n_test"], p["sphere_dim"])):
        gradients = kernels * min(p["gradient_points"], m) * n * d  # forward mode: one pass per input direction
        entries += depth_sum * (n * (n + 1) // 2 + m * n + gradients)
    conv_depth_sum = (1 + len(p["conv_alphas"])) * sum(p["conv_depths"])
    pairs = 64 * 64 if p["conv_readout"] == "pool" else 64
    n, m = p["conv_n_train"], p["conv_n_test"]
    images = n * (n + 1) // 2 + m * n + kernels * min(p["conv_gradient_points"], m) * n * 64
    entries += conv_depth_sum * pairs * 9 * images
    nets = (1 + len(p["net_alphas"])) * len(p["net_depths"]) * (CLASSES + 1) * p["n_init"]
    per = 2 * max(p["net_depths"]) * p["width"] ** 2 + 65 * p["width"]
    training = nets * p["steps"] * max(p["n_train"], p["sphere_n_train"]) * per
    replicate = {"kernel": p["splits"], "net": p["splits"] * p["n_init"]}
    outputs = 2 * (archs * len(p["depths"])) * kernels * 5 * replicate["kernel"]
    outputs += (1 + len(p["conv_alphas"])) * len(p["conv_depths"]) * kernels * 2 * replicate["kernel"]
    outputs += (1 + len(p["net_alphas"])) * len(p["net_depths"]) * (5 + 5 + 6) * replicate["net"]
    return {"kernel_entry_layers": p["splits"] * entries, "training_weight_steps": p["splits"] * training,
            "output_bytes": BYTES * outputs}


EXPERIMENT = Experiment(
    "smoothness-generalization", "Does smoothness predict generalisation? Digits, digit images and the sphere",
    smoothness_generalization, DECLARED,
    {"depths": [2, 5, 15], "alphas": [0.0, 0.1, 1.0], "kernels": ["ntk", "nngp"], "n_train": 200, "n_test": 300,
     "splits": 2, "ridge": 1e-8, "gradient_points": 100, "bandwidth": 0.2, "k_max": 128, "conv_depths": [2, 5],
     "conv_alphas": [0.1, 1.0], "conv_readout": "flatten", "conv_n_train": 200, "conv_n_test": 300,
     "conv_gradient_points": 5, "sphere_dim": 5, "sphere_n_train": 200, "sphere_n_test": 500,
     "target_degrees": [1, 2, 4], "target_powers": [1.0, 1.0, 1.0], "noise": 0.1, "width": 32, "n_init": 1,
     "steps": 100, "lr_fraction": 0.5, "net_depths": [2, 5], "net_alphas": [0.0, 1.0], "margin_quantile": 0.1,
     "delta": 0.05, "bootstrap": 1000, "seed": 0},
    cost, paper={"depths": [2, 5, 15, 30], "alphas": [0.0, 0.05, 0.1, 0.2, 0.5, 1.0], "n_train": 899, "n_test": 898,
                 "splits": 5, "gradient_points": 300, "k_max": 511, "conv_depths": [2, 5, 15, 30],
                 "conv_alphas": [0.0, 0.1, 1.0], "conv_readout": "pool", "conv_n_train": 300, "conv_n_test": 300,
                 "conv_gradient_points": 10, "sphere_n_train": 1000, "sphere_n_test": 2000, "width": 128,
                 "n_init": 2, "steps": 1000, "net_depths": [2, 5, 15, 30],
                 "net_alphas": [0.0, 0.05, 0.1, 0.2, 0.5, 1.0]},
    rules=_rules)

