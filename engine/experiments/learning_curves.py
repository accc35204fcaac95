"""Learning curves on the sphere: kernel-regression test error against the number of training
points, measured, beside the curve predicted from the kernel's sphere spectrum alone (Bordelon,
Canatar & Pehlevan, ICML 2020; Canatar, Bordelon & Pehlevan, Nature Communications 2021).

The theory. Inputs uniform on S^(d-1); the kernel's eigenvalues under that (probability) measure are
the Funk-Hecke lambda_k, each N(d, k) times (`engine.sphere`); the target f* = sum_k c_k f_k with f_k a
unit-norm degree-k harmonic, so its power in degree k is p_k = c_k^2; labels y = f*(x) + noise of
variance sigma^2; the predictor k(x)^T (K + lambda I)^-1 y from P points. With the kernel divided by
K(1) (its mean diagonal on the sphere) and lambda the ridge relative to it, kappa solves

    1 = lambda / kappa + sum_k N(d, k) lambda_k / (P lambda_k + kappa) + tail / kappa,

tail = 1 - sum_{k <= k_max} N(d, k) lambda_k, the degrees beyond k_max taken as lambda_k << kappa / P
(kappa = 0 when lambda = 0 and P reaches the number of nonzero modes), and

    gamma = sum_k N(d, k) P lambda_k^2 / (P lambda_k + kappa)^2,
    E_g   = (sum_k p_k kappa^2 / (P lambda_k + kappa)^2 + sigma^2 gamma) / (1 - gamma),

the expected E_x (f(x) - f*(x))^2 over training sets. The measurement: the same error on `n_test`
fresh points, averaged over training sets: each of `draws` samples of max(P) points (and a new target
and noise) gives min(max(P) // P, BLOCKS) disjoint training sets of P points.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import BYTES, Progress, Steps, architectures
from engine.experiments.registry import Experiment, ParameterError, same_length

BLOCKS = 16  # at most this many disjoint training sets of size N from each draw's sample of max(N) points


def sphere_sample(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) points uniform on S^(d-1) (normalised Gaussians)."""
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def target(x: np.ndarray, degrees: list[int], powers: list[float], poles: np.ndarray) -> np.ndarray:
    """f*(x) = sum_k sqrt(p_k N(d, k)) P_{k,d}(x . z_k): (n, d) -> (n,). P_{k,d}(x . z) is a degree-k
    zonal harmonic of squared norm 1 / N(d, k) under the uniform measure, so degree k carries power p_k."""
    from engine.sphere import gegenbauer, multiplicities

    d = x.shape[1]
    k_top = max(degrees)
    mult = multiplicities(d, k_top)
    out = np.zeros(x.shape[0])
    for k, p, z in zip(degrees, powers, poles, strict=True):
        out += math.sqrt(p * mult[k]) * gegenbauer(k_top, d, x @ z)[k]
    return out


def solve_kappa(lam: np.ndarray, mult: np.ndarray, n: int, ridge: float, tail: float) -> float:
    """kappa of the self-consistent equation (module docstring) for P = n; lam normalised to K(1) = 1."""
    from scipy.optimize import brentq

    lam = np.maximum(lam, 0.0)

    def excess(kappa: float) -> float:
        return (ridge + tail) / kappa + float(np.sum(mult * lam / (n * lam + kappa))) - 1.0

    lo, hi = 1e-300, 2.0 + ridge + tail
    if ridge + tail == 0.0 and float(np.sum(mult[lam > 0])) <= n:  # enough points for every mode
        return 0.0
    if excess(lo) <= 0:  # kappa below float64's range: zero for every purpose here
        return 0.0
    return float(brentq(excess, lo, hi, xtol=1e-300, rtol=1e-14, maxiter=500))


def theory_error(lam: np.ndarray, mult: np.ndarray, n: int, ridge: float, powers_by_degree: np.ndarray,
                 noise: float) -> float:
    """The predicted E_g at P = n (module docstring); powers_by_degree: (k_max + 1,) p_k, which must
    vanish beyond k_max."""
    lam = np.maximum(lam, 0.0)
    tail = max(0.0, 1.0 - float(np.sum(mult * lam)))
    kappa = solve_kappa(lam, mult, n, ridge, tail)
    denom = n * lam + kappa
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = float(np.sum(np.where(denom > 0, mult * n * lam**2 / np.where(denom > 0, denom, 1) ** 2, 0.0)))
        bias = float(np.sum(np.where(denom > 0, powers_by_degree * kappa**2 / np.where(denom > 0, denom, 1) ** 2,
                                     powers_by_degree)))
    return (bias + noise**2 * gamma) / (1.0 - gamma) if gamma < 1 else math.inf


def learning_curves(*, n_trains: list[int], depth: int, alphas: list[float], kernels: list[str],
                    sphere_dims: list[int], target_degrees: list[int], target_powers: list[float], noise: float,
                    ridge: float, draws: int, n_test: int, k_max: int, activation: str, seed: int,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Kernel-regression test error against N on S^(d-1), targets of spherical harmonics plus noise,
    measured and predicted from the sphere spectrum (Bordelon, Canatar & Pehlevan 2020), for the MLP
    and ResNets over alpha, NTK and NNGP. Arrays: n_trains (S,), measured_<kernel> (dims, curves, S):
    mean test error over draws, measured_std_<kernel> (dims, curves, S): its standard deviation over
    draws, theory_<kernel> (dims, curves, S), coefficients_<kernel> (dims, curves, k_max + 1): lambda_k / K(1)."""
    archs = [(label, arch.replace(activation=activation)) for label, arch in architectures(depth, alphas)]
    labels = [label for label, _ in archs]
    step = Steps(len(sphere_dims) * len(archs) * (draws + 1), progress)
    runs = [_one_dimension(d, archs, n_trains=n_trains, kernels=kernels, target_degrees=target_degrees,
                           target_powers=target_powers, noise=noise, ridge=ridge, draws=draws, n_test=n_test,
                           k_max=k_max, seed=seed, step=step) for d in sphere_dims]
    out: dict[str, Any] = {"n_trains": np.array(n_trains, dtype=float)}
    tables: dict[str, list[dict[str, Any]]] = {}
    agreement = []
    for kernel in kernels:
        for key in ("measured", "measured_std", "fits", "theory", "coefficients"):
            out[f"{key}_{kernel}"] = np.array([run[key][kernel] for run in runs])
        for i, d in enumerate(sphere_dims):
            mean, theory = out[f"measured_{kernel}"][i], out[f"theory_{kernel}"][i]
            tables[f"{kernel}_d{d}_test_error"] = [
                {"N": n, **{f"{label} {what}": float(v) for c, label in enumerate(labels)
                            for what, v in (("measured", mean[c, s]), ("theory", theory[c, s]))}}
                for s, n in enumerate(n_trains)]
            for c, label in enumerate(labels):
                ratio = mean[c] / theory[c]
                agreement.append({"d": d, "kernel": kernel, "network": label,
                                  "median |measured / theory - 1|": float(np.median(np.abs(ratio - 1))),
                                  "max |measured / theory - 1|": float(np.max(np.abs(ratio - 1))),
                                  "N of the max": int(n_trains[int(np.argmax(np.abs(ratio - 1)))])})
    tables["agreement"] = agreement
    out["tables"] = tables
    out["labels"] = {"curves": labels, "kernels": kernels, "n_trains": n_trains, "sphere_dims": sphere_dims,
                     "noise_floor": noise**2}
    return out


def _one_dimension(d: int, archs: list[tuple[str, Any]], *, n_trains: list[int], kernels: list[str],
                   target_degrees: list[int], target_powers: list[float], noise: float, ridge: float, draws: int,
                   n_test: int, k_max: int, seed: int, step: Steps) -> dict[str, dict[str, np.ndarray]]:
    """The measured and predicted curves on S^(d-1): {"measured": {kernel: (curves, S)}, ...}."""
    from engine.analytic import analytic_kernels
    from engine.regression import gram_regression
    from engine.sphere import multiplicities, sphere_spectrum

    n_max = max(n_trains)
    mult = multiplicities(d, k_max)
    powers = np.zeros(k_max + 1)
    for k, p in zip(target_degrees, target_powers, strict=True):
        powers[k] += p
    shape = (len(archs), len(n_trains))
    measured: dict[str, list[list[list[float]]]] = {k: [[[] for _ in n_trains] for _ in archs] for k in kernels}
    theory = {k: np.zeros(shape) for k in kernels}
    coefficients = {k: np.zeros((len(archs), k_max + 1)) for k in kernels}
    for c, (label, arch) in enumerate(archs):
        for kernel in kernels:
            spectrum = sphere_spectrum(arch, d, k_max, kernel=kernel)
            peak = float(analytic_kernels(np.eye(1, d), arch=arch, kernels=(kernel,))[kernel][0, 0])
            lam = spectrum["coefficients"] / peak
            coefficients[kernel][c] = lam
            theory[kernel][c] = [theory_error(lam, mult, n, ridge, powers, noise) for n in n_trains]
        step(f"d={d} {label}: theory")
        for r in range(draws):
            rng = np.random.default_rng([seed, d, r])
            poles = sphere_sample(len(target_degrees), d, rng)
            x, x_test = sphere_sample(n_max, d, rng), sphere_sample(n_test, d, rng)
            y = target(x, target_degrees, target_powers, poles) + noise * rng.standard_normal(n_max)
            f_test = target(x_test, target_degrees, target_powers, poles)
            grams = analytic_kernels(x, arch=arch, kernels=tuple(kernels))
            cross = analytic_kernels(x_test, x, arch=arch, kernels=tuple(kernels))
            for kernel in kernels:
                for s, n in enumerate(n_trains):
                    for b in range(min(n_max // n, BLOCKS)):  # disjoint blocks: independent training sets
                        part = slice(b * n, (b + 1) * n)
                        fit = gram_regression(grams[kernel][part, part], cross[kernel][:, part], y[part],
                                              ridge=ridge)
                        measured[kernel][c][s].append(float(np.mean((fit.mean - f_test) ** 2)))
            step(f"d={d} {label}: draw {r + 1}/{draws}")
    return {"measured": {k: np.array([[np.mean(e) for e in row] for row in v]) for k, v in measured.items()},
            "measured_std": {k: np.array([[np.std(e) for e in row] for row in v]) for k, v in measured.items()},
            "fits": {k: np.array([[len(e) for e in row] for row in v], dtype=float) for k, v in measured.items()},
            "theory": theory, "coefficients": coefficients}


DECLARED = {
    "n_trains": P.Parameter("int", "Training set sizes N.", minimum=1, maximum=16384, list=True, max_items=16,
                            unique=True),
    "depth": P.DEPTH,
    "alphas": P.Parameter("float", "Residual-branch scales alpha of the compared ResNets (none: the MLP alone).",
                          minimum=0, maximum=100, list=True, min_items=0, max_items=4, unique=True),
    "kernels": P.Parameter("str", "Kernels.", choices=("ntk", "nngp"), list=True, max_items=2, unique=True),
    "sphere_dims": P.Parameter("int", "Dimensions d: inputs uniform on S^(d-1) of R^d.", minimum=2, maximum=64,
                               list=True, max_items=4, unique=True),
    "target_degrees": P.Parameter("int", "Degrees k of the target's harmonics.", minimum=0, maximum=64, list=True,
                                  max_items=8, unique=True),
    "target_powers": P.Parameter("float", "Power p_k (squared norm) of each target degree.", minimum=0,
                                 maximum=1e6, list=True, max_items=8),
    "noise": P.Parameter("float", "Label noise standard deviation sigma.", minimum=0, maximum=1e3),
    "ridge": P.RIDGE,
    "draws": P.Parameter("int", "Training sets per N (the measured curve is their mean).", minimum=1, maximum=200),
    "n_test": P.Parameter("int", "Test points per draw.", minimum=1, maximum=65536),
    "k_max": P.Parameter("int", "Highest degree of the spectrum in the theory.", minimum=4, maximum=2048),
    "activation": P.Parameter("str", "Activation of every network.", choices=(
        "relu", "erf", "linear", "tanh", "gelu", "softplus", "sigmoid")),
    "seed": P.SEED,
}


def _rules(p: dict[str, Any]) -> None:
    same_length("target_degrees", "target_powers")(p)
    if max(p["target_degrees"]) > p["k_max"]:
        raise ParameterError(f"target_degrees must be <= k_max ({p['k_max']}), got {p['target_degrees']}",
                             "target_degrees")


def cost(p: dict[str, Any]) -> dict[str, int]:
    curves = (1 + len(p["alphas"])) * len(p["sphere_dims"])
    n = max(p["n_trains"])
    entries = n * (n + 1) // 2 + p["n_test"] * n
    return {"kernel_entry_layers": curves * p["draws"] * len(p["kernels"]) * entries * p["depth"],
            "training_weight_steps": 0,
            "output_bytes": BYTES * (len(p["n_trains"]) * (1 + 4 * curves * len(p["kernels"]))
                                     + curves * len(p["kernels"]) * (p["k_max"] + 1))}


EXPERIMENT = Experiment(
    "learning-curves", "Learning curves on the sphere: measured against the spectral theory (Bordelon et al. 2020)",
    learning_curves, DECLARED,
    {"n_trains": [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096], "depth": 5, "alphas": [1.0, 0.1],
     "kernels": ["ntk", "nngp"], "sphere_dims": [3, 10], "target_degrees": [1, 2, 4], "target_powers": [1.0, 1.0, 1.0],
     "noise": 0.1, "ridge": 1e-6, "draws": 3, "n_test": 1000, "k_max": 256, "activation": "relu", "seed": 0},
    cost, paper={"n_trains": [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192], "draws": 10,
                 "n_test": 4000, "k_max": 1024}, rules=_rules)
