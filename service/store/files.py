"""The files half of a job store (either store): a job's input arrays and its result under
data_dir/jobs/<id[:2]>/<id>/: input-<name>.npy (the request's arrays, kept so queued jobs survive a
restart), staging-*/ while a run writes, and result/ (meta.json, one <name>.npy per array (or a Zarr
<name>.zarr/ for a Gram matrix filled across the workers),
result.json once rendered: `render_json`). The data directory is shared by the API processes and the workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import orjson


class DataFiles:
    """The files half of a store: a job's inputs and result under data_dir/jobs/<id[:2]>/<id>/."""

    root: Path

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id[:2] / job_id

    def write_inputs(self, job_id: str, inputs: dict[str, np.ndarray]) -> int:
        """The request's arrays as input-<name>.npy; the folder's size in bytes."""
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in inputs.items():
            _save_atomic(folder / f"input-{name}.npy", array)
        return _size(folder)

    def inputs(self, job_id: str) -> dict[str, np.ndarray]:
        return {p.name[len("input-"):-len(".npy")]: np.load(p) for p in self.job_dir(job_id).glob("input-*.npy")}

    def staging(self, job_id: str) -> Path:
        """A fresh folder for a run's result files; `commit` makes it the result."""
        path = self.job_dir(job_id) / f"staging-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def publish(self, job_id: str, staging: Path, meta: dict[str, Any]) -> int:
        """The staging folder becomes the result (the files half of `commit`); the job's size in bytes."""
        (staging / "meta.json").write_text(json.dumps(meta))
        final = self.result_dir(job_id)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        return _size(self.job_dir(job_id))

    def commit(self, job_id: str, staging: Path, meta: dict[str, Any]) -> None:
        """The staging folder becomes the result, and the job is marked succeeded."""
        size = self.publish(job_id, staging, meta)
        self.update(job_id, status="succeeded", progress=1.0, message="done", finished_at=time.time(),
                    size_bytes=size, accessed_at=time.time())

    def update(self, job_id: str, **values: Any) -> None:
        raise NotImplementedError  # the record half: each store's own

    def result_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result"


def _size(folder: Path) -> int:
    """Bytes of the files under folder. A file or folder another writer renames meanwhile (a
    temporary file of a concurrent create of the same job, in this process or another replica) is
    not counted (os.walk skips folders that vanish)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


def _save_atomic(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(temporary, "wb") as f:
        np.save(f, array)
    temporary.replace(path)


def open_memmaps(folder: Path, names: Iterable[str], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """.npy files mapped for writing, their space reserved first: a full disk is an ENOSPC
    here, not a SIGBUS when a page is written later."""
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        path = folder / f"{name}.npy"
        arrays[name] = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=shape)
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return arrays


def create_chunked(folder: Path, names: Iterable[str], shape: tuple[int, int], chunks: tuple[int, int]) -> None:
    """<name>.zarr: a Zarr v3 array per name, float64, uncompressed, chunk = one tile task's region.
    Unwritten chunks read NaN, so a tile that never landed fails the worker's finite check."""
    import zarr

    for name in names:
        zarr.create_array(store=folder / f"{name}.zarr", shape=shape, chunks=chunks, dtype="float64",
                          compressors=None, fill_value=np.nan, zarr_format=3)


def is_chunked(folder: Path, name: str) -> bool:
    """Whether result array `name` in `folder` is a Zarr array (<name>.zarr, filled across the workers)."""
    return (folder / f"{name}.zarr").is_dir()


def open_array(folder: Path, name: str) -> Any:
    """A result array for reading, without loading it: the memory map of <name>.npy, or the Zarr
    array <name>.zarr (a Gram matrix filled across the workers); either slices to a numpy array.
    FileNotFoundError when neither exists."""
    if is_chunked(folder, name):
        import zarr

        return zarr.open_array(folder / f"{name}.zarr", mode="r")
    return np.load(folder / f"{name}.npy", mmap_mode="r")


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save with the file's space reserved first: a full disk is an ENOSPC here (np.save's own
    short write raises an OSError without an errno)."""
    with open(path, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, array.nbytes + 4096)  # the data and more than any header
        np.save(f, array)
        f.truncate()


RESULT_JSON = "result.json"  # a result's JSON form, in its result directory once rendered


def render_json(values: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """A result's JSON form: its scalar values and each array as nested lists, by orjson (about
    15x Python's json on float arrays). Every number is finite: the worker checked."""
    body = values | {name: serializable(array) for name, array in arrays.items()}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def serializable(array: np.ndarray) -> np.ndarray | float:
    """A float64 array as orjson takes it (C-contiguous); a 0-d one as its number."""
    array = np.asarray(array, dtype=np.float64)
    return float(array) if array.ndim == 0 else np.ascontiguousarray(array)
