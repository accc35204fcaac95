"""Nystrom regression (engine.nystrom) against independent references: the exact solve when every
training point is a centre, the Nystrom normal equations and the DTC variance solved densely with
numpy from the analytic kernels (no conjugate gradient, no preconditioner), and the error falling
as centres are added."""

import numpy as np
import pytest

from engine import Architecture, Cancelled, analytic_diagonal, analytic_kernels, kernel_regression, nystrom_regression

RESNET = Architecture.from_dict({"kind": "resnet", "depth": 5, "alpha": 0.5})
MLP = Architecture.from_dict({"kind": "mlp", "depth": 3, "sigma_b": 0.3})


def sphere(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


X, XT = sphere(300, 6, 0), sphere(40, 6, 1)
Y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]


@pytest.mark.parametrize(("arch", "kernel"), [(RESNET, "nngp"), (MLP, "ntk")])
def test_every_point_a_centre_is_the_exact_solve(arch, kernel):
    y = np.c_[Y, X[:, 3]]  # two target columns, one solve
    x = np.r_[X, X[:5]]  # coincident copies: merged, weighted (the exact solve's multiplicities)
    y = np.r_[y, y[:5]]
    variance = kernel == "nngp"
    exact = kernel_regression(x, y, XT, arch=arch, kernel=kernel, ridge=1e-6, return_variance=variance)
    fit = nystrom_regression(x, y, XT, arch=arch, kernel=kernel, ridge=1e-6, centres=10_000,
                             return_variance=variance)
    assert len(fit.centres) == 300 and fit.iterations <= 5 and fit.residual < 1e-10
    np.testing.assert_allclose(fit.prediction.mean, exact.mean, rtol=0, atol=1e-8 * np.abs(exact.mean).max())
    if variance:
        np.testing.assert_allclose(fit.prediction.variance, exact.variance, rtol=0,
                                   atol=1e-7 * exact.variance.max())


def test_fewer_centres_solve_the_nystrom_equations_and_give_the_dtc_variance():
    """M = 60 of 300: alpha = (K_nM^T K_nM + r K_MM)^-1 K_nM^T y and DTC's k - q + r k_xM Sigma k_Mx, by dense
    numpy solves of the analytic kernels."""
    ridge = 1e-3
    fit = nystrom_regression(X, Y, XT, arch=RESNET, kernel="nngp", ridge=ridge, centres=60, seed=3,
                             return_variance=True)
    c = X[fit.centres]
    k = analytic_kernels(X, arch=RESNET, kernels=("nngp",))["nngp"]
    r = ridge * np.mean(np.diag(k))
    k_nm = analytic_kernels(X, c, arch=RESNET, kernels=("nngp",))["nngp"]
    k_mm = analytic_kernels(c, arch=RESNET, kernels=("nngp",))["nngp"]
    k_tm = analytic_kernels(XT, c, arch=RESNET, kernels=("nngp",))["nngp"]
    h = k_nm.T @ k_nm + r * k_mm
    alpha = np.linalg.solve(h, k_nm.T @ Y)
    np.testing.assert_allclose(fit.prediction.mean, k_tm @ alpha, rtol=1e-7, atol=1e-9)
    diag = analytic_diagonal(XT, arch=RESNET, kernels=("nngp",))["nngp"]
    q = np.einsum("ij,ji->i", k_tm, np.linalg.solve(k_mm, k_tm.T))
    dtc = diag - q + r * np.einsum("ij,ji->i", k_tm, np.linalg.solve(h, k_tm.T))
    np.testing.assert_allclose(fit.prediction.variance, dtc, rtol=1e-6, atol=1e-9 * diag.max())
    exact = kernel_regression(X, Y, XT, arch=RESNET, kernel="nngp", ridge=ridge, return_variance=True)
    assert np.all(fit.prediction.variance >= exact.variance - 1e-9 * diag.max())  # DTC overestimates


def test_the_error_falls_as_centres_are_added():
    exact = kernel_regression(X, Y, XT, arch=RESNET, ridge=1e-4).mean
    errors = [np.sqrt(np.mean((nystrom_regression(X, Y, XT, arch=RESNET, ridge=1e-4, centres=m).prediction.mean
                               - exact) ** 2) / np.mean(exact**2)) for m in (30, 100, 300)]
    assert errors[0] > errors[1] > 1e3 * errors[2] and errors[2] < 1e-8


def test_bad_arguments_and_cancel():
    with pytest.raises(ValueError, match="ridge must be"):
        nystrom_regression(X, Y, XT, arch=RESNET, ridge=0.0)
    with pytest.raises(ValueError, match="centres must be"):
        nystrom_regression(X, Y, XT, arch=RESNET, centres=0)
    with pytest.raises(ValueError, match="return_variance needs"):
        nystrom_regression(X, Y, XT, arch=RESNET, return_variance=True)
    with pytest.raises(Cancelled):
        nystrom_regression(X, Y, XT, arch=RESNET, centres=50, should_stop=lambda: True)
    steps = []
    fit = nystrom_regression(X, Y, XT, arch=RESNET, ridge=1e-8, centres=100, max_iterations=3,
                             report=lambda f, message: steps.append(message))
    assert fit.iterations == 3 and fit.residual > 1e-10  # stopped by max_iterations, and says so
    assert any("conjugate gradient: step 3" in s for s in steps)
