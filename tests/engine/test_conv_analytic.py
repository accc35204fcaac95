"""Analytic kernels of convolutional ResNets and CNNs against neural-tangents' values
(tests/data/conv_reference.json, made by tests/data/make_conv_reference.py) and their properties."""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.conv import analytic as conv_module
from engine.conv import recursion
from engine.conv.analytic import Cancelled, conv_kernels
from engine.conv.architecture import ConvArchitecture

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "conv_reference.json").read_text())
CASES = {c["name"]: c for c in REFERENCE["cases"]}


def rel_err(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


def case_inputs(case):
    return np.asarray(case["x1"]), None if case["x2"] is None else np.asarray(case["x2"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_neural_tangents(name):
    case = CASES[name]
    got = conv_kernels(*case_inputs(case), arch=ConvArchitecture.from_dict(case["architecture"]))
    for kernel in ("nngp", "ntk"):
        assert got[kernel].shape == np.shape(case[kernel])
        # quadrature activations: NT's own Gauss-Hermite error (its change between two degrees) bounds it too
        assert rel_err(got[kernel], case[kernel]) < max(1e-8, 10 * case["accuracy"]), kernel


def test_reference_covers_the_brief():
    archs = [c["architecture"] for c in CASES.values()]
    assert {a["kind"] for a in archs} == {"conv-resnet", "cnn"}
    assert {a["readout"] for a in archs} == {"pool", "flatten"}
    assert {len(a["filter_size"]) for a in archs} == {1, 2}
    assert {a["depth"] for a in archs} >= {1, 2, 3, 4}
    assert {"relu", "erf", "linear", "tanh"} <= {a["activation"] for a in archs}
    assert {0.0, 0.1, 1.0} <= {a["alpha"] for a in archs if a["kind"] == "conv-resnet"}
    assert any(a["sigma_b"] > 0 for a in archs) and any(a["sigma_b"] == 0 for a in archs)
    assert any(c["x2"] is None for c in CASES.values()) and any(c["x2"] is not None for c in CASES.values())
    assert any(a["filter_size"][0] != a["filter_size"][-1] for a in archs)  # a non-square filter


def images(n, shape=(5, 4, 2), seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape))


ARCHS = [ConvArchitecture("conv-resnet", 3, alpha=0.4, sigma_b=0.1),
         ConvArchitecture("cnn", 2, activation="erf", filter_size=(2, 3), readout="flatten")]


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_symmetry_x2_path_and_tiles(monkeypatch, arch):
    x, x2 = images(11), images(6, seed=1)
    full = conv_kernels(x, arch=arch)
    cross = conv_kernels(x, x2, arch=arch)
    cross_t = conv_kernels(x2, x, arch=arch)
    same = conv_kernels(x, x, arch=arch)
    monkeypatch.setattr(conv_module, "TILE_ENTRIES", 1)  # one image pair per tile
    tiled = conv_kernels(x, arch=arch, workers=1)
    tiled_cross = conv_kernels(x, x2, arch=arch, workers=2)
    for name in ("nngp", "ntk"):
        k = full[name]
        np.testing.assert_array_equal(k, k.T)
        assert np.linalg.eigvalsh(k)[0] > -1e-12 * np.abs(k).max()
        assert rel_err(cross[name], cross_t[name].T) < 1e-13
        assert rel_err(same[name], k) < 1e-13
        assert rel_err(tiled[name], k) < 1e-13
        assert rel_err(tiled_cross[name], cross[name]) < 1e-13


def test_new_alpha_and_depth_reuse_the_compiled_tile():
    first, other = CASES["resnet_relu_img_pool"], CASES["resnet_relu_img_pool_other_numbers"]
    x1, _ = case_inputs(first)
    conv_kernels(x1, arch=ConvArchitecture.from_dict(first["architecture"]))
    before = recursion.tile._cache_size()
    got = conv_kernels(x1, arch=ConvArchitecture.from_dict(other["architecture"]))
    assert recursion.tile._cache_size() == before
    for name in ("nngp", "ntk"):
        assert rel_err(got[name], other[name]) < 1e-8


def test_kernel_subset_and_memmap_output(tmp_path):
    arch, x = ARCHS[0], images(5)
    path = tmp_path / "ntk.npy"
    out = {"ntk": np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(5, 5))}
    got = conv_kernels(x, arch=arch, kernels=["ntk"], out=out)
    assert list(got) == ["ntk"]
    out["ntk"].flush()
    np.testing.assert_array_equal(np.load(path), conv_kernels(x, arch=arch)["ntk"])


def test_progress_and_cancel(monkeypatch):
    monkeypatch.setattr(conv_module, "TILE_ENTRIES", 2 * 20 * 20)  # 1 x 1 images of 20 pixels ("pool")
    x, arch = images(4, (20, 1)), ConvArchitecture("cnn", 1, filter_size=(3,))
    calls = []
    conv_kernels(x, arch=arch, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 10) for i in range(1, 11)]  # 4 x 4 image pairs, upper triangle
    stops = iter([False, False, True])
    with pytest.raises(Cancelled):
        conv_kernels(x, arch=arch, should_stop=lambda: next(stops), workers=1)


@pytest.mark.parametrize(("x1", "x2", "match"), [
    (np.zeros((3, 4, 1)), None, "x1 must be a non-empty 4-D array"),
    (images(3), images(2, (5, 3, 2)), "share the spatial shape"),
    (images(3), images(2, (5, 4)), "x2 must be a non-empty 4-D"),
    (images(3, (2, 4, 1)), None, "filter_size"),
    (np.full((2, 5, 4, 1), np.nan), None, "x1 contains NaN"),
])
def test_bad_inputs(x1, x2, match):
    with pytest.raises(ValueError, match=match):
        conv_kernels(x1, x2, arch=ConvArchitecture("conv-resnet", 2, filter_size=(3, 3)))


def test_bad_arch_and_kernels():
    with pytest.raises(ValueError, match="ConvArchitecture"):
        conv_kernels(images(2), arch={"kind": "cnn", "depth": 1})
    with pytest.raises(ValueError, match="kernels"):
        conv_kernels(images(2), arch=ARCHS[0], kernels=["gram"])
