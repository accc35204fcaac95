"""Exact kernel regression whose training Gram lives outside memory: in a chunked store (a Zarr
array, a memmap), scaled and factored there block by block (`engine.blocked_factor`).

The same regression as `engine.regression.gram_regression` with t = None: relative ridge (ridge x s
on the diagonal, s = mean(diag K)), the solve on M = C^1/2 (K / s) C^1/2 + ridge I (C: the
multiplicities of merged coincident points), the NNGP posterior variance k(x, x) - s ||L^-1 w k_x / s||^2
with M = L L^T. The GD time t needs an eigendecomposition of the whole Gram: not supported here.

Memory, in blocks of `edge` x `edge` float64 (B = 8 edge^2 bytes): the Gram's fill, one region and its
tiles in flight (about 2 B); the factor, 5 B (`blocked_cholesky`); the mean, one block of the cross Gram
K(x_test, x_train) of m x edge; the variance, test points in chunks of c = max(1, edge^2 // n) rows whose
cross Gram (n x c, at most B) is solved against L in place; besides the inputs and the n x k targets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from engine.analytic import KERNELS, GramPlan, analytic_diagonal
from engine.architectures import Architecture
from engine.blocked_factor import NotPositiveDefinite, block_grid, blocked_cho_solve, blocked_cholesky, blocked_solve
from engine.regression import Prediction, _finite, merge_coincident
from engine.tiling import Cancelled, fill_tiles

Report = Callable[[float, str], None]  # (fraction done, message)
Progress = Callable[[int, int], None]
Gram = Callable[[np.ndarray, Progress], Any]  # (merged training points (u, d), progress) -> the filled (u, u) array
# each phase's share of the progress fraction: the training Gram, the scaling, the factor, the solves
PHASES = {"training Gram": (0.0, 0.35), "scaling": (0.35, 0.4), "factor": (0.4, 0.85), "solves": (0.85, 1.0)}


def gram_region(plan: GramPlan, rows: tuple[int, int], cols: tuple[int, int], *,
                should_stop: Callable[[], bool] | None = None, workers: int | None = None) -> np.ndarray:
    """Entries [rows, cols] of the plan's one kernel, in memory, by its tiles started at (rows[0], cols[0])
    (any offsets: a tile running past the region is cut). A symmetric plan's region on the diagonal (rows ==
    cols) is mirrored within itself and takes the exact diagonal (`analytic_diagonal`), as
    `analytic_kernels` does; where the offsets fall on the plan's tile grid the numbers are its own."""
    (r0, r1), (c0, c1) = rows, cols
    (kernel,) = plan.kernels
    out = {kernel: np.empty((r1 - r0, c1 - c0), plan.dtype)}
    diagonal = plan.symmetric and rows == cols
    blocks = [(i, j) for i in range(r0, r1, plan.b1) for j in range(c0, c1, plan.b2)
              if not diagonal or j - c0 >= i - r0]

    def compute(block: tuple[int, int], device: Any = None) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
        (i, j), tiles = plan.compute(block, device)
        return (i - r0, j - c0), {kernel: tiles[kernel][: r1 - i, : c1 - j]}

    fill_tiles(blocks, compute, out, symmetric=diagonal, workers=workers or os.cpu_count() or 1,
               should_stop=should_stop, what="the out-of-core regression")
    if diagonal:
        values = analytic_diagonal(plan.x1[r0:r1], arch=plan.arch, kernels=plan.kernels, dtype=str(plan.dtype))
        np.fill_diagonal(out[kernel], values[kernel])
    return out[kernel]


def fill_gram(x: ArrayLike, out: Any, *, arch: Architecture, kernel: str = "ntk", edge: int = 2048,
              progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> None:
    """K(x, x) of `kernel` into `out` ((n, n), any array taking out[i0:i1, j0:j1] = block writes, e.g. a Zarr
    array of chunk edge `edge`), region by region of edge x edge: each region on or above the diagonal
    is computed in memory (`gram_region`) and written whole, below the diagonal (its transpose); only the
    lower triangle is written (all `blocked_cholesky` reads). progress(done, total) per region."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    plan = GramPlan.of(x, arch=arch, kernels=(kernel,))
    n = plan.shape[0]
    if tuple(out.shape) != (n, n):
        raise ValueError(f"out must have shape {(n, n)}, got {tuple(out.shape)}")
    grid = block_grid(n, edge)
    todo = [(a, c) for i, a in enumerate(grid) for c in grid[i:]]
    for done, (rows, cols) in enumerate(todo, start=1):
        values = gram_region(plan, rows, cols, should_stop=should_stop)
        out[cols[0]:cols[1], rows[0]:rows[1]] = values if rows == cols else np.ascontiguousarray(values.T)
        if progress is not None:
            progress(done, len(todo))


class CrossGram:
    """K(x1, x2) of one kernel computed on demand: cross[r0:r1, c0:c1] (slices of step 1) is that block,
    by the tiles of one `GramPlan` of the whole matrix (`gram_region`). shape: (n1, n2)."""

    def __init__(self, x1: ArrayLike, x2: ArrayLike, *, arch: Architecture, kernel: str,
                 should_stop: Callable[[], bool] | None = None):
        self.plan = GramPlan.of(x1, x2, arch=arch, kernels=(kernel,))
        self.shape = self.plan.shape
        self.should_stop = should_stop

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        (r0, r1, _), (c0, c1, _) = rows.indices(self.shape[0]), cols.indices(self.shape[1])
        return gram_region(self.plan, (r0, r1), (c0, c1), should_stop=self.should_stop)


def blocked_gram_regression(
    k_train: Any, k_test_train: Any, y_train: ArrayLike, *, edge: int, ridge: float = 1e-10,
    k_test_diag: ArrayLike | None = None, multiplicity: ArrayLike | None = None, report: Report | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Prediction:
    """`gram_regression` (t = None) with k_train held in a chunked store and overwritten: scaled and ridged
    in place, then factored in place (`blocked_cholesky`; its lower triangle ends as L).

    k_train: (n, n) symmetric, only its lower triangle read, any array sliced in blocks of `edge` (a Zarr
    array of that chunk edge, a memmap). k_test_train: (m, n), read in blocks of rows and columns (an
    array, or `CrossGram`, which computes them). y_train: (n,) or (n, k). k_test_diag: (m,); given, the
    posterior variance is returned. multiplicity: (n,) counts >= 1. report(fraction, message) per phase
    ("scaling", "factor", "solves"; fractions from PHASES); should_stop() polled between blocks (`Cancelled`).
    Raises ValueError when the scaled K + ridge C^-1 is not positive definite (naming the row).
    """
    n = int(k_train.shape[0])
    y = _finite(y_train, "y_train", None)
    if tuple(k_train.shape) != (n, n) or tuple(k_test_train.shape)[1:] != (n,) or y.shape[0] != n or y.ndim > 2:
        raise ValueError(f"shapes disagree: k_train {tuple(k_train.shape)}, k_test_train {tuple(k_test_train.shape)}, "
                         f"y_train {y.shape}; expected (n, n), (m, n), (n,) or (n, k)")
    if isinstance(ridge, bool) or not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    c = np.ones(n) if multiplicity is None else _finite(multiplicity, "multiplicity", 1)
    if c.shape != (n,) or np.any(c < 1):
        raise ValueError(f"multiplicity must be ({n},) counts >= 1, got shape {c.shape}")
    m = int(k_test_train.shape[0])
    tell = report or (lambda fraction, message: None)
    grid = block_grid(n, edge)
    scale = float(np.mean(np.concatenate([np.diagonal(np.asarray(k_train[a:b, a:b])) for a, b in grid])))
    if not np.isfinite(scale) or not scale > 0:
        raise ValueError(f"the training Gram matrix has mean diagonal {scale:.3g}: a kernel that vanishes, overflowed "
                         "or was not filled cannot be solved")
    w = np.sqrt(c)
    _scale_in_place(k_train, grid, w, scale, ridge, _phase(tell, "scaling", "blocks"), should_stop)
    try:
        blocked_cholesky(k_train, edge, progress=_phase(tell, "factor", "block operations"), should_stop=should_stop)
    except NotPositiveDefinite as exc:
        raise ValueError(f"the training Gram matrix plus ridge is not positive definite (scaled to unit mean "
                         f"diagonal, its Cholesky factor fails at row {exc.row}, block row {exc.block}; ridge "
                         f"{ridge:g}, relative); increase ridge") from None
    wy = w.reshape((n,) + (1,) * (y.ndim - 1)) * y
    steps = _Steps(_phase(tell, "solves", "steps"), 2 + (-(-m // _chunk(n, m, edge)) if k_test_diag is not None
                                                         else len(grid)))
    coef = blocked_cho_solve(k_train, wy, edge, should_stop=should_stop).reshape(n, -1)
    steps.tick(2)
    mean = np.zeros((m, coef.shape[1]))
    if k_test_diag is None:
        for a, b in grid:
            mean += k_test_train[:, a:b] @ ((w[a:b] / scale)[:, None] * coef[a:b])
            steps.tick()
        return Prediction(mean.reshape((m, *y.shape[1:])))
    diag = _finite(k_test_diag, "k_test_diag", 1)
    if diag.shape != (m,):
        raise ValueError(f"k_test_diag must have shape ({m},), got {diag.shape}")
    reduction = np.empty(m)
    rows = _chunk(n, m, edge)
    for a in range(0, m, rows):
        b = min(a + rows, m)
        weighted = np.ascontiguousarray((k_test_train[a:b, :] * (w / scale)).T)  # (n, c): w k_x / s
        mean[a:b] = weighted.T @ coef
        solved = blocked_solve(k_train, weighted, edge, overwrite_b=True, should_stop=should_stop)
        reduction[a:b] = np.einsum("ij,ij->j", solved, solved)
        del weighted, solved
        steps.tick()
    return Prediction(mean.reshape((m, *y.shape[1:])), np.maximum(diag - scale * reduction, 0.0))


def blocked_kernel_regression(
    x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, *, arch: Architecture, kernel: str = "ntk",
    ridge: float = 1e-10, return_variance: bool = False, edge: int = 2048, gram: Gram | None = None,
    report: Report | None = None, should_stop: Callable[[], bool] | None = None,
) -> Prediction:
    """`kernel_regression` (t = None) with the training Gram out of memory (`blocked_gram_regression`).

    x_train: (n, d); y_train: (n,) or (n, k); x_test: (m, d); coincident training points merged
    (`merge_coincident`). gram(x, progress): the (u, u) array holding K(x, x) of `kernel` for the u merged
    training points x, filled by it (the service's Zarr array, filled across its cluster); it is overwritten
    by the factor. None: a NumPy array in memory, filled by `fill_gram` (for tests and small n). The cross
    Gram K(x_test, x_train) is computed in blocks as the solves need them (`CrossGram`). report(fraction,
    message) per phase (PHASES); should_stop() polled between tiles and blocks (`Cancelled`).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if return_variance and kernel != "nngp":
        raise ValueError("return_variance needs kernel='nngp': the posterior variance is the NNGP's")
    merged = merge_coincident(x_train, y_train)
    x_test = _finite(x_test, "x_test", 2)
    tell = report or (lambda fraction, message: None)
    tell(PHASES["training Gram"][0], "training Gram: starting")
    progress = _phase(tell, "training Gram", "regions" if gram is None else "tiles")
    if gram is None:
        u = len(merged.x)
        k_train: Any = np.empty((u, u))
        fill_gram(merged.x, k_train, arch=arch, kernel=kernel, edge=edge, progress=progress, should_stop=should_stop)
    else:
        k_train = gram(merged.x, progress)
    if should_stop is not None and should_stop():
        raise Cancelled("the out-of-core regression was cancelled")
    cross = CrossGram(x_test, merged.x, arch=arch, kernel=kernel, should_stop=should_stop)
    diag = analytic_diagonal(x_test, arch=arch, kernels=(kernel,))[kernel] if return_variance else None
    return blocked_gram_regression(k_train, cross, merged.y, edge=edge, ridge=ridge, k_test_diag=diag,
                                   multiplicity=merged.multiplicity, report=tell, should_stop=should_stop)


def _chunk(n: int, m: int, edge: int) -> int:
    """Test points per variance pass: their n x c cross Gram fits one edge x edge block."""
    return max(1, min(m, int(edge) * int(edge) // n))


def _scale_in_place(k: Any, grid: list[tuple[int, int]], w: np.ndarray, scale: float, ridge: float,
                    progress: Progress, should_stop: Callable[[], bool] | None) -> None:
    """k's lower triangle <- C^1/2 (k / s) C^1/2 + ridge I, block by block (the diagonal blocks made whole
    from their lower triangles)."""
    todo = [(i, j) for i in range(len(grid)) for j in range(i + 1)]
    progress(0, len(todo))
    for done, (i, j) in enumerate(todo, start=1):
        (a, b), (c, d) = grid[i], grid[j]
        block = np.array(k[a:b, c:d], dtype=np.float64)
        if i == j:  # from its lower triangle alone (the store may hold no more, on another grid of chunks)
            block = np.tril(block) + np.tril(block, -1).T
        if not np.all(np.isfinite(block)):
            raise ValueError(f"the training Gram matrix has NaN or Inf in rows {a}-{b - 1}, columns {c}-{d - 1} "
                             "(a kernel that overflowed float64, or a block never written)")
        block *= (w[a:b] / scale)[:, None]
        block *= w[None, c:d]
        if i == j:
            block[np.diag_indices_from(block)] += ridge
        k[a:b, c:d] = block
        progress(done, len(todo))
        if should_stop is not None and should_stop():
            raise Cancelled("the out-of-core regression was cancelled")


def _phase(tell: Report, name: str, unit: str) -> Progress:
    """progress(done, total) of one phase as report(fraction, message), within the phase's share."""
    start, end = PHASES[name]
    return lambda done, total: tell(start + (end - start) * done / max(total, 1), f"{name}: {done}/{total} {unit}")


class _Steps:
    """The solves' progress, in steps (the two solves for the coefficients, then each block or chunk)."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total, self.done = progress, total, 0
        progress(0, total)

    def tick(self, steps: int = 1) -> None:
        self.done += steps
        self.progress(self.done, self.total)
