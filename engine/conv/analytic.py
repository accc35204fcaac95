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
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
from numpy.typing import ArrayLike

from engine.analytic import KERNELS, check_kernels
from engine.conv import tiles
from engine.conv.architecture import ConvArchitecture, check_conv_points
from engine.conv.recursion import tile
from engine.tiling import Cancelled, Device, Progress, check_outputs, fill_tiles, place

TILE_ENTRIES = tiles.TILE_ENTRIES  # pixel pairs per tile (tests lower it to cut many tiles)


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
    devices: Sequence[Device] | None = None,
) -> dict[str, np.ndarray]:
    """Analytic NNGP/NTK Gram matrices of the infinitely wide convolutional `arch`.

    x1: (N1, P, C) signals or (N1, H, W, C) images (channels last, matching arch.filter_size);
    x2: the same layout, None means x1 (only tiles on and above the diagonal are computed and
    mirrored: exactly symmetric). Returns {name: (N1, N2) float64} for each name in `kernels`.
    out: optional {name: preallocated (N1, N2) array} (e.g. a memmap), filled and returned.
    progress(done, total) is called as tiles finish; should_stop() is polled between tiles and,
    when true, stops the work with `Cancelled`. workers: threads (default: all cores).
    devices: the JAX devices the tiles are spread over, round-robin (default: `jax.local_devices()`).
    Peak memory: about ten (b1, b2, pixel pairs) complex128 arrays per thread, b1 b2 P^2 <=
    TILE_ENTRIES ("pool"; P for "flatten"), i.e. ~30 MiB a thread, besides the output.
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
    result = check_outputs(out, kernels, (n1, n2))
    b1, b2 = tiles.tile_edges(n1, n2, tiles.pixel_pairs(arch.readout, x1.shape[1:-1]), symmetric, TILE_ENTRIES)
    blocks = [(i, j) for i in range(0, n1, b1) for j in range(0, n2, b2) if not symmetric or j >= i]
    hyper = hyperparameters(arch)
    static = {"family": arch.family, "kernels": kernels}

    def compute(block: tuple[int, int], device: Device | None) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
        i, j = block
        xi, xj = x1[i:i + b1], xb[j:j + b2]
        with jax.enable_x64(True):
            values = tile(*[place(a, device) for a in (_pad(xi, b1), _pad(xj, b2), *hyper)], **static)
            return block, {k: np.asarray(v)[: len(xi), : len(xj)] for k, v in values.items()}

    fill_tiles(blocks, compute, result, symmetric=symmetric, workers=workers or os.cpu_count() or 1,
               progress=progress, should_stop=should_stop, what="conv_kernels", devices=devices)
    return result
