"""Filling Gram matrices tile by tile: a bounded window of tiles in flight on a thread pool,
spread round-robin over the local JAX devices, the symmetric case mirrored, progress and
cancellation between tiles. Shared by the dense (`engine.analytic`) and convolutional
(`engine.conv.analytic`) kernels. (JAX is imported only when devices are asked for.)
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
Device = Any  # a jax.Device; None: JAX's default device (arrays passed to jit as they are)
T = TypeVar("T")
A = TypeVar("A")


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


def tile_devices() -> list[Device]:
    """The devices tiles are spread over: this process's JAX devices (`jax.local_devices()`: the
    GPUs of a GPU host, else the CPU)."""
    import jax

    return list(jax.local_devices())


def spread_over(devices: Sequence[Device] | None) -> list[Device | None]:
    """The devices `fill_tiles` deals tiles to: `devices` as given, or (None) every local device;
    [None] (JAX's default device, arrays passed to jit as they are) where that is a single device."""
    if devices is None:
        local = tile_devices()
        return [None] if len(local) == 1 else local
    chosen = list(devices)
    if not chosen:
        raise ValueError("devices must name at least one device (or be None: every local device)")
    return chosen


def off_host(targets: Sequence[Device | None]) -> bool:
    """Whether the tiles run off the host's cores (a GPU or TPU; None: JAX's default backend)."""
    import jax

    return any((jax.default_backend() if d is None else getattr(d, "platform", "cpu")) != "cpu" for d in targets)


def place(array: A, device: Device | None) -> A:
    """`array` on `device` (`jax.device_put`), or unchanged for None. Call it where the tile's
    dtype is enabled (`jax.enable_x64` for float64: device_put would otherwise round to float32)."""
    if device is None:
        return array
    import jax

    return jax.device_put(array, device)


def fill_tiles(blocks: Sequence[Block],
               compute: Callable[[Block, Device | None], tuple[Block, dict[str, np.ndarray]]],
               result: Mapping[str, np.ndarray], *, symmetric: bool, workers: int,
               progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
               what: str = "the kernels", devices: Sequence[Device] | None = None,
               threaded_writes: bool | None = None) -> None:
    """Write each block's tiles, compute(block, device) -> (block, {name: (ni, nj)}), into `result`.

    devices: the tiles go round-robin over `spread_over(devices)` (None: every local device), with
    max(workers, devices) threads so that each device has tiles in flight; on one device, compute
    gets None or that device. symmetric: the blocks are the upper triangle of a symmetric matrix;
    each is mirrored (a diagonal block's upper triangle onto its lower one: exactly symmetric).
    threaded_writes: each thread writes the tiles it computed (None: where the tiles run off the host,
    `off_host`: the host's copies then bound the fill, and they run on every core); else the calling
    thread writes them, while the pool's threads keep the cores computing. At most 2 x threads tiles
    are in flight, so finished tiles never pile up in memory; on cancellation the tiles already running
    finish (and, threaded, are written).
    progress(done, total) after each tile; should_stop() polled after each, raising `Cancelled`
    (naming `what`) when true.
    """
    targets = spread_over(devices)
    dealt = ((block, targets[k % len(targets)]) for k, block in enumerate(blocks))
    threaded = off_host(targets) if threaded_writes is None else threaded_writes

    def write(block: Block, tiles: dict[str, np.ndarray]) -> None:  # the tiles are disjoint
        i, j = block
        for name, values in tiles.items():
            ni, nj = values.shape
            if symmetric and i == j:
                values = np.triu(values) + np.triu(values, 1).T
            result[name][i:i + ni, j:j + nj] = values
            if symmetric and i != j:
                result[name][j:j + nj, i:i + ni] = values.T

    def tile(block: Block, device: Device | None) -> tuple[Block, dict[str, np.ndarray]] | None:
        done = compute(block, device)
        if not threaded:
            return done
        write(*done)
        return None

    with _Pool(max(workers, len(targets)) if len(blocks) > 1 else 1) as pool:
        pending = deque(pool.submit(tile, *task) for task in islice(dealt, 2 * pool.workers))
        done = 0
        while pending:
            finished = pending.popleft().result()
            following = next(dealt, None)
            if following is not None:
                pending.append(pool.submit(tile, *following))
            if finished is not None:
                write(*finished)
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
