"""Dual activations against closed forms and scipy's adaptive quadrature."""

import math

import numpy as np
import pytest
from scipy import integrate, special

from engine import dual


def test_acos_matches_numpy_to_a_few_ulps():
    x = np.concatenate([np.linspace(-1, 1, 200_001), 1 - np.logspace(-16, -1, 200), -1 + np.logspace(-16, -1, 200)])
    np.testing.assert_allclose(np.asarray(dual.acos(x)), np.arccos(x), rtol=0, atol=1e-15)
    assert float(dual.acos(np.array(1.0))) == 0.0
    assert float(dual.acos(np.array(-1.0))) == math.pi


def _variances(n=400, smax=20.0, seed=0):
    rng = np.random.default_rng(seed)
    s11, s22 = rng.uniform(0.01, smax, n), rng.uniform(0.01, smax, n)
    rho = np.concatenate([rng.uniform(-1, 1, n - 5), [1.0, -1.0, 1 - 1e-12, -1 + 1e-12, 0.0]])
    return s11, rho * np.sqrt(s11 * s22), s22


@pytest.mark.parametrize("activation", ["relu", "erf", "linear"])
def test_quadrature_agrees_with_closed_forms(activation):
    s11, s12, s22 = _variances()
    t, tdot = dual.quadrature_dual(activation, s11, s12, s22)
    t_ref, tdot_ref = dual.CLOSED_FORMS[activation](s11, s12, s22)
    assert np.max(np.abs(t - t_ref)) <= 1e-8 * np.max(np.abs(t_ref))
    assert np.max(np.abs(tdot - tdot_ref)) <= 1e-8 * np.max(np.abs(tdot_ref))


def scipy_dual(phi, s11, s12, s22, epsabs: float = 1e-13):
    """E[phi(u) phi(v)], (u, v) ~ N(0, [[s11, s12], [s12, s22]]), by nested adaptive quadrature
    (scipy; independent of the engine): u = a z1, v = b z1 + c z2. Other test modules import it."""
    a, b = math.sqrt(s11), s12 / math.sqrt(s11)
    c = math.sqrt(max(s22 - b * b, 0.0))
    gauss = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    inner = lambda z1: integrate.quad(lambda z2: phi(b * z1 + c * z2) * gauss(z2), -12, 12, epsabs=epsabs)[0]  # noqa: E731
    return integrate.quad(lambda z1: phi(a * z1) * inner(z1) * gauss(z1), -12, 12, epsabs=epsabs, limit=200)[0]


SCALAR = {
    "tanh": math.tanh,
    "sigmoid": lambda u: 1 / (1 + math.exp(-u)),
    "softplus": lambda u: math.log1p(math.exp(-abs(u))) + max(u, 0.0),
    "gelu": lambda u: 0.5 * u * (1 + math.erf(u / math.sqrt(2))),
}


@pytest.mark.parametrize("activation", sorted(SCALAR))
def test_quadrature_activations_against_scipy(activation):
    for s11, s12, s22 in [(1.0, 0.3, 0.7), (2.5, -1.9, 2.0), (0.4, 0.4 * 0.999, 0.4)]:
        t, _ = dual.quadrature_dual(activation, np.array(s11), np.array(s12), np.array(s22))
        assert abs(float(t) - scipy_dual(SCALAR[activation], s11, s12, s22)) < 1e-8


def test_derivative_tables_match_finite_differences():
    u = np.linspace(-3, 3, 61) + 0.013
    for name, (phi, dphi) in dual.ACTIVATION_FUNCTIONS.items():
        h = 1e-6
        numeric = (np.asarray(phi(u + h)) - np.asarray(phi(u - h))) / (2 * h)
        np.testing.assert_allclose(np.asarray(dphi(u)), numeric, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(np.asarray(dual.ACTIVATION_FUNCTIONS["erf"][0](u)), special.erf(u), rtol=1e-15)


def test_zero_variance_is_finite():
    for activation in ("relu", "erf", "tanh"):
        t, tdot = dual.dual(activation, np.array([0.0]), np.array([0.0]), np.array([1.0]))
        assert np.all(np.isfinite(t)) and np.all(np.isfinite(tdot))


def _gelu_prime(u):
    return 0.5 * (1 + math.erf(u / math.sqrt(2))) + u * math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)


def test_gelu_closed_form_against_scipy():
    """T and Tdot of gelu against nested adaptive quadrature (scipy), identical points included."""
    for s11, s12, s22 in [(1.0, 0.3, 0.7), (2.5, -1.9, 2.0), (0.4, 0.4, 0.4), (6.0, 5.999, 6.0), (0.01, 0.0, 3.0)]:
        t, tdot = dual.gelu_dual(np.array(s11), np.array(s12), np.array(s22))
        assert abs(float(t) - scipy_dual(SCALAR["gelu"], s11, s12, s22)) < 1e-10
        assert abs(float(tdot) - scipy_dual(_gelu_prime, s11, s12, s22)) < 1e-10


def test_gelu_closed_form_matches_quadrature_everywhere():
    s11, s12, s22 = _variances()
    for closed, quadrature in zip(dual.gelu_dual(s11, s12, s22), dual.quadrature_dual("gelu", s11, s12, s22),
                                  strict=True):
        assert np.max(np.abs(closed - quadrature)) <= 1e-10 * np.max(np.abs(quadrature))
