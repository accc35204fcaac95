"""Numbers against references computed another way: regression with a ridge at time t
(scipy's expm), mu of functions with a mean (hand-derived), the RKHS ratio (the periodic
Gaussian by Poisson summation), the quadrature's Tdot (scipy's adaptive quadrature), the
lr bound (eigenvalues of neural-tangents' NTK) and the Jacobian bounds (root finding, the
published thresholds, and measured Jacobians)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from scipy import optimize
from test_dual import scipy_dual

from engine import (
    Architecture,
    analytic_kernels,
    circle_grid,
    init_params,
    input_jacobian_norms,
    jacobian_bounds,
    kernel_regression,
    lr_bound,
    mu_curvature,
    mu_rkhs,
)
from engine import dual as dual_module

GRID = circle_grid(512)


def test_regression_with_a_ridge_at_time_t_against_expm():
    # Documented convention (engine.regression): the ridge is relative, r = ridge x mean(diag K) is
    # added to the training Gram matrix's diagonal, A = K + r I, and f_t = k^T A^-1 (I - exp(-A t)) y.
    ridge = 0.3
    rng = np.random.default_rng(4)
    x, y, x_test = rng.normal(size=(7, 3)), rng.normal(size=7), rng.normal(size=(4, 3))
    arch = Architecture("resnet", 3, alpha=0.6, sigma_b=0.2)
    k = analytic_kernels(x, arch=arch, kernels=("ntk",))["ntk"]
    k_test = analytic_kernels(x_test, x, arch=arch, kernels=("ntk",))["ntk"]
    a = k + ridge * np.mean(np.diag(k)) * np.eye(len(x))
    for t in (0.4, 3.0):
        expected = k_test @ np.linalg.solve(a, (np.eye(len(x)) - scipy.linalg.expm(-a * t)) @ y)
        got = kernel_regression(x, y, x_test, arch=arch, ridge=ridge, t=t).mean
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize(("values", "expected"), [
    # 1 + cos b: rms^2 = 1 + 1/2, (f'')^2 averages 1/2, so mu = sqrt(0.5 / 1.5)
    (1.0 + np.cos(GRID), 1 / math.sqrt(3)),
    # 2 + sin 3b: rms^2 = 4 + 1/2, (f'')^2 averages 81/2, so mu = 3
    (2.0 + np.sin(3 * GRID), 3.0),
    # -3 + cos b - 0.5 sin 2b: rms^2 = 9 + 1/2 + 1/8, (f'')^2 averages 1/2 + 16/8
    (-3.0 + np.cos(GRID) - 0.5 * np.sin(2 * GRID), math.sqrt(2.5 / 9.625)),
])
def test_mu_of_functions_with_a_mean(values, expected):
    assert mu_curvature(values) == pytest.approx(expected, rel=1e-12)


def periodic_gaussian(d, bandwidth):
    """sum over all k of exp(-bandwidth^2 k^2 / 2) cos(k d), by Poisson summation:
    sqrt(2 pi) / bandwidth * sum_m exp(-(d - 2 pi m)^2 / (2 bandwidth^2))."""
    m = np.arange(-6, 7)
    shifted = np.asarray(d)[..., None] - 2 * np.pi * m
    return math.sqrt(2 * math.pi) / bandwidth * np.exp(-(shifted**2) / (2 * bandwidth**2)).sum(-1)


def test_mu_rkhs_against_the_periodic_gaussian():
    bandwidth = 0.5
    angles, values = np.array([-2.6, -1.1, 0.3, 1.7]), np.array([0.4, -1.0, 0.8, 0.1])
    gram = periodic_gaussian(np.subtract.outer(angles, angles), bandwidth)
    weights = np.linalg.solve(gram, values)
    norm_gauss = math.sqrt(values @ weights)  # the minimum-norm interpolant's RKHS norm
    # f = 0.2 + cos b + 0.5 sin 2b: ||f||^2 = sum |c_k|^2 / g_k with g_k = exp(-bandwidth^2 k^2 / 2)
    f = 0.2 + np.cos(GRID) + 0.5 * np.sin(2 * GRID)
    norm_f = math.sqrt(0.04 + 2 * 0.25 * math.exp(bandwidth**2 / 2) + 2 * 0.0625 * math.exp(4 * bandwidth**2 / 2))
    got = mu_rkhs(f, angles, values, bandwidth=bandwidth)
    assert got["norm_f"] == pytest.approx(norm_f, rel=1e-10)
    assert got["norm_gauss"] == pytest.approx(norm_gauss, rel=1e-9)
    assert got["mu"] == pytest.approx(norm_gauss / norm_f, rel=1e-9)
    # the Gaussian interpolant itself is the smoothest interpolant: mu = 1
    interpolant = periodic_gaussian(np.subtract.outer(GRID, angles), bandwidth) @ weights
    assert mu_rkhs(interpolant, angles, values, bandwidth=bandwidth)["mu"] == pytest.approx(1.0, rel=1e-9)


def _sigmoid(u):
    return 0.5 * (1 + math.tanh(0.5 * u))


DERIVATIVES = {  # phi' written from the definitions, independently of engine.dual
    "tanh": lambda u: 1 - math.tanh(u) ** 2,
    "sigmoid": lambda u: _sigmoid(u) * (1 - _sigmoid(u)),
    "softplus": _sigmoid,
    "gelu": lambda u: 0.5 * (1 + math.erf(u / math.sqrt(2))) + u * math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi),
}


@pytest.mark.parametrize("activation", sorted(DERIVATIVES))
def test_quadrature_tdot_against_scipy(activation):
    for s11, s12, s22 in [(1.0, 0.3, 0.7), (2.5, -1.9, 2.0)]:
        _, tdot = dual_module.dual(activation, np.array(s11), np.array(s12), np.array(s22))
        assert abs(float(tdot) - scipy_dual(DERIVATIVES[activation], s11, s12, s22)) < 1e-8


REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "kernels_neural_tangents_extra.json").read_text())["cases"]


@pytest.mark.parametrize("name", ["resnet-relu-L3-b0.4-circle", "mlp-erf-L2-b0.3-circle"])
def test_lr_bound_from_the_reference_ntk(name):
    case = next(c for c in REFERENCE if c["name"] == name)
    x = np.array(case["x1"])
    keep = np.unique(x.round(12), axis=0, return_index=True)[1]  # distinct points: a non-singular Gram
    eig = np.linalg.eigvalsh(np.array(case["ntk"])[np.ix_(keep, keep)])
    bound = lr_bound(Architecture.from_dict(case["architecture"]), x[keep])
    # GD on the linearised model contracts by max |1 - lr lambda|: the bound is the step that
    # minimises it, found here by a scalar minimisation instead of the formula
    radius = lambda lr: np.max(np.abs(1 - lr * eig))  # noqa: E731
    best = optimize.minimize_scalar(radius, bounds=(0, 4 / eig[-1]), method="bounded", options={"xatol": 1e-12})
    assert bound == pytest.approx(best.x, rel=1e-6)
    assert radius(bound) < 1


@pytest.mark.parametrize(("depth", "published"), [(5, 0.157), (600, 2 / 9)])
def test_alpha_threshold_published_values(depth, published):
    # kernels.md section 5: L = 5 gives alpha <= 0.157; L -> infinity gives 2/9 (L = 600 is
    # within 7e-4 of it; the engine refuses depths whose bounds pass 1e300, B_mlp from L = 627 on)
    threshold = jacobian_bounds(Architecture("resnet", depth, alpha=0.0), width=100, input_dim=2)["alpha_threshold"]
    assert threshold == pytest.approx(published, abs=1e-3)


def test_alpha_threshold_is_where_the_bounds_cross():
    arch = Architecture("resnet", 4, sigma_w=1.3, sigma_v=0.7)

    def ratio(alpha):
        return jacobian_bounds(arch.replace(alpha=alpha), 64, 3, c_phi=1.5)["ratio_to_mlp"] - 1

    root = optimize.brentq(ratio, 0.0, 10.0, xtol=1e-14)
    assert jacobian_bounds(arch, 64, 3, c_phi=1.5)["alpha_threshold"] == pytest.approx(root, rel=1e-10)


@pytest.mark.parametrize("arch", [Architecture("resnet", 3, alpha=0.5), Architecture("mlp", 3, sigma_w=1.2)], ids=str)
def test_bounds_bound_measured_jacobians(arch):
    x = np.random.default_rng(0).normal(size=(16, 2))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    bound = jacobian_bounds(arch, 64, 2)["bound"]
    for seed in range(3):
        measured = input_jacobian_norms(arch, init_params(arch, 64, 2, seed), x).max()
        assert 0 < measured < bound
