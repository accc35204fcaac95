"""Jobs: content-addressed ids, submission with de-duplication, waiting, cancellation,
recovery after a restart. Glue between the store and the executor; no maths here."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from typing import Any

import numpy as np
from distributed import Future

from engine import NUMERICS_VERSION
from service.errors import Conflict, JobNotFound, QueueFull
from service.executor import Executor
from service.schemas import ARRAY_FIELDS, Model
from service.settings import Settings
from service.store import ACTIVE, TERMINAL, Job, Store

log = logging.getLogger("reskernel")


def split_request(request: Model) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The request's scalar fields (JSON form, defaults filled in) and its arrays as float64."""
    params = request.model_dump(mode="json", exclude=set(ARRAY_FIELDS))
    inputs = {name: np.asarray(value, dtype=np.float64) for name in ARRAY_FIELDS
              if (value := getattr(request, name, None)) is not None}
    return params, inputs


def job_id(operation: str, params: dict[str, Any], inputs: dict[str, np.ndarray]) -> str:
    """SHA-256 of the canonical request: operation, parameters, each array's shape and
    float64 bytes, and the engine's numerics version."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"operation": operation, "params": params, "numerics": NUMERICS_VERSION,
                              "arrays": {k: list(v.shape) for k, v in sorted(inputs.items())}},
                             sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(inputs):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(inputs[name], dtype="<f8").tobytes())
    return digest.hexdigest()


class Jobs:
    def __init__(self, settings: Settings, store: Store, executor: Executor):
        self.settings, self.store, self.executor = settings, store, executor
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the executor, then re-queue what a previous run left queued or running."""
        self.executor.start()
        for job in self.store.active():
            if job.status == "running":
                self.store.update(job.id, status="queued", message="re-queued after a restart")
            self._dispatch(job.id, job.operation, job.params, self.store.inputs(job.id))

    def close(self) -> None:
        self.executor.close()

    def submit(self, operation: str, params: dict[str, Any], inputs: dict[str, np.ndarray]) -> tuple[Job, bool]:
        """The job for this request (scalar params, float64 input arrays), created and
        dispatched unless it exists; and whether its result was already there (a cache hit)."""
        key = job_id(operation, params, inputs)
        job = self.store.get(key)
        if job is not None and not _retryable(job) and not self._result_gone(job):
            self.store.touch(key)
            return job, job.status == "succeeded"
        if self.store.count_active() >= self.settings.limits.queue:
            raise QueueFull(f"{self.settings.limits.queue} jobs are queued or running; retry later",
                            headers={"Retry-After": "5"})
        if job is not None:  # cancelled, failed for a reason other than its input, or its result lost: run it again
            self.store.update(key, status="queued", progress=0.0, message="queued", error=None, attempts=0,
                              cancel_requested=False, started_at=None, finished_at=None)
            self._dispatch(key, operation, params, inputs)
        elif self.store.create(Job(id=key, operation=operation, params=params, message="queued"), inputs):
            self._dispatch(key, operation, params, inputs)
        return self.get(key), False

    def _result_gone(self, job: Job) -> bool:
        """A succeeded job whose result files are missing (lost from disk): it must run again."""
        return job.status == "succeeded" and not (self.store.result_dir(job.id) / "meta.json").exists()

    def _dispatch(self, key: str, operation: str, params: dict, inputs: dict) -> None:
        self.executor.submit(key, operation, params, inputs, self._on_done)

    def _on_done(self, key: str, future: Future) -> None:
        """Runs in Dask's client thread when a task ends: record what the worker could not."""
        job = self.store.get(key)
        if job is None:
            return
        if future.status == "error" and job.status in ACTIVE:
            exc = future.exception()
            detail = f"{type(exc).__name__}: {exc}"
            if type(exc).__name__ == "KilledWorker":
                detail = f"the worker running this job died {job.attempts} times ({exc})"
            self.store.update(key, status="failed", message="failed", finished_at=time.time(),
                              error={"status": 500, "title": "Job failed", "detail": detail})
        elif future.status == "cancelled" and job.status == "queued":
            self.store.update(key, status="canceled", message="canceled", finished_at=time.time())
        with self._lock:
            waiters = self._waiters.pop(key, [])
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        if future.status == "finished":
            self.store.evict(self.settings.cache_bytes)

    def get(self, key: str) -> Job:
        job = self.store.get(key)
        if job is None:
            raise JobNotFound(f"no job {key!r} (never submitted, deleted, or evicted from the cache)")
        return job

    async def wait(self, key: str, timeout: float) -> Job:
        """The job once it has ended, or as it is after `timeout` seconds. Woken when this
        process sees its task end; the store is read at least every 0.5 s as well (a job
        another process runs)."""
        deadline, loop = time.monotonic() + timeout, asyncio.get_running_loop()
        while True:
            event = asyncio.Event()
            with self._lock:  # registered before the status is read, so no wake-up is missed
                self._waiters.setdefault(key, []).append((loop, event))
            try:
                job = self.get(key)
                left = deadline - time.monotonic()
                if job.status not in ACTIVE or left <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, 0.5))
            finally:
                with self._lock:
                    entries = self._waiters.get(key, [])
                    if (loop, event) in entries:
                        entries.remove((loop, event))
                    if not entries:
                        self._waiters.pop(key, None)

    def cancel(self, key: str) -> Job:
        job = self.get(key)
        if job.status in TERMINAL:
            raise Conflict(f"job {key} has already ended ({job.status})")
        if job.status == "queued":
            self.store.update(key, status="canceled", message="canceled", cancel_requested=True,
                              finished_at=time.time())
            self.executor.cancel(key)
        else:
            self.store.update(key, cancel_requested=True, message="cancel requested")
        return self.get(key)

    def delete(self, key: str) -> None:
        job = self.get(key)
        if job.status in ACTIVE:
            self.cancel(key)
        self.store.delete(key)


def _retryable(job: Job) -> bool:
    return job.status == "canceled" or (job.status == "failed" and (job.error or {}).get("status", 500) >= 500)
