"""One Gram matrix across the Dask cluster: a kernels job of at least `Tiling.entries` entries,
on a cluster of two workers or more, is split into tile tasks, one per chunk of a Zarr array in
the job's staging folder (chunk = tile, `edge` x `edge` entries rounded to the engine's tiles).

The job's own task (on one worker) submits the tasks and waits, seceded, so its thread computes
tiles too; every worker computes part of the matrix. A symmetric request computes the tiles on and
above the diagonal and writes each off-diagonal one twice (itself and its transpose). A tile
writes whole chunks, so a tile computed again (its worker died: Dask runs it elsewhere) writes
the same bytes again and nothing is counted twice. Progress is tiles done / tiles; a stop asked
cancels the pending tiles and waits for the running ones before the folder goes.
Each tile task recomputes the plan (`engine.GramPlan`, from the points' norms, O(N d)) from the
points saved in the folder: the same tiles, the same numbers, as the one-process matrix.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import StorageFull
from service.operations.fields import Progress
from service.store.files import create_chunked, open_array

SCRATCH_MARGIN = 256 * 2**20  # free disk kept beyond a scratch Gram's chunks
POINTS_FILES = {"x": "tiles-x.npy", "x2": "tiles-x2.npy"}  # the points the tile tasks read, removed at the end


@dataclass(frozen=True)
class Tiling:
    """When and how a kernels job is split across the workers (RESKERNEL_DISTRIBUTE_ENTRIES,
    RESKERNEL_TILE_EDGE), and the worker's memory budget (RESKERNEL_MAX_MEMORY_BYTES): an exact
    regression whose Gram would not fit in it runs out of core, in Zarr chunks of `edge`."""

    entries: int = 16_777_216  # N1 x N2 from which a Gram matrix is split (4096^2); 0: never
    edge: int = 2048  # a tile task's rows and columns (rounded up to the engine's tiles)
    memory_bytes: int | None = None  # the worker's memory budget; None: not known (everything in memory)

    def splits(self, shape: tuple[int, int], workers: int) -> bool:
        """Whether a (N1, N2) matrix is split: large enough, and more than one worker to share it (one
        worker computes it faster in one process, on all its cores)."""
        return 0 < self.entries <= shape[0] * shape[1] and workers > 1


def cluster_workers() -> int:
    """The workers of the Dask cluster this task runs in (0: not in a Dask worker)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return 0
    return len(worker.client.nthreads())


def regions(n1: int, n2: int, rows: int, cols: int, symmetric: bool) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The tile tasks' regions ((a, b), (c, d)) of an (n1, n2) matrix; symmetric: on or above the diagonal."""
    return [((a, min(a + rows, n1)), (c, min(c + cols, n2))) for a in range(0, n1, rows) for c in range(0, n2, cols)
            if not symmetric or c >= a]


def distributed_kernels(params: dict[str, Any], inputs: dict[str, np.ndarray], folder: Path, report: Progress,
                        edge: int) -> dict[str, Any]:
    """A kernels job's matrices as <kernel>.zarr in `folder`, filled across the cluster; the result's values."""
    def progress(done: int, total: int) -> None:
        report(done / total, f"{done}/{total} tiles")

    return distributed_gram(folder, inputs["x"], inputs.get("x2"), params["architecture"], params["kernels"], edge,
                            progress, report.should_stop)


def distributed_gram(folder: Path, x: np.ndarray, x2: np.ndarray | None, architecture: dict[str, Any],
                     kernels: list[str], edge: int, progress: Callable[[int, int], None],
                     should_stop: Callable[[], bool], lower: bool = False) -> dict[str, Any]:
    """Fill <kernel>.zarr in `folder` with K(x, x2) by tile tasks on the cluster this task runs in:
    {"shape", "tiles", "tile_shape"}. progress(done, total) after each tile; should_stop() polled
    then (true: the pending tiles are cancelled, the running ones awaited, `engine.Cancelled` raised).
    lower: of a symmetric matrix, only the chunks on and below the diagonal are written (half the disk:
    all a Cholesky factor reads)."""
    from distributed import as_completed, wait, worker_client

    from engine import Architecture, Cancelled, GramPlan

    plan = GramPlan.of(x, x2, arch=Architecture.from_dict(architecture), kernels=kernels)
    rows = -(-max(edge, plan.b1) // plan.b1) * plan.b1  # a whole number of the engine's tiles
    cols = rows if plan.symmetric else -(-max(edge, plan.b2) // plan.b2) * plan.b2
    create_chunked(folder, plan.kernels, plan.shape, (rows, cols))
    for name, array in (("x", x), ("x2", x2)):
        if array is not None:
            np.save(folder / POINTS_FILES[name], array)
    todo = regions(*plan.shape, rows, cols, plan.symmetric)
    params = {"architecture": architecture, "kernels": list(plan.kernels), "lower": lower}
    call = uuid.uuid4().hex[:12]  # the tasks' keys: unique to this matrix across the cluster
    try:
        with worker_client(separate_thread=True) as client:
            futures = [client.submit(fill_region, str(folder), params, a, c, key=f"tile-{call}-{a[0]}-{c[0]}",
                                     pure=False) for a, c in todo]
            for done, _ in enumerate(as_completed(futures), start=1):
                progress(done, len(todo))
                if should_stop():
                    client.cancel(futures)
                    wait(futures)  # the running tiles end before the folder is removed
                    raise Cancelled("the tiles were cancelled")
            client.gather(futures)  # a tile that failed (its error) fails the job
    finally:
        for name in POINTS_FILES.values():
            (folder / name).unlink(missing_ok=True)
    return {"shape": list(plan.shape), "tiles": len(todo), "tile_shape": [rows, cols]}


def spread_gram(folder: Path, tiling: Tiling | None, architecture: dict[str, Any], kernel: str,
                should_stop: Callable[[], bool]) -> Callable[..., np.ndarray] | None:
    """engine.nystrom_regression's `gram` on a cluster of two workers or more: K(points, centres) of
    `kernel` in memory, filled by tile tasks (in a folder of its own under `folder`, removed after) when
    the matrix splits, else computed here; None where nothing would split."""
    workers = cluster_workers() if tiling is not None else 0
    if tiling is None or workers < 2:
        return None

    def gram(points: np.ndarray, centres: np.ndarray, progress: Callable[[int, int], None]) -> np.ndarray:
        from engine import Architecture, analytic_kernels

        if not tiling.splits((len(points), len(centres)), workers):
            return analytic_kernels(points, centres, arch=Architecture.from_dict(architecture), kernels=(kernel,),
                                    progress=progress, should_stop=should_stop)[kernel]
        part = folder / f"gram-{uuid.uuid4().hex[:8]}"
        part.mkdir()
        try:
            distributed_gram(part, points, centres, architecture, [kernel], tiling.edge, progress, should_stop)
            return np.asarray(open_array(part, kernel)[...])
        finally:
            shutil.rmtree(part, ignore_errors=True)

    return gram


def fill_region(folder: str, params: dict[str, Any], rows: tuple[int, int], cols: tuple[int, int]) -> None:
    """A tile task: entries [rows, cols] of each kernel into its Zarr array (and, below the
    diagonal of a symmetric matrix, their transpose; params["lower"]: the transpose alone)."""
    import zarr

    from engine import Architecture, GramPlan

    where = Path(folder)
    x = np.load(where / POINTS_FILES["x"], mmap_mode="r")
    x2 = np.load(where / POINTS_FILES["x2"], mmap_mode="r") if (where / POINTS_FILES["x2"]).exists() else None
    plan = GramPlan.of(x, x2, arch=Architecture.from_dict(params["architecture"]), kernels=params["kernels"])
    (a, b), (c, d) = rows, cols
    for name, values in plan.region(slice(a, b), slice(c, d), workers=1).items():
        # written whole, unchecked (zarr's default compares each chunk with the fill value first: 3x the write)
        array = zarr.open_array(where / f"{name}.zarr", mode="r+", config={"write_empty_chunks": True})
        if not (params.get("lower") and plan.symmetric and (a, b) != (c, d)):
            array[a:b, c:d] = values
        if plan.symmetric and (a, b) != (c, d):
            array[c:d, a:b] = np.ascontiguousarray(values.T)


def scratch_gram(folder: Path, tiling: Tiling, architecture: dict[str, Any], kernel: str,
                 should_stop: Callable[[], bool]) -> Callable[[np.ndarray, Callable[[int, int], None]], Any]:
    """engine.blocked_kernel_regression's `gram`: K(x, x) of `kernel` in a Zarr array <kernel>.zarr in
    `folder` (a scratch folder of its own, which the caller removes), chunks of `tiling.edge`, its lower
    triangle filled by tile tasks across the cluster when the matrix splits (`Tiling.splits`, two workers
    or more; chunks then rounded up to the engine's tiles), else region by region in this process
    (`engine.fill_gram`). The free disk is checked first: StorageFull naming what it needs."""
    def gram(x: np.ndarray, progress: Callable[[int, int], None]) -> Any:
        import zarr

        from engine import Architecture, fill_gram

        n, workers = len(x), cluster_workers()
        split = tiling.splits((n, n), workers)
        rows = -(-tiling.edge // 512) * 512 if split else tiling.edge  # at most what distributed_gram rounds to
        blocks = -(-n // rows)
        need = 8 * rows * rows * blocks * (blocks + 1) // 2  # the chunks on and below the diagonal
        free = shutil.disk_usage(folder).free
        if free < need + SCRATCH_MARGIN:
            raise StorageFull(f"the exact regression of {n} distinct training points runs out of core (its Gram does "
                              f"not fit the memory budget) and needs about {need / 2**30:.3g} GiB of scratch disk for "
                              f"its {n} x {n} training Gram, but the data directory has {free / 2**30:.3g} GiB free; "
                              "free space, or use solver 'nystrom'")
        if split:
            distributed_gram(folder, x, None, architecture, [kernel], tiling.edge, progress, should_stop, lower=True)
        else:
            create_chunked(folder, [kernel], (n, n), (tiling.edge, tiling.edge))
        array = zarr.open_array(folder / f"{kernel}.zarr", mode="r+", config={"write_empty_chunks": True})
        if not split:
            fill_gram(x, array, arch=Architecture.from_dict(architecture), kernel=kernel, edge=tiling.edge,
                      progress=progress, should_stop=should_stop)
        return array

    return gram
