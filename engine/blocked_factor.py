"""The Cholesky factor of a matrix too large for memory, block by block, and the solves with it.

The matrix lives in any 2-D array that slices to NumPy arrays for reading and takes NumPy arrays
for writing (a Zarr array whose chunks are `edge` x `edge`, a NumPy memmap, a NumPy array): blocks
[i0:i1, j0:j1] on a grid of `edge` rows and columns (the last ones shorter when n is not a multiple
of edge) are read, updated and written back, so only a few blocks are ever in memory. Only the
lower triangle (diagonal blocks included) is read or written; the blocks above the diagonal are
left as they were.

The factor is left-looking (Golub & Van Loan, "Matrix Computations", 4th ed., sec. 4.2.9): block
column j is A_jj - sum_k L_jk L_jk^T factored by LAPACK's dpotrf, then each block below it,
(A_ij - sum_k L_ik L_jk^T) L_jj^-T by BLAS's dtrsm. Each block of A is read once and written once;
each update reads two blocks of L. n^3 / 3 flops, as the unblocked factor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
from scipy.linalg import blas, lapack

from engine.tiling import Cancelled

Progress = Callable[[int, int], None]


class NotPositiveDefinite(np.linalg.LinAlgError):
    """The matrix is not (numerically) positive definite: the pivot of `row` (0-based, in block row
    `block`) was not positive after the updates."""

    def __init__(self, block: int, row: int):
        super().__init__(f"the matrix is not positive definite: its Cholesky factor fails at row {row}, in block "
                         f"row {block} (the leading {row + 1} x {row + 1} minor's pivot is not positive)")
        self.block, self.row = block, row


def block_grid(n: int, edge: int) -> list[tuple[int, int]]:
    """The block grid's (start, end) along one side of an n x n matrix."""
    if isinstance(edge, bool) or int(edge) != edge or edge < 1:
        raise ValueError(f"edge must be a whole number >= 1, got {edge!r}")
    return [(s, min(s + int(edge), n)) for s in range(0, n, int(edge))]


def _read(a: Any, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """A copy of a[rows, cols] as a C-ordered float64 array (never a view of `a`)."""
    return np.array(a[rows[0]:rows[1], cols[0]:cols[1]], dtype=np.float64, order="C")


def _square(a: Any, name: str) -> int:
    shape = tuple(a.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be a square 2-D array, got shape {shape}")
    return int(shape[0])


def _stop(should_stop: Callable[[], bool] | None, what: str) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled(f"{what} was cancelled")


def blocked_cholesky(a: Any, edge: int, *, progress: Progress | None = None,
                     should_stop: Callable[[], bool] | None = None) -> None:
    """Factor the symmetric positive-definite (n, n) `a` in place: its lower triangle becomes L, with
    a = L L^T (the diagonal blocks' upper triangles are zeroed; the blocks above them are left as they
    were, and only the lower triangle of `a` is read).

    a: a 2-D array supporting a[i0:i1, j0:j1] reads (to NumPy) and writes (a Zarr array of chunk edge
    `edge`, a memmap, a NumPy array); float64. edge: the blocks' rows and columns. Memory: at most 5
    blocks of edge x edge float64 at once (the block being formed, two blocks of L, their product, the
    diagonal factor), plus what one read of `a` buffers.
    progress(done, total): at the start and after each block, in block operations (an update, a factor or a triangular
    solve: sum_j (T - j)(j + 1) of them for T block rows). should_stop() is polled after each update
    and, when true, raises `Cancelled` (`a` is then partly factored).
    Raises NotPositiveDefinite (a numpy LinAlgError) naming the row and block row whose pivot failed.
    """
    n = _square(a, "a")
    grid = block_grid(n, edge)
    count = len(grid)
    total, done = sum((count - j) * (j + 1) for j in range(count)), 0
    if progress is not None:
        progress(0, total)
    for jb, cols in enumerate(grid):
        diagonal = None
        for ib in range(jb, count):
            rows = grid[ib]
            block = _read(a, rows, cols)
            for kb in range(jb):
                left = _read(a, rows, grid[kb])
                right = left if ib == jb else _read(a, cols, grid[kb])
                block -= left @ right.T
                del left, right
                done += 1
                _stop(should_stop, "the blocked Cholesky factor")
            if ib == jb:
                factor, info = lapack.dpotrf(block, lower=1, clean=1, overwrite_a=1)
                if info > 0:
                    raise NotPositiveDefinite(jb, rows[0] + info - 1)
                if info < 0:
                    raise ValueError(f"dpotrf rejected its argument {-info}")
                diagonal = factor
                a[rows[0]:rows[1], cols[0]:cols[1]] = factor
            else:
                # X L_jj^T = block: a solve from the right with the transposed lower factor
                a[rows[0]:rows[1], cols[0]:cols[1]] = blas.dtrsm(1.0, diagonal, block, side=1, lower=1, trans_a=1)
            del block
            done += 1
            if progress is not None:
                progress(done, total)
            _stop(should_stop, "the blocked Cholesky factor")


def blocked_solve(factor: Any, b: Any, edge: int, *, trans: bool = False, overwrite_b: bool = False,
                  progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """x with L x = b (trans=False) or L^T x = b (trans=True), L the lower triangle of `factor`
    (`blocked_cholesky`'s result, read block by block on the same grid of `edge`).

    b: (n,) or (n, k), in memory; the result has its shape. overwrite_b: solve in b itself (a float64
    array) instead of a copy. Memory: 2 blocks of L besides b. progress(done, total) after each block of
    L read; should_stop() polled then (`Cancelled`).
    """
    n = _square(factor, "factor")
    x = np.asarray(b, dtype=np.float64) if overwrite_b else np.array(b, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[0] != n:
        raise ValueError(f"b must have shape ({n},) or ({n}, k) for a factor of {n} rows, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("b contains NaN or Inf")
    grid = block_grid(n, edge)
    columns = x.reshape(n, -1)  # a view: the solve happens in x
    order = range(len(grid) - 1, -1, -1) if trans else range(len(grid))
    total, done = len(grid) * (len(grid) + 1) // 2, 0
    for jb in order:
        j0, j1 = grid[jb]
        if trans:  # x_j = L_jj^-T (b_j - sum_{i > j} L_ij^T x_i)
            for i0, i1 in grid[jb + 1:]:
                columns[j0:j1] -= _read(factor, (i0, i1), (j0, j1)).T @ columns[i0:i1]
                done += 1
                _tick(progress, should_stop, done, total)
        diagonal = _read(factor, (j0, j1), (j0, j1))
        columns[j0:j1] = scipy.linalg.solve_triangular(diagonal, columns[j0:j1], lower=True, trans=1 if trans else 0,
                                                       check_finite=False)
        done += 1
        _tick(progress, should_stop, done, total)
        if not trans:  # then b_i -= L_ij x_j below
            for i0, i1 in grid[jb + 1:]:
                columns[i0:i1] -= _read(factor, (i0, i1), (j0, j1)) @ columns[j0:j1]
                done += 1
                _tick(progress, should_stop, done, total)
    return x


def blocked_cho_solve(factor: Any, b: Any, edge: int, *, progress: Progress | None = None,
                      should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """x with A x = b, A = L L^T factored by `blocked_cholesky` into `factor`: the forward solve, then the
    backward one. b: (n,) or (n, k) in memory. progress(done, total) over both solves' blocks."""
    def half(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda done, total: progress(offset * total + done, 2 * total)

    y = blocked_solve(factor, b, edge, progress=half(0), should_stop=should_stop)
    return blocked_solve(factor, y, edge, trans=True, overwrite_b=True, progress=half(1), should_stop=should_stop)


def _tick(progress: Progress | None, should_stop: Callable[[], bool] | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)
    _stop(should_stop, "the blocked triangular solve")
