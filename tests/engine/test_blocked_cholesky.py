"""The blocked Cholesky factor and its solves against SciPy's dense LAPACK (scipy.linalg.cholesky,
solve_triangular, cho_solve), on NumPy arrays, memmaps and Zarr arrays, n not a multiple of edge."""

import itertools

import numpy as np
import pytest
import scipy.linalg
import zarr

from engine import Cancelled, NotPositiveDefinite, blocked_cho_solve, blocked_cholesky, blocked_solve

N, EDGE = 203, 37  # 6 blocks, the last of 18 rows


def spd(n=N, seed=0):
    """A random symmetric positive-definite matrix, condition number about 1e4."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.logspace(0, 4, n)) @ q.T


def in_zarr(a, folder, edge=EDGE):
    z = zarr.create_array(store=folder / "a.zarr", shape=a.shape, chunks=(edge, edge), dtype="float64",
                          compressors=None, fill_value=np.nan, zarr_format=3)
    z[...] = a
    return z


def relative(got, want):
    return np.abs(got - want).max() / np.abs(want).max()


@pytest.mark.parametrize("store", ["numpy", "memmap", "zarr"])
def test_factor_matches_lapack(store, tmp_path):
    a = spd()
    want = scipy.linalg.cholesky(a, lower=True)
    if store == "numpy":
        held = a.copy()
    elif store == "memmap":
        held = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.float64, shape=a.shape)
        held[...] = a
    else:
        held = in_zarr(a, tmp_path)
    blocked_cholesky(held, EDGE)
    assert relative(np.tril(np.asarray(held[...])), want) < 1e-12


@pytest.mark.parametrize("edge", [1, 16, 64, N, 1000])
def test_any_edge(edge):
    a = spd(64, seed=1)
    held = a.copy()
    blocked_cholesky(held, edge)
    assert relative(np.tril(held), scipy.linalg.cholesky(a, lower=True)) < 1e-12


def test_reads_only_the_lower_triangle():
    a = spd()
    held = a.copy()
    for start in range(0, N, EDGE):  # NaN in every block above the diagonal blocks
        held[start:start + EDGE, start + EDGE:] = np.nan
    blocked_cholesky(held, EDGE)
    assert relative(np.tril(held), scipy.linalg.cholesky(a, lower=True)) < 1e-12
    assert np.isnan(held[0, EDGE])  # left as it was
    assert np.all(np.triu(held[:EDGE, :EDGE], 1) == 0)  # the diagonal blocks' upper triangles are zeroed


def test_not_positive_definite_names_the_row_and_block():
    a = np.eye(N) * 2.0
    a[150, 150] = -1.0
    with pytest.raises(NotPositiveDefinite, match="row 150, in block row 4") as caught:
        blocked_cholesky(a, EDGE)
    assert isinstance(caught.value, np.linalg.LinAlgError)
    assert (caught.value.row, caught.value.block) == (150, 4)
    singular = spd()
    v = np.linalg.eigh(singular)[1][:, 0]
    singular -= (v @ singular @ v + 1e-3) * np.outer(v, v)  # one negative eigenvalue, found late in the factor
    with pytest.raises(NotPositiveDefinite):
        blocked_cholesky(singular, EDGE)


@pytest.mark.parametrize("shape", [(N,), (N, 1), (N, 4)])
def test_triangular_solves_match_scipy(shape, tmp_path):
    a = spd()
    factor = in_zarr(a, tmp_path)
    blocked_cholesky(factor, EDGE)
    dense = scipy.linalg.cholesky(a, lower=True)
    b = np.random.default_rng(2).standard_normal(shape)
    for trans in (False, True):
        got = blocked_solve(factor, b, EDGE, trans=trans)
        assert got.shape == b.shape
        want = scipy.linalg.solve_triangular(dense, b, lower=True, trans=1 if trans else 0)
        assert relative(got, want) < 1e-12
    got = blocked_cho_solve(factor, b, EDGE)
    assert relative(got, scipy.linalg.cho_solve((dense, True), b)) < 1e-10  # condition 1e4
    assert relative(a @ got, b) < 1e-10


def test_overwrite_b_solves_in_place():
    a = spd()
    blocked_cholesky(held := a.copy(), EDGE)
    b = np.random.default_rng(3).standard_normal((N, 2))
    want = scipy.linalg.solve_triangular(scipy.linalg.cholesky(a, lower=True), b, lower=True)
    got = blocked_solve(held, b, EDGE, overwrite_b=True)
    assert got is b or np.shares_memory(got, b)
    assert relative(b, want) < 1e-12


def test_progress_and_cancellation():
    a = spd()
    seen = []
    blocked_cholesky(a.copy(), EDGE, progress=lambda done, total: seen.append((done, total)))
    total = sum((6 - j) * (j + 1) for j in range(6))
    assert seen[-1] == (total, total) and all(d1 < d2 for (d1, _), (d2, _) in itertools.pairwise(seen))
    polls = []

    def stop():
        polls.append(1)
        return len(polls) > 5

    with pytest.raises(Cancelled):
        blocked_cholesky(a.copy(), EDGE, should_stop=stop)
    blocked_cholesky(factor := a.copy(), EDGE)
    with pytest.raises(Cancelled):
        blocked_cho_solve(factor, np.ones(N), EDGE, should_stop=lambda: True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="square"):
        blocked_cholesky(np.ones((3, 4)), 2)
    with pytest.raises(ValueError, match="edge"):
        blocked_cholesky(np.eye(3), 0)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        blocked_solve(np.eye(3), np.ones(4), 2)
