"""conv-spectra at tiny scale: its images, eigenvalues, condition numbers and decay exponents against
direct `conv_kernels` calls and numpy (eigvalsh, polyfit), and the closed form of the skip path with
the pool readout: alpha = 0 leaves the pooled stem, (mean pixel of x)(mean pixel of x'), rank one."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from engine.conv.analytic import conv_kernels
from engine.conv.architecture import ConvArchitecture
from engine.experiments import run
from engine.experiments.conv_spectra import digit_images

TINY = {"depths": [1, 2], "alphas": [1.0, 0.0], "n_images": 10, "filter_size": 3, "readouts": ["flatten", "pool"],
        "kernels": ["ntk", "nngp"], "fit_ranks": [2, 7], "center": True, "seed": 1}


def test_images_are_a_centred_seeded_subset_of_unit_mean_square():
    x = digit_images(10, 1, True)
    assert x.shape == (10, 8, 8, 1)
    np.testing.assert_allclose(np.mean(x.reshape(10, -1) ** 2, axis=1), 1.0, rtol=1e-12)
    raw = load_digits().data[np.sort(np.random.default_rng(1).choice(1797, 10, replace=False))]
    centred = raw - raw.mean(axis=0)
    np.testing.assert_allclose(x.reshape(10, -1), centred / np.sqrt(np.mean(centred**2, axis=1, keepdims=True)),
                               rtol=1e-12)


def test_spectra_conditions_and_exponents_equal_direct_calls():
    data = run("conv-spectra", "quick", TINY)
    assert data["labels"]["curves"] == ["CNN", "conv-ResNet alpha=1", "conv-ResNet alpha=0"]
    x = digit_images(10, 1, True)
    for r, readout in enumerate(("flatten", "pool")):
        for j, depth in enumerate((1, 2)):
            archs = [ConvArchitecture("cnn", depth, readout=readout),
                     ConvArchitecture("conv-resnet", depth, alpha=1.0, readout=readout),
                     ConvArchitecture("conv-resnet", depth, alpha=0.0, readout=readout)]
            for c, arch in enumerate(archs):
                grams = conv_kernels(x, arch=arch)
                for kernel in ("ntk", "nngp"):
                    g = grams[kernel] / np.mean(np.diag(grams[kernel]))
                    e = np.sort(np.linalg.eigvalsh(g))[::-1]
                    np.testing.assert_allclose(data[f"eigenvalues_{kernel}"][r, c, j], e, rtol=1e-9,
                                               atol=1e-13 * e[0])
                    if not (c == 2 and readout == "pool"):  # there, e_2.. are rounding (rank one)
                        slope = np.polyfit(np.log(np.arange(2, 8)), np.log(e[1:7]), 1)[0]
                        assert data[f"exponent_{kernel}"][r, c, j] == pytest.approx(slope, rel=1e-9)
                    table = data["tables"][f"{readout}_{kernel}_condition"][j][data["labels"]["curves"][c]]
                    if c == 2:  # alpha = 0: rank one (pool), or the centred images' linear kernel (flatten)
                        assert table == "singular" and data[f"condition_{kernel}"][r, c, j] == 0
                    else:
                        assert table == pytest.approx(e[0] / e[-1], rel=1e-6)


def test_the_skip_path_alone_is_the_linear_kernel():
    """conv-ResNet, alpha = 0: the blocks vanish and the NNGP is the stem's linear kernel read out: with
    pool, mean_{p,p'} mean_window x_(p+d) x'_(p'+d) = (mean pixel of x)(mean pixel of x'), rank one; with
    flatten, mean_p mean_window x_(p+d) x'_(p+d) = x.x' / 64, of rank N - 1 for centred images. The NTK
    adds the stem's gradient: twice that."""
    x = digit_images(10, 1, True)
    grams = conv_kernels(x, arch=ConvArchitecture("conv-resnet", 3, alpha=0.0, readout="pool"))
    means = x.reshape(10, -1).mean(axis=1)
    np.testing.assert_allclose(grams["nngp"], np.outer(means, means), atol=1e-14)
    np.testing.assert_allclose(grams["ntk"], 2 * np.outer(means, means), atol=1e-14)
    grams = conv_kernels(x, arch=ConvArchitecture("conv-resnet", 3, alpha=0.0, readout="flatten"))
    flat = x.reshape(10, -1)
    np.testing.assert_allclose(grams["nngp"], flat @ flat.T / 64, atol=1e-14)
    np.testing.assert_allclose(grams["ntk"], 2 * flat @ flat.T / 64, atol=1e-14)
