"""Kernel regression against direct linear algebra (numpy inverse, scipy expm)."""

import numpy as np
import pytest
import scipy.linalg

from engine import Architecture, analytic_diagonal, analytic_kernels, gram_regression, kernel_regression

ARCH = Architecture("resnet", 4, alpha=0.5, sigma_b=0.1)


def data(n=8, m=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.normal(size=n), rng.normal(size=(m, 3))


def test_interpolant_fits_training_data_and_matches_direct_solve():
    x, y, x_test = data()
    fit = kernel_regression(x, y, x, arch=ARCH, ridge=0.0)
    np.testing.assert_allclose(fit.mean, y, atol=1e-9)
    k = analytic_kernels(x, arch=ARCH)["ntk"]
    k_test = analytic_kernels(x_test, x, arch=ARCH)["ntk"]
    got = kernel_regression(x, y, x_test, arch=ARCH, ridge=1e-3).mean
    np.testing.assert_allclose(got, k_test @ np.linalg.inv(k + 1e-3 * np.eye(len(x))) @ y, rtol=1e-10)


def test_finite_time_against_matrix_exponential():
    x, y, x_test = data()
    k = analytic_kernels(x, arch=ARCH)["ntk"]
    k_test = analytic_kernels(x_test, x, arch=ARCH)["ntk"]
    for t in (0.0, 0.05, 1.0, 30.0):
        expected = k_test @ np.linalg.solve(k, (np.eye(len(x)) - scipy.linalg.expm(-k * t)) @ y)
        got = kernel_regression(x, y, x_test, arch=ARCH, ridge=0.0, t=t).mean
        np.testing.assert_allclose(got, expected, atol=1e-9 * np.abs(expected).max() + 1e-14)
    late = kernel_regression(x, y, x_test, arch=ARCH, ridge=0.0, t=1e6).mean
    np.testing.assert_allclose(late, kernel_regression(x, y, x_test, arch=ARCH, ridge=0.0).mean, rtol=1e-8)


def test_gp_posterior_variance():
    x, y, x_test = data()
    nngp = Architecture("mlp", 3, sigma_b=0.2)
    k = analytic_kernels(x, arch=nngp)["nngp"]
    k_test = analytic_kernels(x_test, x, arch=nngp)["nngp"]
    k_diag = analytic_diagonal(x_test, arch=nngp)["nngp"]
    got = kernel_regression(x, y, x_test, arch=nngp, kernel="nngp", ridge=1e-2, return_variance=True)
    inverse = np.linalg.inv(k + 1e-2 * np.eye(len(x)))
    np.testing.assert_allclose(got.variance, k_diag - np.einsum("ij,jk,ik->i", k_test, inverse, k_test), rtol=1e-9)
    at_train = kernel_regression(x, y, x, arch=nngp, kernel="nngp", ridge=1e-10, return_variance=True)
    assert np.all(at_train.variance >= 0) and np.all(at_train.variance < 1e-6)
    with pytest.raises(ValueError, match="nngp"):
        kernel_regression(x, y, x_test, arch=nngp, kernel="ntk", return_variance=True)


def test_duplicates_and_multiple_outputs():
    x, y, _ = data()
    x_dup, y2 = np.vstack([x, x[:2]]), np.stack([np.concatenate([y, y[:2]])] * 2, axis=1)
    fit = kernel_regression(x_dup, y2, x, arch=ARCH, ridge=1e-10)
    assert fit.mean.shape == (len(x), 2)
    np.testing.assert_allclose(fit.mean[:, 0], y, atol=1e-5)


def test_not_positive_definite_is_a_clear_error():
    gram = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not positive definite"):
        gram_regression(gram, np.ones((1, 2)), np.ones(2), ridge=0.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"y_train": np.ones(3)}, "shapes"),
    ({"y_train": np.array([1.0, np.nan])}, "y_train"),
    ({"ridge": -1.0}, "ridge"),
    ({"t": -2.0}, "t must"),
    ({"k_train": np.ones((2, 3))}, "k_train"),
])
def test_bad_regression_inputs(kwargs, match):
    args = {"k_train": np.eye(2), "k_test_train": np.ones((1, 2)), "y_train": np.ones(2), **kwargs}
    with pytest.raises(ValueError, match=match):
        gram_regression(args.pop("k_train"), args.pop("k_test_train"), args.pop("y_train"), **args)
