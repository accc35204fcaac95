"""Finite networks: structured empirical NTK against autodiff Jacobians, convergence to the
analytic kernels with width (Monte Carlo), input Jacobians against finite differences."""

import numpy as np
import pytest

from engine import Architecture, analytic_kernels
from engine.empirical import empirical_nngp, empirical_ntk, input_jacobian_norms
from engine.networks import apply, init_params

X1 = np.random.default_rng(0).normal(size=(6, 3))
X2 = np.random.default_rng(1).normal(size=(4, 3))

ARCHS = [
    Architecture("resnet", 3, alpha=0.5),
    Architecture("resnet", 2, activation="erf", sigma_b=0.3, sigma_w=1.2),
    Architecture("mlp", 3, sigma_b=0.2),
    Architecture("mlp", 1, activation="tanh"),
]


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_structured_equals_autodiff(arch, parametrization):
    params = init_params(arch, 24, 3, seed=3, parametrization=parametrization)
    for x2 in (None, X2):
        fast = empirical_ntk(arch, params, X1, x2, parametrization=parametrization)
        reference = empirical_ntk(arch, params, X1, x2, parametrization=parametrization, method="jacobian")
        assert np.max(np.abs(fast - reference)) <= 1e-10 * np.max(np.abs(reference))


def test_init_is_deterministic_and_ensembles_are_independent():
    arch = Architecture("resnet", 2)
    a, b = init_params(arch, 8, 3, seed=5), init_params(arch, 8, 3, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ensemble = init_params(arch, 8, 3, seed=5, n_init=4)
    assert ensemble["W"].shape == (4, 2, 8, 8)
    assert not np.allclose(ensemble["W"][0], ensemble["W"][1])
    f = np.asarray(apply(arch, {k: v[2] for k, v in ensemble.items()}, X1))
    assert f.shape == (6,) and np.all(np.isfinite(f))


def _relative_error(arch, width, seeds=range(6)):
    x = np.random.default_rng(7).normal(size=(8, 3))
    analytic = analytic_kernels(x, arch=arch, kernels=("ntk",))["ntk"]
    errors = [np.linalg.norm(empirical_ntk(arch, init_params(arch, width, 3, seed), x) - analytic)
              / np.linalg.norm(analytic) for seed in seeds]
    return float(np.mean(errors))


@pytest.mark.parametrize("arch", [
    Architecture("resnet", 2, alpha=0.5), Architecture("resnet", 2, activation="erf", alpha=0.5),
    Architecture("mlp", 2), Architecture("mlp", 2, activation="erf"),
], ids=str)
def test_empirical_ntk_converges_like_inverse_sqrt_width(arch):
    narrow, wide = _relative_error(arch, 256), _relative_error(arch, 4096)
    assert narrow / wide >= 3.0, (narrow, wide)  # 4x expected from width^-1/2


def test_empirical_nngp_monte_carlo():
    arch = Architecture("mlp", 1, sigma_b=0.3)
    x = np.random.default_rng(2).normal(size=(5, 3))
    ensemble = init_params(arch, 256, 3, seed=11, n_init=2000)
    estimate = empirical_nngp(arch, ensemble, x)
    analytic = analytic_kernels(x, arch=arch, kernels=("nngp",))["nngp"]
    # 2000 draws: Monte Carlo error about 3% of the entries' scale
    assert np.max(np.abs(estimate - analytic)) < 0.1 * np.max(np.abs(analytic))


def test_input_jacobian_norms_against_finite_differences():
    arch = Architecture("resnet", 3, activation="tanh", alpha=0.7)
    params = init_params(arch, 32, 3, seed=1)
    h = 1e-6
    numeric = []
    for point in X1:
        f = lambda z: float(apply(arch, params, z[None])[0])  # noqa: E731
        grad = [(f(point + h * e) - f(point - h * e)) / (2 * h) for e in np.eye(3)]
        numeric.append(np.linalg.norm(grad))
    np.testing.assert_allclose(input_jacobian_norms(arch, params, X1), numeric, rtol=1e-6)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"width": 0}, "width"),
    ({"width": 2.5}, "width"),
    ({"width": 100_000}, "width"),
    ({"parametrization": "mup"}, "parametrization"),
    ({"n_init": 0}, "n_init"),
])
def test_bad_network_arguments(kwargs, match):
    args = {"arch": Architecture("resnet", 5), "width": 8, "input_dim": 3, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        init_params(**args)


def test_params_that_do_not_fit_are_refused():
    arch = Architecture("resnet", 2)
    params = init_params(arch, 8, 3, seed=0)
    with pytest.raises(ValueError, match="input dimension 2"):
        empirical_ntk(arch, params, np.ones((4, 2)))
    with pytest.raises(ValueError, match="architecture"):
        empirical_ntk(Architecture("resnet", 3), params, X1)
    with pytest.raises(ValueError, match="ensemble"):
        empirical_nngp(arch, params, X1)
    with pytest.raises(ValueError, match="one network"):
        input_jacobian_norms(arch, init_params(arch, 8, 3, seed=0, n_init=2), X1)


def test_new_alpha_or_sigma_reuses_the_compiled_ntk():
    """The scales are values: a second architecture of the same structure compiles nothing, and its
    structured NTK still equals the autodiff one."""
    from engine import empirical

    x = np.random.default_rng(2).normal(size=(5, 3))
    first = Architecture("resnet", 2, alpha=0.2)
    empirical_ntk(first, init_params(first, 24, 3, seed=0), x)
    size = empirical.structured_ntk._cache_size()
    second = Architecture("resnet", 2, alpha=0.9, sigma_w=1.4, sigma_v=0.6)
    params = init_params(second, 24, 3, seed=1)
    got = empirical_ntk(second, params, x)
    assert empirical.structured_ntk._cache_size() == size
    np.testing.assert_allclose(got, empirical_ntk(second, params, x, method="jacobian"), rtol=1e-12, atol=1e-12)
