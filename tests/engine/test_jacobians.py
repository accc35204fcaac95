"""engine.jacobians: the kernel predictors' input Jacobians by autodiff against central finite
differences of the engine's own kernel evaluations (`analytic_kernels`, `conv_kernels`), the class
stack's against `input_jacobian_norms` and finite differences, and the operator norm against numpy."""

import numpy as np
import pytest

from engine import Architecture, analytic_kernels, init_params
from engine.conv.analytic import conv_kernels
from engine.conv.architecture import ConvArchitecture
from engine.empirical import input_jacobian_norms
from engine.jacobians import (
    conv_kernel_jacobians,
    dense_kernel_jacobians,
    operator_norms,
    predictor_weights,
    stack_jacobians,
)
from engine.networks import apply
from engine.regression import kernel_regression

H = 1e-6


def unit(rows, d, seed):
    x = np.random.default_rng(seed).standard_normal((rows, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def central_differences(f, x, shape):
    """(m, C, D) central differences of f: (m, *shape) -> (m, C) along each input direction."""
    size = int(np.prod(shape))
    cols = []
    for e in np.eye(size):
        step = H * e.reshape(shape)
        cols.append((f(x + step) - f(x - step)) / (2 * H))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("arch", [Architecture("mlp", 3), Architecture("resnet", 4, alpha=0.3),
                                  Architecture("resnet", 2, alpha=0.0)])
def test_dense_kernel_jacobians_match_finite_differences(arch):
    x_train, x = unit(25, 6, 0), unit(4, 6, 1)
    y = np.random.default_rng(2).standard_normal((25, 3))
    grams = analytic_kernels(x_train, arch=arch)
    # a ridge that keeps the weights O(1) at alpha = 0 too (a rank-6 Gram), where differences would cancel
    weights = {k: predictor_weights(grams[k], y, ridge=1e-3) for k in ("ntk", "nngp")}
    jac = dense_kernel_jacobians(x, x_train, weights, arch=arch, chunk=3)  # two chunks, the second padded
    for kernel in ("ntk", "nngp"):
        def f(z, kernel=kernel):
            return analytic_kernels(z, x_train, arch=arch, kernels=(kernel,))[kernel] @ weights[kernel]

        want = central_differences(f, x, (6,))
        assert jac[kernel].shape == (4, 3, 6)
        np.testing.assert_allclose(jac[kernel], want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_predictor_weights_give_kernel_regression():
    arch = Architecture("resnet", 3, alpha=0.5)
    x_train, x_test = unit(20, 5, 3), unit(7, 5, 4)
    y = np.random.default_rng(5).standard_normal((20, 2))
    k = analytic_kernels(x_train, arch=arch, kernels=("ntk",))["ntk"]
    k_test = analytic_kernels(x_test, x_train, arch=arch, kernels=("ntk",))["ntk"]
    want = kernel_regression(x_train, y, x_test, arch=arch, ridge=1e-6).mean
    np.testing.assert_allclose(k_test @ predictor_weights(k, y, ridge=1e-6), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("readout", ["flatten", "pool"])
def test_conv_kernel_jacobians_match_finite_differences(readout):
    rng = np.random.default_rng(6)
    x_train, x = rng.standard_normal((10, 5, 5, 1)), rng.standard_normal((2, 5, 5, 1))
    arch = ConvArchitecture("conv-resnet", 2, alpha=0.5, readout=readout)
    grams = conv_kernels(x_train, arch=arch)
    y = rng.standard_normal((10, 2))
    weights = {k: predictor_weights(grams[k], y, ridge=1e-8) for k in ("ntk", "nngp")}
    jac = conv_kernel_jacobians(x, x_train, weights, arch=arch)
    for kernel in ("ntk", "nngp"):
        def f(z, kernel=kernel):
            return conv_kernels(z, x_train, arch=arch, kernels=(kernel,))[kernel] @ weights[kernel]

        want = central_differences(f, x, (5, 5, 1))
        assert jac[kernel].shape == (2, 2, 5, 5, 1)
        np.testing.assert_allclose(jac[kernel].reshape(2, 2, -1), want, rtol=1e-5,
                                   atol=1e-6 * np.abs(want).max())


def test_conv_jacobians_in_several_passes_equal_one(monkeypatch):
    """TANGENT_ENTRIES cut so each pass takes 3 of the 16 directions: the same Jacobian."""
    import engine.jacobians as jacobians

    rng = np.random.default_rng(7)
    x_train, x = rng.standard_normal((6, 4, 4, 1)), rng.standard_normal((1, 4, 4, 1))
    arch = ConvArchitecture("cnn", 2, readout="flatten")
    w = {"ntk": predictor_weights(conv_kernels(x_train, arch=arch, kernels=("ntk",))["ntk"], rng.standard_normal(6),
                                  ridge=1e-8)}
    whole = conv_kernel_jacobians(x, x_train, w, arch=arch)["ntk"]
    monkeypatch.setattr(jacobians, "TANGENT_ENTRIES", 3 * 6 * 16)
    np.testing.assert_allclose(conv_kernel_jacobians(x, x_train, w, arch=arch)["ntk"], whole, rtol=1e-12)


def test_stack_jacobians_are_the_networks_gradients():
    arch = Architecture("resnet", 2, alpha=0.5)
    members = [init_params(arch, 16, 4, seed) for seed in (1, 2, 3)]
    x = unit(5, 4, 8)
    jac = stack_jacobians(arch, members, x)
    assert jac.shape == (5, 3, 4)
    for c, params in enumerate(members):
        np.testing.assert_allclose(np.linalg.norm(jac[:, c], axis=1), input_jacobian_norms(arch, params, x),
                                   rtol=1e-10)

    def f(z):
        return np.stack([np.asarray(apply(arch, p, z)) for p in members], axis=1)

    np.testing.assert_allclose(jac, central_differences(f, x, (4,)), rtol=1e-5, atol=1e-8)


def test_operator_norms_are_the_largest_singular_values():
    j = np.random.default_rng(9).standard_normal((4, 3, 2, 5))
    want = [np.linalg.svd(m.reshape(3, 10), compute_uv=False)[0] for m in j]
    np.testing.assert_allclose(operator_norms(j), want, rtol=1e-12)
    np.testing.assert_allclose(operator_norms(j[:, :1]), np.linalg.norm(j[:, 0].reshape(4, -1), axis=1), rtol=1e-12)


def test_bad_inputs_are_refused():
    arch = Architecture("mlp", 2, activation="tanh")
    with pytest.raises(ValueError, match="closed-form dual"):
        dense_kernel_jacobians(unit(2, 3, 0), unit(3, 3, 1), {"ntk": np.ones(3)}, arch=arch)
    with pytest.raises(ValueError, match="weights must be finite"):
        dense_kernel_jacobians(unit(2, 3, 0), unit(3, 3, 1), {"ntk": np.ones(4)}, arch=Architecture("mlp", 2))
    with pytest.raises(ValueError, match="kernels"):
        dense_kernel_jacobians(unit(2, 3, 0), unit(3, 3, 1), {"cntk": np.ones(3)}, arch=Architecture("mlp", 2))
    with pytest.raises(ValueError, match="ConvArchitecture"):
        conv_kernel_jacobians(np.ones((1, 4, 4, 1)), np.ones((2, 4, 4, 1)), {"ntk": np.ones(2)},
                              arch=Architecture("mlp", 2))
