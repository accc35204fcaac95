"""NNGP against NTK interpolants: the paper's mu (eq. 22) and the seed slides' RKHS ratio of both
kernels' interpolants, side by side, over alpha and depth, for the MLP and ResNets.

Domains. The circle: the paper's m equispaced angles of 0.5 cos b + sin 4b, mu (eq. 22) on the
uniform grid of n_grid angles and the Gaussian-RKHS ratio in the angle (`engine.smoothness`, as
/v1/smoothness). The spheres S^(d-1), d >= 3: n points uniform (normalised Gaussians, seed
[seed, d]) of the target

    f*(x) = 0.5 x_1 + P_{k,d}(x_2) + kink |x_3|,

P_{k,d} the Gegenbauer polynomial with P_{k,d}(1) = 1 (a zonal harmonic of degree k; on the circle
P_{4,2}(cos b) = cos 4b, the paper's sin 4b turned), and |x_3| a kink along the great sphere x_3 = 0
(f* has no finite curvature). The measures are those of
`engine.sphere_smoothness.sphere_interpolation` (as /v1/smoothness with points and measure both):
the curvature ||Delta f|| / ||f|| on the harmonics of the Gauss product grid of `sphere_grid` points
on S^2 (degrees <= n_lat - 1: a truncation, with aliasing of the higher degrees), and for d > 3 the
exact harmonic sum to the degree K it answers (at most 511: n_grid = SPECTRAL_GRID there); the
RKHS ratio of the heat kernel exp(-t k (k + d - 2)), t = sphere_bandwidth^2 / 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.architectures import Architecture
from engine.experiments import parameters as P
from engine.experiments.common import ALPHAS, BYTES, Progress, Steps, architectures
from engine.experiments.registry import Experiment, ParameterError

KERNELS = ("ntk", "nngp")
SPECTRAL_GRID = 1024  # d > 3: the n_grid whose spectral curvature reaches the engine's top degree 511
MIN_WEIGHT = 1e-12  # the heat RKHS's automatic cut-off (engine.sphere_smoothness.MIN_WEIGHT)
HEAT_OVERSAMPLING = 2  # the heat RKHS must hold at least this many harmonics per sample (else no interpolant)
Fit = Callable[[Architecture, str], tuple[float, float, int, int]]  # (net, kernel) -> mu, mu_rkhs, degree, cutoff


def sphere_target(x: np.ndarray, degree: int, kink: float) -> np.ndarray:
    """f*(x) = 0.5 x_1 + P_{degree,d}(x_2) + kink |x_3| (module docstring): (n, d) -> (n,), d >= 3."""
    from engine.sphere import gegenbauer

    return 0.5 * x[:, 0] + gegenbauer(degree, x.shape[1], x[:, 1])[degree] + kink * np.abs(x[:, 2])


def sphere_sample(n: int, d: int, seed: int) -> np.ndarray:
    """(n, d) points uniform on S^(d-1): normalised Gaussians of the generator [seed, d]."""
    x = np.random.default_rng([seed, d]).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def grid_of(d: int, sphere_grid: int) -> int:
    """The n_grid of `sphere_interpolation` on S^(d-1): sphere_grid on S^2, SPECTRAL_GRID beyond."""
    return sphere_grid if d == 3 else SPECTRAL_GRID


def heat_harmonics(d: int, bandwidth: float, n_grid: int) -> tuple[int, int]:
    """(cutoff c, harmonics sum_{k <= c} N(d, k)) of the heat RKHS on S^(d-1): the automatic cut-off of
    `engine.sphere_smoothness.heat_cutoff` (mirrored without JAX; a test checks), limit n_grid / 2 - 1."""
    from engine.sphere import multiplicities

    x = -2 * math.log(MIN_WEIGHT) / (bandwidth * bandwidth)
    top = (math.sqrt((d - 2) ** 2 + 4 * x) - (d - 2)) / 2
    c = max(1, min(math.floor(top), n_grid // 2 - 1))
    return c, int(multiplicities(d, c).sum())


def nngp_vs_ntk(*, depths: list[int], alphas: list[float], n_trains: list[int], n_grid: int, ridge: float,
                bandwidth: float, sphere_dims: list[int], n_points: int, sphere_grid: int, sphere_bandwidth: float,
                target_degree: int, kink: float, seed: int, progress: Progress | None = None) -> dict[str, Any]:
    """mu (eq. 22, smaller = smoother) and the RKHS ratio (larger = smoother) of NNGP and NTK interpolants
    side by side, over alpha and depth, MLP and ResNets: on the circle with the paper's samples, and on
    S^(d-1) with n_points samples of 0.5 x_1 + P_k(x_2) + kink |x_3|. Arrays: mu_curvature, mu_rkhs and
    degree (domains, depths, curves, kernels [ntk, nngp]): degree is the highest harmonic the curvature
    sums; rkhs_cutoff (domains,)."""
    from engine.smoothness import circle_interpolation, mu_rkhs
    from engine.sphere import multiplicities
    from engine.sphere_smoothness import sphere_interpolation

    curves = [label for label, _ in architectures(depths[0], alphas)]
    names = [f"circle, m = {m}" for m in n_trains] + [f"S^{d - 1}, n = {n_points}" for d in sphere_dims]
    shape = (len(names), len(depths), len(curves), len(KERNELS))
    curvature, rkhs, degree = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    cutoff, harmonics = np.zeros(len(names)), [0] * len(names)
    step = Steps(math.prod(shape[:3]), progress)

    def circle(m: int) -> Fit:
        def fit(arch: Architecture, kernel: str) -> tuple[float, float, int, int]:
            f = circle_interpolation(arch, m, kernel=kernel, ridge=ridge, n_grid=n_grid)
            r = mu_rkhs(f["interpolant"], f["train_angles"], f["train_values"], bandwidth=bandwidth)
            return f["mu"], r["mu"], n_grid // 2, int(r["cutoff"])  # eq. 22 sums the FFT's frequencies |k| <= N / 2
        return fit

    def sphere(d: int) -> Fit:
        x = sphere_sample(n_points, d, seed)
        y = sphere_target(x, target_degree, kink)

        def fit(arch: Architecture, kernel: str) -> tuple[float, float, int, int]:
            f = sphere_interpolation(arch, x, y, kernel=kernel, ridge=ridge, n_grid=grid_of(d, sphere_grid),
                                     curvature=True, rkhs=True, bandwidth=sphere_bandwidth)
            return f["mu"], f["rkhs"]["mu"], f["degree"], f["rkhs"]["cutoff"]
        return fit

    domains = [(2, circle(m)) for m in n_trains] + [(d, sphere(d)) for d in sphere_dims]
    rows = []
    for i, (name, (d, fit)) in enumerate(zip(names, domains, strict=True)):
        for j, depth in enumerate(depths):
            for c, (label, arch) in enumerate(architectures(depth, alphas)):
                for k, kernel in enumerate(KERNELS):
                    curvature[i, j, c, k], rkhs[i, j, c, k], degree[i, j, c, k], cutoff[i] = fit(arch, kernel)
                rows.append({"domain": name, "L": depth, "network": label,
                             **{f"mu {k.upper()}": float(curvature[i, j, c, n]) for n, k in enumerate(KERNELS)},
                             **{f"mu_rkhs {k.upper()}": float(rkhs[i, j, c, n]) for n, k in enumerate(KERNELS)},
                             "curvature degree NTK / NNGP": "/".join(str(int(v)) for v in degree[i, j, c])})
                step(f"{name} L={depth} {label}")
        # the dimension of the RKHS the ratio's reference interpolant lives in: 2c + 1 Fourier modes on the circle
        harmonics[i] = 2 * int(cutoff[i]) + 1 if d == 2 else int(multiplicities(d, int(cutoff[i])).sum())
    return {"mu_curvature": curvature, "mu_rkhs": rkhs, "degree": degree, "rkhs_cutoff": cutoff,
            "tables": {"mu": rows},
            "labels": {"domains": names, "depths": depths, "curves": curves, "kernels": list(KERNELS),
                       "rkhs_harmonics": harmonics, "samples": list(n_trains) + [n_points] * len(sphere_dims)}}


DECLARED = {
    "depths": P.depths(max_items=4, maximum=100),
    "alphas": P.Parameter("float", "Residual-branch scales alpha of the compared ResNets (none: the MLP alone).",
                          minimum=0, maximum=100, list=True, min_items=0, max_items=6, unique=True),
    "n_trains": P.n_trains(),
    "n_grid": P.N_GRID,
    "ridge": P.RIDGE,
    "bandwidth": P.Parameter("float", "Circle: the Gaussian RKHS's bandwidth (radians).", positive=True, maximum=7),
    "sphere_dims": P.Parameter("int", "Dimensions d: samples on S^(d-1) of R^d (d >= 3: the target uses x_3).",
                               minimum=3, maximum=64, list=True, min_items=0, max_items=3, unique=True),
    "n_points": P.Parameter("int", "Samples on each sphere.", minimum=2, maximum=4096),
    "sphere_grid": P.Parameter("int", "S^2: points of the Gauss product grid the curvature is measured on "
                               "(degrees < sqrt(sphere_grid / 2)).", minimum=8, maximum=131072, even=True),
    "sphere_bandwidth": P.Parameter("float", "Spheres: the heat RKHS's bandwidth (radians); it must keep at least "
                                    f"{HEAT_OVERSAMPLING} harmonics per sample.", positive=True, maximum=7),
    "target_degree": P.Parameter("int", "Degree k of the target's harmonic P_k(x_2).", minimum=0, maximum=64),
    "kink": P.Parameter("float", "Weight of the target's kink |x_3|.", minimum=0, maximum=100),
    "seed": P.SEED,
}


def _rules(p: dict[str, Any]) -> None:
    """Each RKHS must hold HEAT_OVERSAMPLING harmonics per sample: with fewer, its minimum-norm
    interpolant of the samples is ill-conditioned or does not exist (a least-squares fit instead)."""
    # engine.smoothness.mu_rkhs's automatic cut-off: 2c + 1 Fourier modes
    c = min(math.floor(math.sqrt(-2 * math.log(MIN_WEIGHT)) / p["bandwidth"]), p["n_grid"] // 2 - 1)
    if 2 * c + 1 < HEAT_OVERSAMPLING * max(p["n_trains"]):
        raise ParameterError(f"bandwidth {p['bandwidth']:g} keeps the Gaussian RKHS on the circle to {2 * c + 1} "
                             f"Fourier modes, fewer than {HEAT_OVERSAMPLING} x max(n_trains) = "
                             f"{HEAT_OVERSAMPLING * max(p['n_trains'])}: lower bandwidth", "bandwidth")
    for d in p["sphere_dims"]:
        c, count = heat_harmonics(d, p["sphere_bandwidth"], grid_of(d, p["sphere_grid"]))
        if count < HEAT_OVERSAMPLING * p["n_points"]:
            raise ParameterError(f"sphere_bandwidth {p['sphere_bandwidth']:g} keeps the heat RKHS to degree {c} on "
                                 f"S^{d - 1}, {count} harmonics, fewer than {HEAT_OVERSAMPLING} x n_points = "
                                 f"{HEAT_OVERSAMPLING * p['n_points']}: lower sphere_bandwidth (or n_points, or "
                                 "raise sphere_grid)", "sphere_bandwidth")


def cost(p: dict[str, Any]) -> dict[str, int]:
    curves = (len(p["alphas"]) + 1) * len(KERNELS)
    entries = sum(m * (m + p["n_grid"]) for m in p["n_trains"])
    for d in p["sphere_dims"]:
        g = grid_of(d, p["sphere_grid"])
        grid = 2 * max(2, math.isqrt(g // 2)) ** 2 if d == 3 else g  # engine.sphere_sets.sphere_grid's points
        nodes = 2 * (511 + d) + 512  # at most engine.sphere.nodes_for's, for each of the measures' three rules
        entries += p["n_points"] * (p["n_points"] + grid) + 3 * nodes
    domains = len(p["n_trains"]) + len(p["sphere_dims"])
    return {"kernel_entry_layers": curves * entries * sum(p["depths"]), "training_weight_steps": 0,
            "output_bytes": BYTES * domains * (3 * len(p["depths"]) * curves + 1)}


EXPERIMENT = Experiment(
    "nngp-vs-ntk", "NNGP against NTK interpolants: mu and the RKHS ratio on the circle, S^2 and S^9", nngp_vs_ntk,
    DECLARED, {"depths": [5, 15], "alphas": ALPHAS, "n_trains": [6, 10], "n_grid": 4096, "ridge": 1e-10,
               "bandwidth": 0.5, "sphere_dims": [3, 10], "n_points": 256, "sphere_grid": 8192,
               "sphere_bandwidth": 0.3, "target_degree": 4, "kink": 0.5, "seed": 0},
    cost, paper={"n_points": 1024, "sphere_grid": 32768, "sphere_bandwidth": 0.15}, rules=_rules)
