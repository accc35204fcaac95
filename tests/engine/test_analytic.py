"""Analytic kernels against neural-tangents' values and the kernels' known properties."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine import Architecture, Cancelled, analytic_diagonal, analytic_kernels
from engine import analytic as analytic_module

CASES = json.loads((Path(__file__).parents[1] / "data" / "kernels_neural_tangents.json").read_text())["cases"]


def rel_err(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reference_kernels(case):
    arch = Architecture.from_dict(case["architecture"])
    got = analytic_kernels(case["x1"], case["x2"], arch=arch)
    for name in ("nngp", "ntk"):
        assert rel_err(got[name], case[name]) < 1e-6, name


def random_points(n, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


ARCHS = [
    Architecture("resnet", 5, alpha=0.3),
    Architecture("resnet", 3, activation="erf", sigma_w=1.3, sigma_b=0.4),
    Architecture("mlp", 4, sigma_w=1.4, sigma_b=0.2),
    Architecture("mlp", 2, activation="tanh", sigma_b=0.1),
]


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_symmetry_psd_and_transpose(arch):
    x1, x2 = random_points(37), random_points(21, seed=1)
    full = analytic_kernels(x1, arch=arch)
    cross = analytic_kernels(x1, x2, arch=arch)
    cross_t = analytic_kernels(x2, x1, arch=arch)
    for name in ("nngp", "ntk"):
        k = full[name]
        np.testing.assert_array_equal(k, k.T)
        assert np.linalg.eigvalsh(k)[0] > -1e-12 * np.abs(k).max()
        assert rel_err(cross[name], cross_t[name].T) < 1e-13
        np.testing.assert_allclose(np.diag(k), analytic_diagonal(x1, arch=arch)[name], rtol=0, atol=0)


def test_tiles_equal_one_shot(monkeypatch):
    arch = Architecture("resnet", 7, alpha=0.5, sigma_b=0.1)
    x = random_points(150)
    one_shot = analytic_kernels(x, arch=arch)
    monkeypatch.setattr(analytic_module, "TILE", 16)
    tiled = analytic_kernels(x, arch=arch, workers=1)
    tiled_cross = analytic_kernels(x, x[:70], arch=arch)
    for name in ("nngp", "ntk"):
        assert rel_err(tiled[name], one_shot[name]) < 1e-12
        assert rel_err(tiled_cross[name], one_shot[name][:, :70]) < 1e-12


@pytest.mark.parametrize("kind", ["resnet", "mlp"])
def test_relu_homogeneity(kind):
    arch = Architecture(kind, 6, alpha=0.7, sigma_w=1.2)
    x1, x2 = random_points(9), random_points(7, seed=3)
    base = analytic_kernels(x1, x2, arch=arch)
    scaled = analytic_kernels(2.5 * x1, x2, arch=arch)
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(scaled[name], 2.5 * base[name], rtol=1e-12, atol=1e-14)


def test_alpha_to_zero_gives_linear_kernels():
    x = random_points(11)
    q = x @ x.T / x.shape[1]
    for alpha, tol in ((0.0, 1e-15), (1e-7, 1e-12)):
        got = analytic_kernels(x, arch=Architecture("resnet", 9, alpha=alpha, sigma_w=1.3))
        assert rel_err(got["ntk"], 2 * 1.3**2 * q) < tol
        assert rel_err(got["nngp"], 1.3**2 * q) < tol


@pytest.mark.parametrize("activation", ["relu", "erf", "gelu"])
@pytest.mark.parametrize("kind", ["resnet", "mlp"])
def test_quadrature_path_matches_closed_forms(monkeypatch, kind, activation):
    arch = Architecture(kind, 3, activation=activation, alpha=0.5, sigma_w=1.2, sigma_b=0.3)
    x = random_points(12)
    closed = analytic_kernels(x, arch=arch)
    monkeypatch.setattr(analytic_module, "method_for", lambda *args: "quadrature")
    quadrature = analytic_kernels(x, arch=arch)
    for name in ("nngp", "ntk"):
        assert rel_err(quadrature[name], closed[name]) < 1e-8


def test_new_hyperparameters_reuse_the_compiled_tile():
    x = random_points(20)
    analytic_kernels(x, arch=Architecture("resnet", 3, alpha=0.1))
    before = analytic_module._tile._cache_size(), analytic_module._diagonal._cache_size()
    for arch in (Architecture("resnet", 7, alpha=0.3, sigma_w=1.2, sigma_v=0.8, sigma_b=0.1),
                 Architecture("resnet", 1, alpha=2.0)):
        got = analytic_kernels(x, arch=arch)
        # the whole matrix: a tile compiled with a stale hyperparameter may still be right on the diagonal
        for name, reference in zip(("nngp", "ntk"), _relu_resnet_gram(x, arch), strict=True):
            np.testing.assert_allclose(got[name], reference, rtol=1e-11)
    assert (analytic_module._tile._cache_size(), analytic_module._diagonal._cache_size()) == before


def _relu_resnet_gram(x, arch):
    """(NNGP, NTK) Gram matrices of the ReLU ResNet in plain numpy: the arc-cosine closed forms of
    T and Tdot in the recursion that `_relu_resnet_diagonal` runs at rho = 1."""
    sw2, sb2, c = arch.sigma_w**2, arch.sigma_b**2, (arch.alpha * arch.sigma_v) ** 2
    k = th = x @ x.T / x.shape[1]
    for _ in range(arch.depth):
        s = sw2 * k + sb2
        norms = np.sqrt(np.outer(np.diag(s), np.diag(s)))
        angle = np.arccos(np.clip(s / norms, -1, 1))
        t = norms * (np.sin(angle) + (np.pi - angle) * np.cos(angle)) / (2 * np.pi)
        t_dot = (np.pi - angle) / (2 * np.pi)
        th = th + c * (t + t_dot * (s + sw2 * th))
        k = k + c * t
    return sw2 * k + sb2, sw2 * (k + th) + sb2


def _relu_resnet_diagonal(q, arch):
    """K(x, x) for the ReLU ResNet, in plain floats: at rho = 1, T = S / 2 and Tdot = 1 / 2."""
    sw2, sb2, c = arch.sigma_w**2, arch.sigma_b**2, (arch.alpha * arch.sigma_v) ** 2
    k = th = q
    for _ in range(arch.depth):
        s = sw2 * k + sb2
        th = th + c * (s / 2 + 0.5 * (s + sw2 * th))
        k = k + c * s / 2
    return sw2 * k + sb2, sw2 * (k + th) + sb2


def test_identical_points_are_exact_and_finite():
    b = np.array([-math.pi, math.pi, 0.3, 0.3, 1.0, 0.3])
    x = np.stack([np.cos(b), np.sin(b)], 1)
    arch = Architecture("resnet", 15, alpha=1.0, sigma_w=1.1)
    k = analytic_kernels(x, arch=arch)
    nngp, ntk = _relu_resnet_diagonal(0.5, arch)
    for name, expected in (("nngp", nngp), ("ntk", ntk)):
        assert np.all(np.isfinite(k[name]))
        for i, j in ((0, 1), (2, 3), (2, 5), (3, 5)):
            np.testing.assert_allclose(k[name][i, j], k[name][i, i], rtol=1e-14)
            np.testing.assert_allclose(k[name][i, j], expected, rtol=1e-13)
        np.testing.assert_allclose(np.diag(k[name]), expected, rtol=1e-13)


def test_zero_input_is_finite():
    x = np.array([[0.0, 0.0], [1.0, 0.5]])
    for arch in (Architecture("resnet", 3), Architecture("mlp", 3, activation="erf")):
        k = analytic_kernels(x, arch=arch)
        assert all(np.all(np.isfinite(v)) for v in k.values())


def test_float32_matches_float64():
    x = random_points(20)
    arch = Architecture("resnet", 5, alpha=0.5)
    k64 = analytic_kernels(x, arch=arch)["ntk"]
    k32 = analytic_kernels(x, arch=arch, dtype="float32")["ntk"]
    assert k32.dtype == np.float32 and k64.dtype == np.float64
    assert rel_err(k32, k64) < 1e-5


def test_kernel_subset_and_memmap_output(tmp_path):
    x = random_points(40)
    arch = Architecture("mlp", 3)
    path = tmp_path / "ntk.npy"
    out = {"ntk": np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(40, 40))}
    got = analytic_kernels(x, arch=arch, kernels=["ntk"], out=out)
    assert set(got) == {"ntk"}
    out["ntk"].flush()
    np.testing.assert_array_equal(np.load(path), analytic_kernels(x, arch=arch)["ntk"])


def test_progress_and_cancel(monkeypatch):
    monkeypatch.setattr(analytic_module, "TILE", 16)
    x = random_points(64)
    calls = []
    analytic_kernels(x, arch=Architecture("resnet", 2), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 10) for i in range(1, 11)]  # 4 x 4 tiles, upper triangle
    with pytest.raises(Cancelled):
        analytic_kernels(x, arch=Architecture("resnet", 2), should_stop=lambda: True)


def test_many_sizes_compile_few_shapes():
    arch = Architecture("resnet", 4, alpha=0.25)
    before = analytic_module._tile._cache_size()
    for n in np.unique(np.geomspace(10, 1200, 20).astype(int)):
        analytic_kernels(random_points(int(n)), arch=arch, kernels=("ntk",))
    # buckets 16, 32, ..., 512 (larger N reuses 512-tiles): at most 6 tile shapes
    assert analytic_module._tile._cache_size() - before <= 6


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"x1": [[0.0, float("nan")]]}, "NaN"),
    ({"x1": [[0.0, float("inf")]]}, "NaN or Inf"),
    ({"x1": [[0.0, 1.0], [1.0]]}, "x1"),
    ({"x1": np.zeros((0, 2))}, "non-empty"),
    ({"x1": np.zeros(3)}, "2-D"),
    ({"x1": [["a", "b"]]}, "x1"),
    ({"x1": np.ones((2, 2)), "x2": np.ones((2, 3))}, "same dimension"),
    ({"x1": np.ones((2, 2)), "kernels": ("ntk", "cntk")}, "kernels"),
    ({"x1": np.ones((2, 2)), "dtype": "float16"}, "dtype"),
])
def test_bad_inputs(kwargs, match):
    kwargs = {"arch": Architecture("resnet", 2), **kwargs}
    with pytest.raises(ValueError, match=match):
        analytic_kernels(kwargs.pop("x1"), **kwargs)
