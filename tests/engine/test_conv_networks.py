"""Finite conv nets against neural-tangents 0.6.5 (tests/data/conv_mc_reference.json, made by
tests/data/make_conv_mc_reference.py): the forward pass on neural-tangents' own weights, and
the empirical NTK / NNGP at large width against its analytic kernels (Monte Carlo). The
structured empirical NTK against autodiff Jacobians.

Tolerances of the Monte Carlo tests, from the fluctuations measured on these cases (3 inputs):
at width 256 one network's NTK is off its limit by 2-16% (relative Frobenius; ~1/sqrt(width)),
so the mean of 6 networks by at most ~6% (one standard deviation, the worst case image-cnn-pool);
NTK_TOL = 0.2 is 3 of them, and the test checks that the measured spread of its own seeds keeps it
so. A real bug moves the kernel further: without the 1/|window| of the conv fan-in the error is
> 100%; zero padding in place of circular, 20-50% (48% on image-cnn-pool,
`test_the_tolerance_catches_real_bugs`). Padding offsets, filter orientation and flatten order
leave the kernels' distribution nearly unchanged: the forward test against neural-tangents'
`apply_fn` on the same weights pins them exactly.
"""

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import engine.conv.empirical as conv_empirical
import engine.conv.networks as conv_networks
from engine.conv.architecture import ConvArchitecture
from engine.conv.empirical import empirical_nngp, empirical_ntk, empirical_ntks
from engine.conv.networks import apply, init_params

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "conv_mc_reference.json").read_text())["cases"]
CASES = {case["name"]: case for case in REFERENCE}
NTK_WIDTH, NTK_SEEDS, NTK_TOL = 256, 6, 0.2


def _arch(case: dict) -> ConvArchitecture:
    spec = case["architecture"]
    return ConvArchitecture.from_dict({**spec, "filter_size": tuple(spec["filter_size"])})


def _ntk_errors(case: dict) -> tuple[float, np.ndarray]:
    """(relative Frobenius error of the seeds' mean NTK, each seed's error) against the analytic NTK."""
    arch, x, analytic = _arch(case), np.asarray(case["x"]), np.asarray(case["ntk"])
    ntks = np.stack([empirical_ntk(arch, init_params(arch, NTK_WIDTH, x.shape[1:], seed), x)
                     for seed in range(NTK_SEEDS)])
    norm = np.linalg.norm(analytic)
    each = np.array([np.linalg.norm(k - analytic) / norm for k in ntks])
    return float(np.linalg.norm(ntks.mean(0) - analytic) / norm), each


@pytest.mark.parametrize("name", CASES)
def test_forward_equals_neural_tangents_apply(name):
    """The same weights through neural-tangents' finite `apply_fn` and ours: the semantics
    (circular padding's offsets, cross-correlation, fan-ins, biases, flatten order)."""
    case = CASES[name]
    params = {k: jnp.asarray(np.asarray(v, dtype=np.float64)) for k, v in case["finite"]["params"].items()}
    f = np.asarray(apply(_arch(case), params, jnp.asarray(case["x"])))
    np.testing.assert_allclose(f, case["finite"]["f"], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ["signal-resnet-pool", "signal-cnn-flatten", "image-resnet-flatten",
                                  "image-cnn-pool"])
def test_empirical_ntk_converges_to_the_analytic_ntk(name):
    error, each = _ntk_errors(CASES[name])
    spread = math.sqrt(np.mean(each**2) / NTK_SEEDS)  # the mean's standard deviation, bias included
    print(f"{name}: error {error:.4f}, seeds {np.round(each, 3)}, spread {spread:.4f}")
    assert spread <= NTK_TOL / 3, f"the seeds' spread {spread:.3f} no longer justifies NTK_TOL"
    assert error <= NTK_TOL, f"{name}: mean of {NTK_SEEDS} empirical NTKs off by {error:.3f} (relative)"


@pytest.mark.parametrize("name", ["signal-cnn-flatten", "image-cnn-pool"])
def test_empirical_nngp_converges_to_the_analytic_nngp(name):
    """E[f f'] over 512 networks of width 32: each entry within 4 of its own standard errors
    (measured from the sample), and those small enough (<= 8% of sqrt(K(x,x) K(x',x')); at least
    sqrt(2 / 512) = 6% for a Gaussian f) that a bug of 35% cannot hide."""
    case = CASES[name]
    arch, x, analytic = _arch(case), np.asarray(case["x"]), np.asarray(case["nngp"])
    ensemble = init_params(arch, 32, x.shape[1:], seed=1, n_init=512)
    nngp = empirical_nngp(arch, ensemble, x)
    with jax.enable_x64(True):
        f = np.asarray(conv_empirical.ensemble_outputs(arch, ensemble, x, 32))
    products = f[:, :, None] * f[:, None, :]
    stderr = products.std(0, ddof=1) / math.sqrt(len(f))
    scale = np.sqrt(np.outer(np.diag(analytic), np.diag(analytic)))
    np.testing.assert_allclose(nngp, products.mean(0), rtol=1e-12)
    assert np.max(stderr / scale) <= 0.08
    assert np.max(np.abs(nngp - analytic) / stderr) <= 4.0


def test_the_tolerance_catches_real_bugs(monkeypatch):
    """Two plausible bugs, each put in by hand: the NTK test fails on them."""
    case = CASES["image-cnn-pool"]
    window = math.prod(case["architecture"]["filter_size"])
    original = conv_empirical.scales

    def no_window(arch, width, input_shape):  # fan-in C_in instead of |window| C_in
        scales = original(arch, width, input_shape)
        return {k: v * math.sqrt(window) if k.startswith("W") else v for k, v in scales.items()}

    with monkeypatch.context() as patch:
        patch.setattr(conv_empirical, "scales", no_window)
        assert _ntk_errors(case)[0] > 3 * NTK_TOL

    def zero_padding(h, filters):  # "SAME" zero padding instead of circular
        dims = ("NWC", "WIO", "NWC") if filters.ndim == 3 else ("NHWC", "HWIO", "NHWC")
        return jax.lax.conv_general_dilated(h, filters, (1,) * (filters.ndim - 2), "SAME", dimension_numbers=dims,
                                            precision=jax.lax.Precision.HIGHEST)

    jax.clear_caches()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(conv_networks, "circular_conv", zero_padding)
            assert _ntk_errors(case)[0] > 2 * NTK_TOL
    finally:
        jax.clear_caches()


@pytest.mark.parametrize("name", ["signal-resnet-pool", "image-resnet-pool-erf"])
def test_structured_ntk_equals_autodiff_jacobians(name):
    case = CASES[name]
    arch, x = _arch(case), np.asarray(case["x"])
    x2 = np.random.default_rng(3).normal(size=(2, *x.shape[1:]))
    params = init_params(arch, 5, x.shape[1:], seed=4)
    for second in (None, x2):
        fast = empirical_ntk(arch, params, x, second)
        reference = empirical_ntk(arch, params, x, second, method="jacobian")
        assert np.max(np.abs(fast - reference)) <= 1e-11 * np.max(np.abs(reference))


def test_init_is_deterministic_and_checked():
    arch = ConvArchitecture("conv-resnet", 2, filter_size=(3, 3), sigma_b=0.1)
    a, b = init_params(arch, 4, (5, 5, 2), seed=9), init_params(arch, 4, (5, 5, 2), seed=9)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["W"].shape == (2, 3, 3, 4, 4) and a["U"].shape == (3, 3, 2, 4) and a["b"].shape == (2, 4)
    ensemble = init_params(arch, 4, (5, 5, 2), seed=9, n_init=3)
    assert ensemble["V"].shape == (3, 2, 3, 3, 4, 4) and not np.allclose(ensemble["V"][0], ensemble["V"][1])
    x = np.random.default_rng(5).normal(size=(2, 5, 5, 2))
    second = {k: v[1] for k, v in ensemble.items()}
    np.testing.assert_allclose(empirical_ntks(arch, ensemble, x)[1], empirical_ntk(arch, second, x), rtol=1e-12)
    with pytest.raises(ValueError, match="width"):
        init_params(arch, 0, (5, 5, 2), seed=0)
    with pytest.raises(ValueError, match="parametrization"):
        init_params(arch, 4, (5, 5, 2), seed=0, parametrization="standard")
    with pytest.raises(ValueError, match="x1"):
        empirical_ntk(arch, a, np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="params do not fit"):
        empirical_ntk(arch, a, np.zeros((2, 5, 5, 3)))
