"""Dask: where jobs run. By default a LocalCluster of spawned worker processes that the
service starts itself; with `dask_address` an existing scheduler (its workers must see the
service's data directory). The API process never imports JAX: tasks name `service.jobs.worker`
functions by module path, and the workers import them. Workers need no settings of their own:
each task carries the data directory, the store's URL and prefix, and the lease.

Small jobs (estimated under `BATCH_JOB_S` of compute) share tasks: while every worker has a
batch of them running or waiting, new small jobs wait here and go as the next batch, one Dask
task for many jobs (a task costs Dask a few milliseconds of CPU, a small job's maths less). A
batch that fails (its worker died) is submitted again job by job, so one job that kills its
worker fails alone, as a job of its own task would.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, Future, LocalCluster, Worker
from distributed.diagnostics.plugin import WorkerPlugin

from service.settings import Settings

log = logging.getLogger("reskernel")
BATCH_JOB_S = 0.05  # jobs estimated under this many seconds of compute may share a task
BATCH_S = 0.5  # the estimated compute of one batch at most
BATCH_JOBS = 64  # jobs in one batch at most
OnDone = Callable[[str, Future[Any]], None]
Dispatch = tuple[str, str, dict[str, Any], str]  # a job's id, operation, parameters and dispatch ticket


def _run_job(*args: Any) -> str:
    from service.jobs.worker import run_job

    return run_job(*args)


def _run_jobs(jobs: list[Dispatch], *args: Any) -> list[str]:
    """Several jobs in one task; `args`: run_job's settings, then the compute budget and the tiling."""
    from service.jobs.worker import run_job

    *common, budget_s, tiling = args
    return [run_job(job_id, operation, params, *common, ticket, budget_s, tiling)
            for job_id, operation, params, ticket in jobs]


@dataclass
class _Small:
    """A small job waiting for a batch."""

    job_id: str
    operation: str
    params: dict[str, Any]
    ticket: str
    seconds: float
    on_done: OnDone


def _describe() -> dict[str, Any]:
    from service.jobs.worker import describe

    return describe()


class _Prepare(WorkerPlugin):
    """On each worker (those started later too): the service's log lines in the service's format,
    JAX's compilation cache under the data directory, and a background warm-up
    (`service.jobs.worker.prepare`); returns at once."""

    def __init__(self, data_dir: str, warm_up: bool, log_format: str = "json"):
        self.data_dir, self.warm_up, self.log_format = data_dir, warm_up, log_format

    def setup(self, worker: Worker) -> None:
        from service.jobs.worker import prepare
        from service.logs import configure_worker

        configure_worker(self.log_format)
        prepare(self.data_dir, self.warm_up)


class Executor:
    """Submits jobs to Dask and reports each task's end through `on_done(job_id, future)`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None
        self._futures: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._waiting: list[_Small] = []  # small jobs not yet in a task
        self._batches = 0  # batch tasks submitted and not ended
        self._slots, self._slots_at = 1, 0.0  # batch tasks allowed at once (workers + 1), when counted

    def start(self) -> None:
        # a task whose worker dies is re-run; after max_attempts deaths it fails (KilledWorker)
        dask.config.set({"distributed.scheduler.allowed-failures": max(self.settings.max_attempts - 1, 0),
                         # the workers' statistical profiler samples every thread every 10 ms: CPU a small
                         # job's maths needs (the local cluster's workers take this; others: DASK_ env)
                         "distributed.worker.profile.enabled": False})
        if self.settings.dask_address:
            client = Client(self.settings.dask_address, set_as_default=False)
        else:
            # loopback only: the scheduler's HTTP endpoints (the dashboard, when bokeh is installed) on a free
            # loopback port unless RESKERNEL_DASHBOARD_ADDRESS names one (Dask's default is :8787, often taken)
            http = self.settings.dashboard_address or "127.0.0.1:0"
            self.cluster = LocalCluster(n_workers=self.settings.workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=http, memory_limit=0,
                                        silence_logs=logging.ERROR)
            client = Client(self.cluster, set_as_default=False)
        prepare = _Prepare(str(self.settings.data_dir), self.settings.warm_up, self.settings.log_format)
        client.register_plugin(prepare, name="reskernel-prepare")
        self.client = client
        log.info("dask scheduler at %s", client.scheduler_info().get("address"))

    def _started(self) -> Client:
        if self.client is None:
            raise RuntimeError("the executor is not started (or closed)")
        return self.client

    def close(self) -> None:
        for closable in (self.client, self.cluster):
            if closable is not None:
                closable.close()
        self.client = self.cluster = None

    def submit(self, job_id: str, operation: str, params: dict[str, Any], on_done: OnDone, ticket: str = "",
               seconds: float | None = None) -> None:
        """Run the job on a worker under the dispatch `ticket` (see `service.store.job`); its input
        arrays are read there from the store. `seconds`: its estimated compute (None: unknown),
        which decides whether it may share a task."""
        if seconds is None or seconds > BATCH_JOB_S:
            self._submit([(job_id, operation, params, ticket)], [on_done])
            return
        self._count_slots()
        with self._lock:
            self._waiting.append(_Small(job_id, operation, params, ticket, seconds, on_done))
            batch = self._next_batch()
        if batch:
            self._submit_batch(batch)

    def _next_batch(self) -> list[_Small]:
        """The waiting small jobs that go now, as one task, and count it (the lock held): none
        while every slot has a batch."""
        if not self._waiting or self._batches >= self._batch_slots():
            return []
        batch: list[_Small] = []
        total = 0.0
        while self._waiting and len(batch) < BATCH_JOBS and (not batch or total + self._waiting[0].seconds <= BATCH_S):
            total += self._waiting[0].seconds
            batch.append(self._waiting.pop(0))
        self._batches += 1
        return batch

    def _batch_slots(self) -> int:
        """Workers + 1 (one batch waits while each worker runs one), as last counted."""
        return self._slots

    def _count_slots(self) -> None:
        """Count the workers again, every 2 s at most (outside the lock: it asks the scheduler)."""
        now = time.monotonic()
        if now - self._slots_at > 2.0:
            self._slots_at = now
            try:
                self._slots = self.workers() + 1
            except Exception:  # the scheduler does not answer now: the last count stands
                log.debug("could not count the workers", exc_info=True)

    def _submit_batch(self, batch: list[_Small]) -> None:
        jobs = [(s.job_id, s.operation, s.params, s.ticket) for s in batch]
        try:
            self._submit(jobs, [s.on_done for s in batch], batch=True)
        except BaseException:
            with self._lock:
                self._batches -= 1
            raise

    def _submit(self, jobs: list[Dispatch], callbacks: list[OnDone], batch: bool = False) -> None:
        first_id, operation = jobs[0][0], jobs[0][1]
        key = f"{operation}-{first_id[:12]}-{uuid.uuid4().hex[:8]}" + (f"-{len(jobs)}-jobs" if batch else "")
        settings = self.settings
        args = (str(settings.data_dir), settings.max_attempts, settings.cancel_grace_s, settings.store_url,
                settings.store_prefix, settings.lease_s)
        budget = float(settings.limits.compute_seconds)  # the worker stops a job that computes longer
        tiling = (settings.distribute_entries, settings.tile_edge, settings.limits.memory_bytes)
        future: Future[Any]
        if batch:
            future = self._started().submit(_run_jobs, jobs, *args, budget, tiling, key=key, pure=False)
        else:
            job_id, operation, params, ticket = jobs[0]
            future = self._started().submit(_run_job, job_id, operation, params, *args, ticket, budget, tiling,
                                            key=key, pure=False)
        for job_id, *_ in jobs:
            self._futures[job_id] = future

        def done(f: Future[Any]) -> None:
            for job_id, *_ in jobs:
                if self._futures.get(job_id) is f:
                    del self._futures[job_id]
            if batch:
                self._batch_done(f, jobs, callbacks)
            else:
                callbacks[0](jobs[0][0], f)

        future.add_done_callback(done)

    def _batch_done(self, future: Future[Any], jobs: list[Dispatch], callbacks: list[OnDone]) -> None:
        """A batch task ended: start the next batch, then report each job's end; a failed
        batch of several jobs is submitted again one task per job (those that ended are skipped)."""
        with self._lock:
            self._batches -= 1
            following = self._next_batch() if future.status != "cancelled" else []  # cancelled: closing
        if following:
            try:
                self._submit_batch(following)
            except Exception:  # the client is closing; a restart re-queues what is still queued
                log.warning("could not submit a batch of %d small jobs", len(following), exc_info=True)
        if future.status == "error" and len(jobs) > 1:
            log.warning("a batch of %d small jobs failed (%s); running them one task each", len(jobs),
                        type(future.exception()).__name__)
            for job, on_done in zip(jobs, callbacks, strict=True):
                self._submit([job], [on_done])
            return
        for (job_id, *_), on_done in zip(jobs, callbacks, strict=True):
            on_done(job_id, future)

    def cancel(self, job_id: str) -> None:
        """Drop a job's task if it has not started (a running one stops through the store); a
        small job waiting for a batch is dropped from the wait."""
        with self._lock:
            self._waiting = [s for s in self._waiting if s.job_id != job_id]
        future = self._futures.get(job_id)
        if future is not None and future.status == "pending" and not str(future.key).endswith("-jobs"):
            future.cancel()

    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {})) if self.client else 0

    def describe(self) -> dict[str, Any] | None:
        """One worker's versions and JAX backend, asked outside its task queue (a busy worker
        answers at once); None when no worker is connected."""
        workers = list(self.client.scheduler_info().get("workers", {})) if self.client else []
        if not workers:
            return None
        return self._started().run(_describe, workers=workers[:1], wait=True)[workers[0]]

    def worker_pids(self) -> dict[str, int]:
        return self._started().run(os.getpid)
