"""Analytic NNGP and NTK Gram matrices of infinitely wide convolutional ResNets and CNNs.

An image pair's pixel-pair covariances mix only with themselves across layers
(`engine.conv.recursion`), so the Gram matrix is computed in tiles of image pairs, b1 x b2
images at a time with every pixel pair of each ("pool": (b1, b2, P, P) per tile, P the pixels
of an image; "flatten": (b1, b2, P)). A tile holds at most TILE_ENTRIES pixel pairs (one
image pair at least), so memory is bounded by tiles whatever N is; tile edges are powers of
two (few compilations), and the hyperparameters and the depth are traced values (a new
alpha or depth reuses the compiled code).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from itertools import islice

import jax
import numpy as np
from numpy.typing import ArrayLike

from engine.analytic import KERNELS, Cancelled, check_kernels
from engine.conv.architecture import ConvArchitecture, check_conv_points
from engine.conv import tiles
from engine.conv.recursion import tile

TILE_ENTRIES = tiles.TILE_ENTRIES  # pixel pairs per tile (tests lower it to cut many tiles)

Progress = Callable[[int, int], None]

__all__ = ["KERNELS", "TILE_ENTRIES", "Cancelled", "conv_kernels", "hyperparameters"]


def hyperparameters(arch: ConvArchitecture) -> tuple[np.ndarray, np.ndarray]:
    """The traced numbers of `arch`: ([sigma_w^2, sigma_b^2, (alpha sigma_v)^2], depth)."""
    numbers = np.array([arch.sigma_w**2, arch.sigma_b**2, (arch.alpha * arch.sigma_v) ** 2], np.float64)
    return numbers, np.asarray(arch.depth, np.int32)


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    """x with its first image repeated up to `size` images (every activation is defined there)."""
    if x.shape[0] == size:
        return x
    return np.concatenate([x, np.repeat(x[:1], size - x.shape[0], axis=0)])


def conv_kernels(
    x1: ArrayLike, x2: ArrayLike | None = None, *, arch: ConvArchitecture, kernels: Sequence[str] = KERNELS,
    progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
    out: Mapping[str, np.ndarray] | None = None, workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Analytic NNGP/NTK Gram matrices of the infinitely wide convolutional `arch`.

    x1: (N1, P, C) signals or (N1, H, W, C) images (channels last, matching arch.filter_size);
    x2: the same layout, None means x1 (only tiles on and above the diagonal are computed and
    mirrored: exactly symmetric). Returns {name: (N1, N2) float64} for each name in `kernels`.
    out: optional {name: preallocated (N1, N2) array} (e.g. a memmap), filled and returned.
    progress(done, total) is called as tiles finish; should_stop() is polled between tiles and,
    when true, stops the work with `Cancelled`. workers: threads (default: all cores).
    Peak memory: about ten (b1, b2, pixel pairs) complex128 arrays per thread, b1 b2 P^2 <=
    TILE_ENTRIES ("pool"; P for "flatten"), i.e. ~40 MiB a thread, besides the output.
    """
    if not isinstance(arch, ConvArchitecture):
        raise ValueError(f"arch must be a ConvArchitecture, got {type(arch).__name__}")
    x1 = check_conv_points(x1, arch, "x1")
    x2 = None if x2 is None else check_conv_points(x2, arch, "x2")
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
        raise ValueError(f"x1 and x2 must share the spatial shape and channels; got x1 {x1.shape}, x2 {x2.shape}")
    kernels = check_kernels(kernels)
    symmetric = x2 is None
    xb = x1 if x2 is None else x2
    n1, n2 = x1.shape[0], xb.shape[0]
    result = _outputs(out, kernels, (n1, n2))
    b1, b2 = tiles.tile_edges(n1, n2, tiles.pixel_pairs(arch.readout, x1.shape[1:-1]), symmetric, TILE_ENTRIES)
    blocks = [(i, j) for i in range(0, n1, b1) for j in range(0, n2, b2) if not symmetric or j >= i]
    hyper = hyperparameters(arch)
    static = {"family": arch.family, "kernels": kernels}

    def compute(block: tuple[int, int]) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
        i, j = block
        xi, xj = x1[i:i + b1], xb[j:j + b2]
        with jax.enable_x64(True):
            values = tile(_pad(xi, b1), _pad(xj, b2), *hyper, **static)
            return block, {k: np.asarray(v)[: len(xi), : len(xj)] for k, v in values.items()}

    workers = workers or os.cpu_count() or 1
    todo = iter(blocks)
    with ThreadPool(workers if len(blocks) > 1 else 1) as pool:
        pending = deque(pool.submit(compute, block) for block in islice(todo, 2 * pool.workers))
        done = 0
        while pending:
            (i, j), finished = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(compute, following))
            for name, values in finished.items():
                ni, nj = values.shape
                if symmetric and i == j:  # mirror the upper triangle: exactly symmetric
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
                raise Cancelled("conv_kernels was cancelled")
    return result


def _outputs(out: Mapping[str, np.ndarray] | None, kernels: tuple[str, ...],
             shape: tuple[int, int]) -> dict[str, np.ndarray]:
    if out is None:
        return {k: np.empty(shape) for k in kernels}
    missing = [k for k in kernels if k not in out]
    if missing:
        raise ValueError(f"out is missing arrays for kernels {missing}")
    for k in kernels:
        if tuple(out[k].shape) != shape:
            raise ValueError(f"out[{k!r}] must have shape {shape}, got {tuple(out[k].shape)}")
    return {k: out[k] for k in kernels}


class ThreadPool:
    """A ThreadPoolExecutor, or (one worker) its submit run in the calling thread."""

    def __init__(self, workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def submit(self, fn: Callable[..., object], *args: object):  # type: ignore[no-untyped-def]
        from concurrent.futures import Future

        if self._pool is not None:
            return self._pool.submit(fn, *args)
        future: Future[object] = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self) -> ThreadPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
