"""Kernel regression against direct linear algebra (numpy inverse, scipy expm), coincident
points against the same solves on the duplicated set, deep kernels against a hand-written
recursion solved in 40-digit arithmetic (mpmath)."""

import numpy as np
import pytest
import scipy.linalg

from engine import Architecture, analytic_diagonal, analytic_kernels, gram_regression, kernel_regression
from engine.regression import merge_coincident

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
    noise = 1e-3 * np.mean(np.diag(k))  # the ridge is relative to the mean diagonal
    np.testing.assert_allclose(got, k_test @ np.linalg.inv(k + noise * np.eye(len(x))) @ y, rtol=1e-10)


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
    inverse = np.linalg.inv(k + 1e-2 * np.mean(np.diag(k)) * np.eye(len(x)))
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


def test_coincident_points_are_merged_exactly():
    """c copies of a point = c observations: the same GP posterior and GD mean as solving
    the duplicated set directly (numpy), with the merged noise ridge x s."""
    x, y, x_test = data()
    x_dup, y_dup = np.vstack([x, x[:2], x[:1]]), np.concatenate([y, y[:2], y[:1]])
    nngp = Architecture("mlp", 3, sigma_b=0.2)
    k = analytic_kernels(x_dup, arch=nngp)["nngp"]
    k_test = analytic_kernels(x_test, x_dup, arch=nngp)["nngp"]
    noise = 1e-2 * np.mean(np.diag(k)[:len(x)])  # relative to the distinct points' mean diagonal
    inverse = np.linalg.inv(k + noise * np.eye(len(x_dup)))
    got = kernel_regression(x_dup, y_dup, x_test, arch=nngp, kernel="nngp", ridge=1e-2, return_variance=True)
    np.testing.assert_allclose(got.mean, k_test @ inverse @ y_dup, rtol=1e-9)
    k_diag = analytic_diagonal(x_test, arch=nngp)["nngp"]
    np.testing.assert_allclose(got.variance, k_diag - np.einsum("ij,jk,ik->i", k_test, inverse, k_test), rtol=1e-9)
    t = 0.7
    theta = analytic_kernels(x_dup, arch=ARCH)["ntk"]
    theta_test = analytic_kernels(x_test, x_dup, arch=ARCH)["ntk"]
    n = len(x_dup)  # integral_0^t exp(-Theta s) ds (Theta singular here) from one block exponential (Van Loan)
    block = scipy.linalg.expm(np.block([[-theta, np.eye(n)], [np.zeros((n, n)), np.zeros((n, n))]]) * t)
    expected = theta_test @ block[:n, n:] @ y_dup
    got = kernel_regression(x_dup, y_dup, x_test, arch=ARCH, ridge=0.0, t=t).mean
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    # the interpolant through the duplicated set is the one through the distinct points
    np.testing.assert_allclose(kernel_regression(x_dup, y_dup, x_test, arch=ARCH, ridge=0.0).mean,
                               kernel_regression(x, y, x_test, arch=ARCH, ridge=0.0).mean, rtol=1e-10)


def test_coincident_points_with_different_targets_are_named():
    x, y, x_test = data()
    x_bad = np.vstack([x, x[3] * (1 + 1e-14)])
    with pytest.raises(ValueError, match=r"training points \[3, 8\] coincide but have different targets"):
        kernel_regression(x_bad, np.append(y, y[3] + 1.0), x_test, arch=ARCH)
    merged = merge_coincident(x_bad, np.append(y, y[3]))
    assert merged.groups[3] == [3, 8] and merged.multiplicity.tolist() == [1] * 3 + [2] + [1] * 4
    # near but distinct points are kept apart
    assert len(merge_coincident(np.vstack([x, x[0] + 1e-9]), np.append(y, 5.0)).x) == len(x) + 1


def test_solve_is_scale_free():
    x, y, x_test = data()
    k = analytic_kernels(x, arch=ARCH)["ntk"]
    k_test = analytic_kernels(x_test, x, arch=ARCH)["ntk"]
    base = gram_regression(k, k_test, y).mean
    for c in (1e-250, 1e250):
        np.testing.assert_allclose(gram_regression(c * k, c * k_test, y).mean, base, rtol=1e-12)


def _hand_ntk(mp, kind: str, depth: int, alpha: float, cosines: np.ndarray) -> np.ndarray:
    """The ReLU NTK recursion of shared/docs/kernels.md (sigmas 1, no biases) for unit-circle
    inputs in d = 2 (q = cos(angle) / 2), written out in mpmath at its working precision."""
    def t_relu(s, s12):
        theta = mp.acos(max(min(s12 / s, 1), -1))
        return s / (2 * mp.pi) * (mp.sin(theta) + (mp.pi - theta) * mp.cos(theta)), (mp.pi - theta) / (2 * mp.pi)

    def entry(cosine):
        s = mp.mpf(1) / 2
        s12 = th12 = mp.mpf(cosine) / 2
        for _ in range(depth):
            t12, tdot12 = t_relu(s, s12)
            if kind == "resnet":
                th12 = th12 + alpha**2 * (t12 + tdot12 * (s12 + th12))
                s12, s = s12 + alpha**2 * t12, s + alpha**2 * s / 2
            else:
                th12, s12, s = t12 + tdot12 * th12, t12, s / 2
        return s12 + th12 if kind == "resnet" else th12

    unique, inverse = np.unique(np.round(cosines, 15), return_inverse=True)
    values = [entry(c) for c in unique]
    return np.array([values[i] for i in inverse.ravel()], dtype=object).reshape(cosines.shape)


@pytest.mark.parametrize(("kind", "alpha", "depth"), [
    ("mlp", 1.0, 30), ("resnet", 0.1, 30), ("mlp", 1.0, 300), ("resnet", 1.0, 300), ("resnet", 0.5, 300),
    ("resnet", 0.1, 300)])
def test_deep_interpolation_against_high_precision(kind, alpha, depth):
    """The paper's 10-sample circle experiment at depth 30 and 300 (kernels of 1e-89 to 1e55):
    the engine's interpolant against the hand-written recursion, computed and solved in 30
    digits on the 9 distinct samples (b = -pi and pi coincide)."""
    mpmath = pytest.importorskip("mpmath", reason="mpmath is in the test extra")
    from engine import circle_interpolation, mu_curvature, paper_target, paper_train_angles

    b = paper_train_angles(10)[:-1]
    grid = np.linspace(-np.pi, np.pi, 16, endpoint=False)
    with mpmath.workdps(30):
        k = _hand_ntk(mpmath, kind, depth, alpha, np.cos(np.subtract.outer(b, b)))
        k_grid = _hand_ntk(mpmath, kind, depth, alpha, np.cos(np.subtract.outer(grid, b)))
        coef = mpmath.lu_solve(mpmath.matrix(k.tolist()), mpmath.matrix(paper_target(b).tolist()))
        expected = np.array((mpmath.matrix(k_grid.tolist()) * coef).tolist(), dtype=float).ravel()
    arch = Architecture(kind, depth, alpha=alpha)
    for ridge, rtol in ((0.0, 1e-9), (1e-10, 1e-6)):
        fit = circle_interpolation(arch, 10, n_grid=16, ridge=ridge)
        np.testing.assert_allclose(fit["interpolant"], expected, rtol=rtol, atol=rtol * np.abs(expected).max())
        assert fit["mu"] == pytest.approx(mu_curvature(expected), rel=rtol)
