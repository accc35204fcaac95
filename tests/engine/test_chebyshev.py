"""The Chebyshev path (inputs of one norm) against scipy's adaptive quadrature and against the
engine's 2-D quadrature path, including the fallback when no degree is accurate enough."""

import math

import numpy as np
import pytest
from test_dual import scipy_dual

from engine import Architecture, analytic_kernels, chebyshev
from engine import analytic as analytic_module

SCALAR = {
    "tanh": math.tanh,
    "sigmoid": lambda u: 1 / (1 + math.exp(-u)),
    "softplus": lambda u: math.log1p(math.exp(-abs(u))) + max(u, 0.0),
}


def circle(n, shift=0.3):
    b = 2 * np.pi * np.arange(n) / n - np.pi + shift
    return np.stack([np.cos(b), np.sin(b)], 1)


def rel_err(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_clenshaw_and_transform_reproduce_a_polynomial():
    nodes = chebyshev.lobatto(32)
    values = np.polynomial.chebyshev.chebval(nodes, np.arange(1.0, 9.0))  # degree 7
    coef = chebyshev._transform(32) @ values
    np.testing.assert_allclose(coef[:8], np.arange(1.0, 9.0), atol=1e-13)
    assert np.max(np.abs(coef[8:])) < 1e-13
    x = np.linspace(-1, 1, 101)
    np.testing.assert_allclose(np.asarray(chebyshev.clenshaw(coef, x)),
                               np.polynomial.chebyshev.chebval(x, coef), atol=1e-13)


@pytest.mark.parametrize("activation", sorted(SCALAR))
def test_one_layer_against_scipy(activation):
    """MLP of depth 1 without biases: NNGP = sigma_w^2 T(S), S = sigma_w^2 q, one norm."""
    sw = 1.3
    x = circle(8) * 1.7
    got = analytic_kernels(x, arch=Architecture("mlp", 1, activation=activation, sigma_w=sw))["nngp"]
    s = sw**2 * 1.7**2 / 2
    for j in (1, 3, 4):
        t = scipy_dual(SCALAR[activation], s, s * float(x[0] @ x[j]) / 1.7**2, s, epsabs=1e-14)
        assert abs(got[0, j] - sw**2 * t) <= 1e-10 * abs(got[0, 0])


@pytest.mark.parametrize(("activation", "arch"), [
    ("tanh", dict(kind="resnet", depth=4, alpha=0.5, sigma_b=0.2)),
    ("softplus", dict(kind="mlp", depth=3, sigma_w=1.2)),
    ("sigmoid", dict(kind="resnet", depth=2, alpha=1.0)),
    ("tanh", dict(kind="resnet", depth=3, alpha=4.0, sigma_w=3.0)),  # variances ~1e3: falls back to quadrature
])
def test_chebyshev_path_matches_quadrature_path(monkeypatch, activation, arch):
    arch = Architecture(activation=activation, **arch)
    x1, x2 = circle(14), 0.7 * circle(9, shift=1.1)  # two norms; one tile shape (16 x 16) for both paths
    fast = analytic_kernels(x1, x2, arch=arch)
    monkeypatch.setattr(analytic_module, "method_for", lambda *args: "quadrature")
    slow = analytic_kernels(x1, x2, arch=arch)
    for name in ("nngp", "ntk"):
        assert rel_err(fast[name], slow[name]) < 1e-9


def test_identical_points_are_exact_on_the_chebyshev_path():
    x = circle(6)
    x = np.concatenate([x, x[:2]])
    k = analytic_kernels(x, arch=Architecture("resnet", 5, activation="tanh", alpha=0.7))
    for name in ("nngp", "ntk"):
        np.testing.assert_array_equal(k[name], k[name].T)
        np.testing.assert_allclose(k[name][0, 6], k[name][0, 0], rtol=1e-14)
        np.testing.assert_allclose(k[name][1, 7], k[name][1, 1], rtol=1e-14)
