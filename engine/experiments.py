"""The paper's experiments as named, parameterised computations that return plain data.

Each experiment has two parameter sets sharing one code path: `quick` (the default; fits a
2-core CPU) and `paper` (the paper's settings; the finite-network ones are GPU work).
Kernel-only experiments use the paper's settings in both. `run(name, scale, overrides)`
returns {"tables": {name: [row dicts]}, "labels": {...}, **arrays}: JSON-able values and
numpy arrays. Importing this module does not import JAX (the service's API process lists
the experiments); each experiment imports the engine when it runs.

Setups: shared/docs/kernels.md section 6 (Tirer, Bruna & Giryes, MSML 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.architectures import Architecture

Progress = Callable[[float, str], None]
ALPHAS = [1.0, 0.5, 0.1, 0.01]

# The paper's published numbers (kernels.md section 6), set beside ours in the report.
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


class _Steps:
    """progress(fraction, message) over a known number of steps."""

    def __init__(self, total: int, progress: Progress | None):
        self.total, self.done, self.progress = max(total, 1), 0, progress

    def __call__(self, message: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done / self.total, 1.0), message)


def kernel_shapes(*, depths: list[int], alphas: list[float], n_angles: int, kernels: list[str],
                  progress: Progress | None = None) -> dict[str, Any]:
    """Kernels against the angle on the unit circle, normalised to unit peak (Fig. 2, top).
    Arrays: angles (A,), <kernel> (depths, curves, A)."""
    from engine.spectra import kernel_profile

    angles = np.linspace(-np.pi, np.pi, n_angles)
    step = _Steps(len(depths) * (len(alphas) + 1) * len(kernels), progress)
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


def interpolation(*, depths: list[int], n_trains: list[int], alphas: list[float], n_grid: int, ridge: float,
                  kernel: str, progress: Progress | None = None) -> dict[str, Any]:
    """NTK interpolants of 0.5 cos b + sin 4b from m equispaced samples, and mu (eq. 22) of
    each (Fig. 2 / Fig. 6 and their legends). Arrays: angles (G,), interpolants
    (depths, m's, curves, G), train_angles_<m> and train_values_<m>."""
    from engine.smoothness import circle_interpolation

    step = _Steps(len(depths) * len(n_trains) * (len(alphas) + 1), progress)
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
    out |= {"interpolants": curves, "tables": {"mu": table, "published_mu": _published_mu(alphas)},
            "labels": {"curves": [label for label, _ in architectures(depths[0], alphas)], "depths": depths,
                       "n_trains": n_trains}}
    return out


def _published_mu(alphas: list[float]) -> list[dict[str, Any]]:
    labels = [label for label, _ in architectures(1, ALPHAS)]
    return [{"L": depth, "m": m, **{label: value for label, value in zip(labels, values, strict=True)
                                     if label == "MLP" or float(label.split("=")[1]) in alphas}}
            for (depth, m), values in PUBLISHED_MU.items()]


def finite_vs_infinite(*, width: int, n_init: int, depth: int, alpha: float, n_trains: list[int], steps: int,
                       lrs: list[float], n_angles: int, n_grid: int, seed: int,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Finite ResNets beside their NTK (Fig. 1): the empirical NTK K(x0, .) on the circle of
    each initialisation around the analytic one, and GD-trained networks' predictions beside
    the NTK regression mean at the same time t = lr x steps (one lr per m). Arrays: angles (A,),
    analytic_ntk (A,), empirical_ntk (n_init, A), grid (G,), per m: predictions_<m> (n_init, G),
    ntk_mean_<m> (G,), interpolant_<m> (G,), loss_<m> (n_init, R), steps_<m> (R,)."""
    from engine.analytic import analytic_kernels
    from engine.empirical import empirical_ntk
    from engine.networks import ensemble_member, init_params
    from engine.regression import gram_regression
    from engine.smoothness import circle_grid, circle_points, paper_target, paper_train_angles
    from engine.spectra import kernel_profile
    from engine.training import train

    if len(lrs) != len(n_trains):
        raise ValueError(f"lrs must give one step size per n_train; got {len(lrs)} for {len(n_trains)}")
    arch = Architecture("resnet", depth, alpha=alpha)
    step = _Steps(n_init + len(n_trains), progress)
    angles, grid = np.linspace(-np.pi, np.pi, n_angles), circle_grid(n_grid)
    anchor = np.array([[1.0, 0.0]])
    ensemble = init_params(arch, width, 2, seed, n_init=n_init)
    empirical = []
    for i in range(n_init):
        empirical.append(empirical_ntk(arch, ensemble_member(ensemble, i), anchor, circle_points(angles))[0])
        step(f"empirical NTK, network {i + 1}/{n_init}")
    out: dict[str, Any] = {"angles": angles, "analytic_ntk": kernel_profile(arch, angles),
                           "empirical_ntk": np.array(empirical), "grid": grid}
    table = []
    for m, lr in zip(n_trains, lrs, strict=True):
        b = paper_train_angles(m)
        x, y = circle_points(b), paper_target(b)
        run = train(arch, x, y, width=width, seed=seed, n_init=n_init, lr=lr, steps=steps, x_test=circle_points(grid),
                    track_ntk=True)
        k_train = analytic_kernels(x, arch=arch, kernels=("ntk",))["ntk"]
        k_grid = analytic_kernels(circle_points(grid), x, arch=arch, kernels=("ntk",))["ntk"]
        ntk_mean = gram_regression(k_train, k_grid, y, t=lr * steps).mean
        interpolant = gram_regression(k_train, k_grid, y).mean
        mean = run["mean_prediction"][-1]
        out |= {f"predictions_{m}": run["predictions"][-1], f"ntk_mean_{m}": ntk_mean,
                f"interpolant_{m}": interpolant, f"loss_{m}": run["loss"], f"steps_{m}": run["steps"],
                f"train_angles_{m}": b, f"train_values_{m}": y}
        table.append({"m": m, "lr": lr, "final loss (mean)": float(run["loss"][:, -1].mean()),
                      "ensemble mean vs NTK at t (relative max error)": float(np.max(np.abs(mean - ntk_mean))
                                                                             / np.max(np.abs(ntk_mean))),
                      "NTK drift (mean)": float(run["ntk_drift"][:, -1].mean())})
        step(f"trained {n_init} networks on {m} samples")
    spread = np.std(out["empirical_ntk"], axis=0).max() / np.abs(out["analytic_ntk"]).max()
    out["tables"] = {"training": table, "empirical_ntk": [{
        "mean empirical vs analytic (relative max error)": float(np.max(np.abs(out["empirical_ntk"].mean(0)
                                                                              - out["analytic_ntk"]))
                                                                / np.abs(out["analytic_ntk"]).max()),
        "spread over initialisations (max std / max analytic)": float(spread)}]}
    out["labels"] = {"n_trains": n_trains, "width": width, "n_init": n_init}
    return out


def beyond_ntk(*, width: int, n_init: int, depth: int, alphas: list[float], n_trains: list[int], steps: int,
               optimizers: list[str], lrs: list[float], n_grid: int, seed: int,
               progress: Progress | None = None) -> dict[str, Any]:
    """Outside the NTK regime (Figs. 3-4): standard parametrisation, batch size 1, SGD / Adam;
    mu (eq. 22) of each trained network's function on the grid. Arrays: grid (G,),
    mean_<optimizer>_<m> (curves, G) the mean prediction of the networks that did not diverge
    (labels.curves["<optimizer>_<m>"] names them), train_angles_<m>, train_values_<m>."""
    from engine.smoothness import circle_grid, circle_points, mu_curvature, paper_target, paper_train_angles
    from engine.training import train

    if len(lrs) != len(optimizers):
        raise ValueError(f"lrs must give one step size per optimizer; got {len(lrs)} for {len(optimizers)}")
    grid = circle_grid(n_grid)
    archs = architectures(depth, alphas)
    step = _Steps(len(optimizers) * len(n_trains) * len(archs), progress)
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
                                steps=steps, batch_size=1, parametrization="standard", x_test=circle_points(grid))
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
    out["labels"] = {"curves": curves, "optimizers": optimizers, "n_trains": n_trains}
    return out


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
    step = _Steps(len(archs), progress)
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


def _ensemble_jacobians(arch: Architecture, width: int, seed: int, n_init: int, points, params) -> np.ndarray:
    """max over points of ||df/dx|| for each network: of `params` (an ensemble), or at init."""
    from engine.empirical import input_jacobian_norms
    from engine.networks import ensemble_member, init_params

    ensemble = params if params is not None else init_params(arch, width, 2, seed, n_init=n_init)
    return np.array([input_jacobian_norms(arch, ensemble_member(ensemble, i), points).max()
                     for i in range(n_init)])


def spectra(*, depths: list[int], alphas: list[float], n_grid: int, condition_depths: list[int], n_points: int,
            progress: Progress | None = None) -> dict[str, Any]:
    """Fourier magnitudes of the NTK profiles (Fig. 8) and Gram condition numbers against
    depth on n_points equispaced circle points. Arrays: frequencies (K,), magnitudes
    (depths, curves, K), condition_depths (D,), inverse_condition (curves, D): lambda_min /
    lambda_max, 0 for a singular Gram matrix ("singular" in the table)."""
    from engine.smoothness import circle_grid, circle_points
    from engine.spectra import circle_spectrum, gram_spectrum

    step = _Steps(len(depths) * (len(alphas) + 1) + len(condition_depths), progress)
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
    step = _Steps(len(n_trains) * draws, progress)
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


def rkhs_vs_curvature(*, depth: int, n_trains: list[int], alphas: list[float], n_grid: int, bandwidth: float,
                      cutoff: int | None, progress: Progress | None = None) -> dict[str, Any]:
    """The slides' Gaussian-RKHS ratio beside the paper's mu on the same NTK interpolants
    (bandwidth and cut-off reported). Arrays: mu_curvature (m's, curves), mu_rkhs (m's, curves)."""
    from engine.smoothness import circle_interpolation, mu_rkhs

    archs = architectures(depth, alphas)
    step = _Steps(len(n_trains) * len(archs), progress)
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


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    run: Callable[..., dict[str, Any]]
    quick: dict[str, Any]
    paper: dict[str, Any] = field(default_factory=dict)  # overrides of `quick` for the paper's scale

    @property
    def description(self) -> str:
        first = " ".join((self.run.__doc__ or "").split("\n\n")[0].split())
        return first.split(" Arrays:")[0]

    def parameters(self, scale: str = "quick", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full parameter set at `scale`, with `overrides` checked against it."""
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        params = {**self.quick, **(self.paper if scale == "paper" else {})}
        for key, value in (overrides or {}).items():
            if key not in params:
                raise ValueError(f"{self.name} has no parameter {key!r}; its parameters are {sorted(params)}")
            params[key] = _check_like(f"{self.name}.{key}", value, params[key])
        return params


def _check_like(name: str, value: Any, default: Any) -> Any:
    """value, if it has the default's type (ints for floats allowed; lists element-wise)."""
    if isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise ValueError(f"{name} must be a non-empty list, got {value!r}")
        return [_check_like(f"{name}[{i}]", v, default[0]) for i, v in enumerate(value)]
    if isinstance(default, bool) or isinstance(value, bool):
        if not isinstance(value, bool) or not isinstance(default, bool):
            raise ValueError(f"{name} must be a {type(default).__name__}, got {value!r}")
        return value
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return value
    if default is None or isinstance(value, type(default)):
        return value
    raise ValueError(f"{name} must be a {type(default).__name__}, got {value!r}")


SCALES = ("quick", "paper")
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("kernel-shapes", "Kernel shapes on the unit circle (Fig. 2, top)", kernel_shapes,
               {"depths": [5, 15], "alphas": ALPHAS, "n_angles": 361, "kernels": ["ntk", "nngp"]}),
    Experiment("interpolation", "NTK interpolation and its smoothness mu (Figs. 2, 6)", interpolation,
               {"depths": [5, 15], "n_trains": [6, 10], "alphas": ALPHAS, "n_grid": 4096, "ridge": 1e-10,
                "kernel": "ntk"}),
    Experiment("finite-vs-infinite", "Finite ResNets against the NTK (Fig. 1)", finite_vs_infinite,
               {"width": 256, "n_init": 4, "depth": 5, "alpha": 0.1, "n_trains": [6, 10], "steps": 1000,
                "lrs": [0.5, 0.1], "n_angles": 181, "n_grid": 1024, "seed": 0},
               {"width": 2000, "n_init": 30, "steps": 10000, "lrs": [0.5, 0.05]}),
    Experiment("beyond-ntk", "Outside the NTK regime: SGD and Adam, standard parametrisation (Figs. 3-4)",
               beyond_ntk,
               {"width": 128, "n_init": 3, "depth": 5, "alphas": [1.0, 0.1], "n_trains": [6], "steps": 300,
                "optimizers": ["sgd", "adam"], "lrs": [0.01, 0.001], "n_grid": 4096, "seed": 0},
               {"width": 500, "n_init": 30, "n_trains": [6, 10], "steps": 1000}),
    Experiment("bounds", "Jacobian bounds against depth and alpha, and measured ||df/dx||", bounds,
               {"depths": list(range(1, 31)), "alphas": ALPHAS, "width": 128, "n_init": 2, "train_depth": 5,
                "train_alphas": [1.0, 0.1], "steps": 200, "lr_fraction": 0.5, "n_grid": 512, "seed": 0},
               {"width": 2000, "n_init": 10, "steps": 2000, "n_grid": 4096}),
    Experiment("spectra", "Kernel spectra (Fig. 8) and Gram condition numbers", spectra,
               {"depths": [5, 15], "alphas": ALPHAS, "n_grid": 1024,
                "condition_depths": [1, 2, 3, 5, 8, 10, 15, 20, 30], "n_points": 16}),
    Experiment("digits", "Two-class digits by NTK regression (Table 1 protocol, scikit-learn's 8x8 digits)",
               digits,
               {"n_trains": [50, 100], "depths": [5, 15, 30], "alphas": [1.0, 0.1], "classes": [0, 8],
                "draws": 10, "ridge": 1e-10, "seed": 0},
               {"draws": 50}),
    Experiment("rkhs-vs-curvature", "The slides' RKHS ratio beside the paper's mu", rkhs_vs_curvature,
               {"depth": 5, "n_trains": [6, 10], "alphas": ALPHAS, "n_grid": 4096, "bandwidth": 0.5,
                "cutoff": None}),
]}


def run(name: str, scale: str = "quick", overrides: dict[str, Any] | None = None,
        progress: Progress | None = None) -> dict[str, Any]:
    """Run one experiment; the result carries its name, scale and parameters."""
    if name not in EXPERIMENTS:
        raise ValueError(f"no experiment {name!r}; the experiments are {sorted(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    params = experiment.parameters(scale, overrides)
    result = experiment.run(**params, progress=progress)
    result["labels"] = {**result.get("labels", {}), "experiment": name, "scale": scale, "parameters": params}
    return result
