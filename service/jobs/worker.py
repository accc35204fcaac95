"""What runs in the Dask worker processes: `run_job` claims a job in the store, runs its
operation's worker function (`service.operations.registry.RUNS`, which call the engine's JAX code),
checks the result and writes it (or the failure) back; progress and cancellation go through the
store as well (`service.jobs.watchdog`). Also the worker's start: JAX's compilation cache and the
warm-up.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import shutil
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import StorageFull, storage_full
from service.jobs.watchdog import Reporter, Watched, over_budget, watchdog
from service.logs import names_job
from service.operations.fields import Arrays
from service.operations.registry import RUNS
from service.operations.tiles import Tiling
from service.store.files import RESULT_JSON, open_array, render_json, save_npy
from service.store.open import open_store
from service.store.protocol import Store, StoreUnavailable
from service.store.sqlite import SQLiteStore

log = logging.getLogger("reskernel.worker")
_cache_lock = threading.Lock()
_cache_dir: list[Path] = []  # set once per worker process
_stores: dict[tuple[str, str | None, str], tuple[Store, int]] = {}  # (data_dir, url, prefix) -> (store, db inode)
JSON_NUMBERS = 65_536  # results of at most this many numbers get their JSON rendered by the worker


def compilation_cache(data_dir: str) -> Path:
    """Turn on JAX's persistent compilation cache under data_dir/jax-cache (once per process),
    so a restarted worker compiles nothing it compiled before."""
    with _cache_lock:
        if not _cache_dir:
            from engine.compilation import enable_compilation_cache

            _cache_dir.append(enable_compilation_cache(Path(data_dir) / "jax-cache"))
        return _cache_dir[0]


def worker_store(data_dir: str, url: str | None = None, prefix: str = "reskernel") -> Store:
    """This process's store (`service.store.open.open_store`): opened once and shared by its jobs and
    the watchdog (opening one costs more than a small job's maths); a SQLite store is opened
    again if its file was replaced."""
    key = (data_dir, url or None, prefix)
    with _cache_lock:
        store, inode = _stores.get(key, (None, -1))
        current = _database_inode(store) if isinstance(store, SQLiteStore) else inode
        if store is None or current != inode:
            if store is not None:
                store.close()
            store = open_store(data_dir, url, prefix)
            _stores[key] = store, _database_inode(store) if isinstance(store, SQLiteStore) else 0
        return store


def _database_inode(store: SQLiteStore) -> int:
    try:
        return os.stat(store.path).st_ino
    except FileNotFoundError:
        return -2


def prepare(data_dir: str, warm: bool = True) -> threading.Thread:
    """At worker start: the compilation cache and (warm=True) `warm_up`, in a background
    thread, so the worker is ready at once and jobs run while it warms."""
    def run() -> None:
        compilation_cache(data_dir)
        if warm:
            warm_up()

    thread = threading.Thread(target=run, name="reskernel-warm-up", daemon=True)
    thread.start()
    return thread


def warm_up() -> None:
    """Compile, or load from the cache, the kernel families small requests use: ReLU ResNet
    and MLP, a Gram matrix of up to 16 points, the smoothness request's 4096 x 6 and 6 x 6
    (any alpha, sigma or depth reuses them: those are values, not part of the compiled code)."""
    from engine import Architecture, analytic_kernels, circle_grid, circle_points

    start = time.perf_counter()
    grid, train = circle_points(circle_grid(4096)), circle_points(np.linspace(-np.pi, np.pi, 6))
    try:
        for kind in ("resnet", "mlp"):
            arch = Architecture(kind, 5)
            analytic_kernels(train, arch=arch)
            analytic_kernels(grid, train, arch=arch)
    except Exception:  # a warm-up failure must never take the worker down
        log.exception("warm-up failed")
        return
    log.info("warm-up done in %.1f s", time.perf_counter() - start)


def _failure(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"status": status, "title": title, "detail": detail}


def _non_finite(value: Any, where: str = "") -> list[str]:
    """Paths of the non-finite numbers in a JSON-like value (dicts, lists, floats)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where or "value"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{where}.{i}")]
    return []


def _finish(folder: Path, meta: dict[str, Any], arrays: Arrays) -> dict[str, Any]:
    """Check every number is finite, write the arrays, and describe the result; a small one's
    JSON (`service.store.files.render_json`) is written here too, so the API only sends it."""
    listing, checked = {}, {}
    for name, value in arrays.items():
        array = np.asarray(value, dtype=np.float64)
        if not np.isfinite(array).all():
            raise ArithmeticError(f"'{name}' overflowed float64 (non-finite values): reduce depth or the sigmas")
        checked[name] = array
    # the arrays an operation wrote to files itself: memmaps, and Zarr arrays filled across the workers
    for path in [*folder.glob("*.npy"), *folder.glob("*.zarr")]:
        array = open_array(folder, path.stem)
        rows = max(1, 2**24 // max(1, math.prod(array.shape[1:])))  # 16 M numbers at a time: bounded memory
        if not all(np.isfinite(array[i:i + rows]).all() for i in range(0, array.shape[0], rows)):
            raise ArithmeticError(f"'{path.stem}' overflowed float64 (non-finite values): reduce depth or the sigmas")
        listing[path.stem] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    bad = _non_finite(meta)
    if bad:
        raise ArithmeticError(f"{', '.join(bad[:5])} overflowed float64 (non-finite values): reduce depth, the "
                              "sigmas or the size of the targets")
    for name, array in checked.items():
        save_npy(folder / f"{name}.npy", array)
        listing[name] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    listing = dict(sorted(listing.items()))
    if len(listing) == len(checked) and sum(a.size for a in checked.values()) <= JSON_NUMBERS:
        (folder / RESULT_JSON).write_bytes(render_json(meta, {name: checked[name] for name in listing}))
    return {"values": meta, "arrays": listing}


@names_job
def run_job(job_id: str, operation: str, params: dict[str, Any], data_dir: str, max_attempts: int,
            cancel_grace_s: float = 10.0, store_url: str | None = None, store_prefix: str = "reskernel",
            lease_s: float = 30.0, ticket: str = "", budget_s: float | None = None,
            tiling: tuple[int, int, int] | None = None) -> str:
    """Run one job to its end under its dispatch `ticket`; returns the final status. Never
    raises for the job's own errors. A job still running `budget_s` seconds after its start (the
    admission's compute budget) is stopped and fails, naming the budget (`watchdog.over_budget`).
    The job's input arrays are read from the store (they never travel through Dask). While the
    store does not answer nothing can be recorded: the job is left to its lease (it lapses, and
    the job is re-queued). `tiling`: (entries, edge, memory_bytes) of `service.operations.tiles.Tiling`."""
    compilation_cache(data_dir)
    store = worker_store(data_dir, store_url, store_prefix)
    try:
        if store.claim(job_id, max_attempts, ticket, lease_s) is None:
            return "skipped"
        report = Reporter(store, job_id, tiling=None if tiling is None else Tiling(*tiling))
        with watchdog().watching(store, job_id, report, cancel_grace_s, ticket, lease_s, budget_s) as watched:
            return _run(store, job_id, operation, params, report, watched)
    except StoreUnavailable:
        log.warning("job %s: the store does not answer; the job is re-queued when its lease lapses", job_id)
        return "store unavailable"


def _run(store: Store, job_id: str, operation: str, params: dict[str, Any], report: Reporter, watched: Watched) -> str:
    """A claimed job's run: its result committed, or its failure or cancellation recorded."""
    from engine import Cancelled

    folder = None
    try:
        folder = store.staging(job_id)
        meta, arrays = RUNS[operation](params, store.inputs(job_id), folder, report)
        if report.should_stop():
            raise Cancelled(f"{operation} was cancelled")
        store.commit(job_id, folder, _finish(folder, meta, arrays))
        return "succeeded"
    except BaseException as exc:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, StoreUnavailable):
            raise
        if watched.superseded:  # re-queued elsewhere: the job is that run's to record
            return "superseded"
        if watched.over_budget and watched.budget_s is not None:
            error = over_budget(watched.budget_s, time.monotonic() - watched.since)
            store.update(job_id, status="failed", error=error, message=error["title"], finished_at=time.time())
            return "failed"
        if isinstance(exc, Cancelled) or report.should_stop():
            if store.get(job_id) is not None:
                store.update(job_id, status="canceled", message="canceled", finished_at=time.time())
            return "canceled"
        if isinstance(exc, (ValueError, ArithmeticError, np.linalg.LinAlgError)):
            error = _failure(422, "Invalid input", str(exc))
        elif isinstance(exc, StorageFull):  # the job found too little disk for what it needs, and said so
            error = _failure(507, "Insufficient storage", exc.detail)
        elif storage_full(exc):
            error = _failure(507, "Insufficient storage", "the service's data directory filled up while "
                             "the job ran; submit it again once space is freed")
        elif isinstance(exc, Exception):
            correlation = uuid.uuid4().hex
            log.error("job %s (%s) failed, correlation id %s:\n%s", job_id, operation, correlation,
                      traceback.format_exc())
            error = _failure(500, "Internal error", f"the job failed with an internal error (correlation id "
                             f"{correlation}); it is logged with that id")
        else:
            raise
        store.update(job_id, status="failed", error=error, message=error["title"], finished_at=time.time())
        return "failed"


def describe() -> dict[str, Any]:
    """Versions and the JAX backend, as a worker sees them."""
    import jax

    import engine

    with jax.enable_x64(True):
        x64 = bool(jax.numpy.zeros(1).dtype == np.float64)
    return {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
            "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "x64": x64,
            "numerics_version": engine.NUMERICS_VERSION, "pid": os.getpid()}
