"""The out-of-core exact regression against dense NumPy solves of the same Grams (np.linalg.solve on
analytic_kernels' matrices), and against the in-memory kernel_regression; small edges, so the Gram
spans many blocks (n not a multiple of edge)."""

import numpy as np
import pytest
import zarr

from engine import (
    Architecture,
    Cancelled,
    analytic_diagonal,
    analytic_kernels,
    blocked_gram_regression,
    blocked_kernel_regression,
    fill_gram,
    gram_regression,
    kernel_regression,
)

ARCH = Architecture("resnet", 5, alpha=0.5)
EDGE = 64


def sphere(n, d=6, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def target(x):
    return np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2]


def dense_reference(x, y, x_test, kernel, ridge):
    """Mean and posterior variance by np.linalg.solve on the whole Gram (noise ridge x mean diagonal)."""
    k = analytic_kernels(x, arch=ARCH, kernels=(kernel,))[kernel]
    k_test = analytic_kernels(x_test, x, arch=ARCH, kernels=(kernel,))[kernel]
    a = k + ridge * np.mean(np.diag(k)) * np.eye(len(x))
    mean = k_test @ np.linalg.solve(a, y)
    diag = analytic_diagonal(x_test, arch=ARCH, kernels=(kernel,))[kernel]
    variance = diag - np.einsum("ij,ji->i", k_test, np.linalg.solve(a, k_test.T))
    return mean, variance


def relative(got, want):
    return np.abs(got - want).max() / np.abs(want).max()


def assert_matches(got, mean, variance):
    """The mean within 1e-9 relative, the posterior variance within 1e-9 of its largest (and 1e-12)."""
    assert relative(got.mean, mean) < 1e-9
    assert np.abs(got.variance - variance).max() < 1e-9 * np.abs(variance).max() + 1e-12


@pytest.mark.parametrize("n", [300, 517])
def test_mean_and_variance_match_dense_solves(n):
    x, x_test = sphere(n), sphere(40, seed=1)
    y = target(x)
    mean, variance = dense_reference(x, y, x_test, "nngp", 1e-4)
    got = blocked_kernel_regression(x, y, x_test, arch=ARCH, kernel="nngp", ridge=1e-4, return_variance=True,
                                    edge=EDGE)
    assert_matches(got, mean, variance)
    ntk = blocked_kernel_regression(x, y, x_test, arch=ARCH, kernel="ntk", ridge=1e-4, edge=EDGE)
    assert ntk.variance is None
    assert relative(ntk.mean, dense_reference(x, y, x_test, "ntk", 1e-4)[0]) < 1e-9


def test_matches_kernel_regression_with_several_targets_and_small_ridge():
    x, x_test = sphere(450, d=4, seed=2), sphere(30, d=4, seed=3)
    y = np.stack([target(x), x[:, 3]], axis=1)
    want = kernel_regression(x, y, x_test, arch=ARCH, ridge=1e-8)
    got = blocked_kernel_regression(x, y, x_test, arch=ARCH, ridge=1e-8, edge=EDGE)
    assert got.mean.shape == (30, 2)
    assert relative(got.mean, want.mean) < 1e-8


def test_coincident_points_are_merged_exactly():
    """c copies of a point are one point seen c times: the same as the dense solve on the copies
    (points on one sphere, so the mean diagonal is the same with or without the copies)."""
    x, x_test = sphere(330, seed=4), sphere(25, seed=5)
    copies = np.concatenate([x, x[[3, 3, 70, 200]]])
    y = target(copies)
    mean, variance = dense_reference(copies, y, x_test, "nngp", 1e-3)
    got = blocked_kernel_regression(copies, y, x_test, arch=ARCH, kernel="nngp", ridge=1e-3, return_variance=True,
                                    edge=EDGE)
    assert_matches(got, mean, variance)
    y_bad = y.copy()
    y_bad[-1] += 1.0
    with pytest.raises(ValueError, match="coincide"):
        blocked_kernel_regression(copies, y_bad, x_test, arch=ARCH, edge=EDGE)


def test_gram_level_with_multiplicity_matches_gram_regression():
    rng = np.random.default_rng(6)
    g = rng.standard_normal((260, 40))
    k = g @ g.T * 1e3  # rank 40, scaled: the ridge makes it positive definite
    k_test = rng.standard_normal((17, 40)) @ g.T * 1e3
    y, c = rng.standard_normal((260, 3)), rng.integers(1, 4, 260).astype(float)
    diag = np.einsum("ij,ij->i", k_test, k_test) / 1e3 + 1e4
    want = gram_regression(k, k_test, y, ridge=1e-2, k_test_diag=diag, multiplicity=c)
    store = np.tril(k) + np.triu(np.full(k.shape, np.nan), 1)  # only the lower triangle is read
    got = blocked_gram_regression(store, k_test, y, edge=EDGE, ridge=1e-2, k_test_diag=diag, multiplicity=c)
    assert relative(got.mean, want.mean) < 1e-10
    assert relative(got.variance, want.variance) < 1e-10
    with pytest.raises(ValueError, match=r"not positive definite.*increase ridge"):
        blocked_gram_regression(k.copy(), k_test, y, edge=EDGE, ridge=0.0)


def test_gram_in_a_zarr_array_filled_by_regions(tmp_path):
    x, x_test = sphere(400, seed=7), sphere(20, seed=8)
    y = target(x)
    made = []

    def gram(points, progress):
        z = zarr.create_array(store=tmp_path / "k.zarr", shape=(len(points),) * 2, chunks=(EDGE, EDGE),
                              dtype="float64", compressors=None, fill_value=np.nan, zarr_format=3)
        fill_gram(points, z, arch=ARCH, kernel="ntk", edge=EDGE, progress=progress)
        made.append(z)
        return z

    whole = analytic_kernels(x, arch=ARCH, kernels=("ntk",))["ntk"]
    check = zarr.create_array(store=tmp_path / "check.zarr", shape=whole.shape, chunks=(EDGE, EDGE),
                              dtype="float64", fill_value=np.nan, zarr_format=3)
    fill_gram(x, check, arch=ARCH, kernel="ntk", edge=EDGE)
    lower = np.tril(np.ones(whole.shape, bool))
    assert np.abs(check[...][lower] - whole[lower]).max() < 1e-14 * np.abs(whole).max()
    assert np.isnan(check[0, EDGE])  # only the lower triangle is written
    messages = []
    got = blocked_kernel_regression(x, y, x_test, arch=ARCH, ridge=1e-6, edge=EDGE, gram=gram,
                                    report=lambda fraction, message: messages.append((fraction, message)))
    assert relative(got.mean, kernel_regression(x, y, x_test, arch=ARCH, ridge=1e-6).mean) < 1e-9
    assert made and np.abs(np.triu(made[0][:EDGE, :EDGE], 1)).max() == 0  # the store now holds the factor
    phases = [message.split(":")[0] for _, message in messages]
    assert phases[0] == "training Gram" and phases[-1] == "solves"
    assert set(phases) == {"training Gram", "scaling", "factor", "solves"}
    assert [f for f, _ in messages] == sorted(f for f, _ in messages) and messages[-1][0] == pytest.approx(1.0)


def test_cancellation():
    x = sphere(300)
    polls = []

    def stop():
        polls.append(1)
        return len(polls) > 40

    with pytest.raises(Cancelled):
        blocked_kernel_regression(x, target(x), x[:5], arch=ARCH, edge=EDGE, should_stop=stop)


def test_variance_needs_nngp():
    x = sphere(20)
    with pytest.raises(ValueError, match="nngp"):
        blocked_kernel_regression(x, target(x), x, arch=ARCH, return_variance=True)
