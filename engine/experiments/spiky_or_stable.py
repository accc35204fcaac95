"""Spiky or stable (Belfer, Geifman, Galun & Basri 2021): the width of the kernels' profile on
S^(d-1) against depth, for the MLP and for ResNets whose residual-branch scale alpha is fixed or
falls with depth as alpha = L^(-gamma).

Two measures of one normalised profile p(th) = K(cos th) / K(1), th the angle between x and x':
- half-width: the smallest th at which p falls to (1 + m) / 2, half its way from its peak 1 to its
  minimum m over [0, pi] (pi / 2 for a linear kernel, -> 0 for a kernel that becomes a spike on a
  plateau);
- median degree: the smallest k with sum_{1 <= j <= k} lambda_j N(d, j) >= (1 - lambda_0) / 2, the
  Funk-Hecke eigenvalues of p (`engine.sphere`); 1 - lambda_0 = sum_{j >= 1} lambda_j N(d, j) is the
  non-constant part of p(1) (Mercer at t = 1), so this is the degree below which half of the kernel's
  non-constant power lies (1 for a linear kernel, growing as the kernel becomes spiky).

Both come from the engine's analytic kernels of unit vectors of R^d. For ReLU without biases the
kernels are positively homogeneous, so p, and with it the half-width, does not depend on d; the
median degree does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.architectures import ACTIVATIONS, Architecture
from engine.experiments import parameters as P
from engine.experiments.common import BYTES, Progress, Steps
from engine.experiments.registry import Experiment

FINE = 65  # points of the second, finer grid in the bracket of each crossing and of each minimum


def curves(depth: int, alphas: list[float], gammas: list[float], activation: str = "relu"
           ) -> list[tuple[str, Architecture]]:
    """The compared networks at one depth: the MLP, a ResNet per fixed alpha, a ResNet per
    gamma with alpha = depth^(-gamma) (Belfer et al.'s balance)."""
    return ([("MLP", Architecture("mlp", depth, activation))]
            + [(f"ResNet alpha={a:g}", Architecture("resnet", depth, activation, alpha=a)) for a in alphas]
            + [(f"ResNet alpha=L^-{g:g}", Architecture("resnet", depth, activation, alpha=depth ** -g))
               for g in gammas])


def sphere_points(d: int, t: np.ndarray) -> np.ndarray:
    """(n, d) unit vectors of R^d with x . e_1 = t: (t, sqrt(1 - t^2), 0, ...)."""
    t = np.clip(np.asarray(t, dtype=np.float64).reshape(-1), -1.0, 1.0)
    x = np.zeros((t.size, d))
    x[:, 0], x[:, 1] = t, np.sqrt(1.0 - t * t)
    return x


def profiles(arch: Architecture, d: int, angles: np.ndarray, kernels: list[str]) -> dict[str, np.ndarray]:
    """{kernel: K(cos th) / K(1)} at the angles (n,) -> (n,), one engine call for every kernel."""
    from engine.analytic import analytic_kernels

    anchor = sphere_points(d, np.ones(1))
    row = analytic_kernels(anchor, np.vstack([anchor, sphere_points(d, np.cos(angles))]), arch=arch,
                           kernels=tuple(kernels))
    return {k: row[k][0, 1:] / row[k][0, 0] for k in kernels}


def brackets(angles: np.ndarray, p: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """The grid intervals that hold p's minimum and its first fall to its half level (th, p on a grid
    from 0 to pi): ((lo, hi) of the minimum, (lo, hi) of the crossing)."""
    j = int(np.argmin(p))
    lo_min, hi_min = angles[max(j - 1, 0)], angles[min(j + 1, angles.size - 1)]
    level = 0.5 * (1.0 + p[j])
    i = max(int(np.argmax(p <= level)), 1)
    return (lo_min, hi_min), (angles[i - 1], angles[i])


def half_width(fine_min: np.ndarray, p_min: np.ndarray, fine_cross: np.ndarray, p_cross: np.ndarray,
               coarse_min: float) -> tuple[float, float]:
    """(half-width, minimum) from the fine grids of the two brackets: the minimum is the least value
    seen, or, inside the fine grid, the vertex of the parabola through it and its neighbours; the
    crossing of (1 + minimum) / 2 is interpolated linearly on the fine grid."""
    m = min(float(np.min(p_min)), coarse_min)
    j = int(np.argmin(p_min))
    if 0 < j < p_min.size - 1:  # equispaced: vertex of the parabola through j - 1, j, j + 1
        a, b, c = p_min[j - 1], p_min[j], p_min[j + 1]
        curvature = a - 2 * b + c
        if curvature > 0:
            m = min(m, float(b - (c - a) ** 2 / (8 * curvature)))
    if 1.0 - m < 1e-12:  # a constant profile: it never falls
        return math.pi, m
    level = 0.5 * (1.0 + m)
    i = int(np.argmax(p_cross <= level))
    if i == 0:
        return float(fine_cross[0]), m
    a, b = p_cross[i - 1], p_cross[i]
    return float(fine_cross[i - 1] + (fine_cross[i] - fine_cross[i - 1]) * (a - level) / (a - b)), m


def median_degree(lam: np.ndarray, mult: np.ndarray) -> int:
    """The smallest k >= 1 with sum_{1..k} lambda_j N(d, j) >= (1 - lambda_0) / 2 (lam of a profile
    with p(1) = 1), or k_max + 1 when the degrees up to k_max hold less than that."""
    power = np.cumsum(lam[1:] * mult[1:])
    reached = np.nonzero(power >= 0.5 * (1.0 - lam[0]))[0]
    return int(reached[0]) + 1 if reached.size else int(lam.size)


def spiky_or_stable(*, depths: list[int], alphas: list[float], gammas: list[float], sphere_dim: int, k_max: int,
                    n_angles: int, kernels: list[str], activation: str,
                    progress: Progress | None = None) -> dict[str, Any]:
    """The half-width of the NTK and NNGP profiles on S^(d-1) and the median degree of their
    Funk-Hecke spectra against depth, for the MLP and ResNets over alpha (fixed, or alpha = L^(-gamma)).
    Arrays: depths (D,), angles (A,) on [0, pi], half_width_<kernel> (curves, D) in radians,
    minimum_<kernel> (curves, D): the normalised profile's minimum, median_degree_<kernel> (curves, D)
    (k_max + 1: beyond k_max), profile_<kernel> (curves, A) at the deepest depth, quadrature_error: the
    largest |lambda_k| change against a rule of a quarter more nodes."""
    from engine.sphere import check_rule, gauss_angles, multiplicities, nodes_for, project

    d = sphere_dim
    angles = np.linspace(0.0, math.pi, n_angles)
    n = nodes_for(k_max, d)
    (th, w), (th2, w2) = gauss_angles(n), gauss_angles(check_rule(n))
    first = np.concatenate([angles, th, th2])
    mult = multiplicities(d, k_max)
    labels = [label for label, _ in curves(depths[0], alphas, gammas, activation)]
    shape = (len(labels), len(depths))
    out: dict[str, Any] = {"depths": np.array(depths, dtype=float), "angles": angles}
    width = {k: np.zeros(shape) for k in kernels}
    least = {k: np.zeros(shape) for k in kernels}
    median = {k: np.zeros(shape) for k in kernels}
    deepest = {k: np.zeros((len(labels), n_angles)) for k in kernels}
    error = 0.0
    step = Steps(len(depths) * len(labels), progress)
    for j, depth in enumerate(depths):
        for c, (label, arch) in enumerate(curves(depth, alphas, gammas, activation)):
            values = profiles(arch, d, first, kernels)
            fine: list[np.ndarray] = []
            for kernel in kernels:
                p = values[kernel][:n_angles]
                for lo, hi in brackets(angles, p):
                    fine.append(np.linspace(lo, hi, FINE))
                lam = project(values[kernel][n_angles:n_angles + n], th, w, d, k_max)
                error = max(error, float(np.max(np.abs(lam - project(values[kernel][n_angles + n:], th2, w2, d,
                                                                     k_max)))))
                median[kernel][c, j] = median_degree(lam, mult)
                if j == len(depths) - 1:
                    deepest[kernel][c] = p
            refined = profiles(arch, d, np.concatenate(fine), kernels)
            for i, kernel in enumerate(kernels):
                pf = refined[kernel].reshape(-1, FINE)
                width[kernel][c, j], least[kernel][c, j] = half_width(
                    fine[2 * i], pf[2 * i], fine[2 * i + 1], pf[2 * i + 1], float(np.min(values[kernel][:n_angles])))
            step(f"L={depth} {label}")
    tables: dict[str, list[dict[str, Any]]] = {}
    for kernel in kernels:
        out[f"half_width_{kernel}"], out[f"minimum_{kernel}"] = width[kernel], least[kernel]
        out[f"median_degree_{kernel}"], out[f"profile_{kernel}"] = median[kernel], deepest[kernel]
        tables[f"{kernel}_half_width_deg"] = [
            {"L": depth, **{label: round(math.degrees(width[kernel][c, j]), 4) for c, label in enumerate(labels)}}
            for j, depth in enumerate(depths)]
        tables[f"{kernel}_median_degree"] = [
            {"L": depth, **{label: int(median[kernel][c, j]) if median[kernel][c, j] <= k_max else f"> {k_max}"
                            for c, label in enumerate(labels)}} for j, depth in enumerate(depths)]
    out["quadrature_error"] = np.array([error])
    out["tables"] = tables
    out["labels"] = {"curves": labels, "depths": depths, "kernels": kernels, "sphere_dim": d, "k_max": k_max}
    return out


DECLARED = {
    "depths": P.depths(max_items=16, maximum=800),
    "alphas": P.Parameter("float", "Fixed residual-branch scales alpha of the compared ResNets.", minimum=0,
                          maximum=100, list=True, min_items=0, max_items=8, unique=True),
    "gammas": P.Parameter("float", "Exponents gamma of ResNets with alpha = L^(-gamma) (Belfer et al.'s balance).",
                          minimum=0, maximum=4, list=True, min_items=0, max_items=8, unique=True),
    "sphere_dim": P.Parameter("int", "d: the points lie on the unit sphere S^(d-1) of R^d.", minimum=2, maximum=64),
    "k_max": P.Parameter("int", "The highest Funk-Hecke degree computed.", minimum=4, maximum=2048),
    "n_angles": P.Parameter("int", "Angles of the grid on [0, pi] (each crossing is refined on a finer grid).",
                            minimum=9, maximum=65536),
    "kernels": P.Parameter("str", "Kernels measured.", choices=("ntk", "nngp"), list=True, max_items=2, unique=True),
    "activation": P.Parameter("str", "Activation of every network.", choices=ACTIVATIONS),
}


def points(p: dict[str, Any]) -> int:
    """Kernel entries per network and depth: the grid, both Gauss rules, the refinements."""
    from engine.sphere import check_rule, nodes_for

    n = nodes_for(p["k_max"], p["sphere_dim"])
    return p["n_angles"] + n + check_rule(n) + 2 + 2 * FINE * len(p["kernels"])


def cost(p: dict[str, Any]) -> dict[str, int]:
    networks = 1 + len(p["alphas"]) + len(p["gammas"])
    n = len(p["kernels"])
    return {"kernel_entry_layers": 2 * networks * points(p) * sum(p["depths"]), "training_weight_steps": 0,
            "output_bytes": BYTES * (len(p["depths"]) + p["n_angles"] + 1
                                     + n * networks * (3 * len(p["depths"]) + p["n_angles"]))}


EXPERIMENT = Experiment(
    "spiky-or-stable", "Spiky or stable: kernel half-width on the sphere against depth (Belfer et al. 2021)",
    spiky_or_stable, DECLARED,
    {"depths": [1, 2, 3, 5, 8, 12, 20, 30, 50, 100, 200, 400], "alphas": [1.0, 0.5, 0.1], "gammas": [0.25, 0.5, 1.0],
     "sphere_dim": 3, "k_max": 256, "n_angles": 1025, "kernels": ["ntk", "nngp"], "activation": "relu"}, cost,
    paper={"depths": [1, 2, 3, 5, 8, 12, 20, 30, 50, 100, 200, 400, 800], "k_max": 1024, "n_angles": 4097})
