"""Filling Gram matrices tile by tile: a bounded window of tiles in flight on a thread pool,
the symmetric case mirrored, progress and cancellation between tiles. Shared by the dense
(`engine.analytic`) and convolutional (`engine.conv.analytic`) kernels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

import numpy as np
from numpy.typing import DTypeLike

Block = tuple[int, int]  # a tile's first row and first column
Progress = Callable[[int, int], None]
T = TypeVar("T")


class Cancelled(Exception):
    """A long computation stopped because its caller asked it to."""


def check_outputs(out: Mapping[str, np.ndarray] | None, kernels: tuple[str, ...], shape: tuple[int, int],
                  dtype: DTypeLike = np.float64) -> dict[str, np.ndarray]:
    """{name: (n1, n2) array} to fill: `out`'s arrays (checked), or new ones of `dtype`."""
    if out is None:
        return {k: np.empty(shape, dtype=dtype) for k in kernels}
    missing = [k for k in kernels if k not in out]
    if missing:
        raise ValueError(f"out is missing arrays for kernels {missing}")
    for k in kernels:
        if tuple(out[k].shape) != shape:
            raise ValueError(f"out[{k!r}] must have shape {shape}, got {tuple(out[k].shape)}")
    return {k: out[k] for k in kernels}


def fill_tiles(blocks: Sequence[Block], compute: Callable[[Block], tuple[Block, dict[str, np.ndarray]]],
               result: Mapping[str, np.ndarray], *, symmetric: bool, workers: int,
               progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
               what: str = "the kernels") -> None:
    """Write each block's tiles, compute(block) -> (block, {name: (ni, nj)}), into `result`.

    symmetric: the blocks are the upper triangle of a symmetric matrix; each is mirrored (a
    diagonal block's upper triangle onto its lower one: exactly symmetric). At most 2 x workers
    tiles are in flight, so finished tiles never pile up in memory. progress(done, total) after
    each tile; should_stop() polled after each, raising `Cancelled` (naming `what`) when true.
    """
    todo = iter(blocks)
    with _Pool(workers if len(blocks) > 1 else 1) as pool:
        pending = deque(pool.submit(compute, block) for block in islice(todo, 2 * pool.workers))
        done = 0
        while pending:
            (i, j), tiles = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(compute, following))
            for name, values in tiles.items():
                ni, nj = values.shape
                if symmetric and i == j:
                    values = np.triu(values) + np.triu(values, 1).T
                result[name][i:i + ni, j:j + nj] = values
                if symmetric and i != j:
                    result[name][j:j + nj, i:i + ni] = values.T
            done += 1
            if progress is not None:
                progress(done, len(blocks))
            if should_stop is not None and should_stop():
                for future in pending:
                    future.cancel()
                raise Cancelled(f"{what} was cancelled")


class _Pool:
    """A ThreadPoolExecutor, or (one worker: a single tile costs less than starting threads)
    its submit run in the calling thread."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        future: Future[T] = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
