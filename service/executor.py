"""Dask: where jobs run. By default a LocalCluster of spawned worker processes that the
service starts itself; with `dask_address` an existing scheduler (its workers must see the
service's data directory). The API process never imports JAX: tasks name `service.worker`
functions by module path, and the workers import them. Workers need no settings of their own:
each task carries the data directory, the store's URL and prefix, and the lease.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import dask
from distributed import Client, Future, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from service.settings import Settings

log = logging.getLogger("reskernel")


def _run_job(*args: Any) -> str:
    from service.worker import run_job

    return run_job(*args)


def _describe() -> dict[str, Any]:
    from service.worker import describe

    return describe()


class _Prepare(WorkerPlugin):
    """On each worker (those started later too): JAX's compilation cache under the data
    directory, and a background warm-up (`service.worker.prepare`); returns at once."""

    def __init__(self, data_dir: str, warm_up: bool):
        self.data_dir, self.warm_up = data_dir, warm_up

    def setup(self, worker) -> None:
        from service.worker import prepare

        prepare(self.data_dir, self.warm_up)


class Executor:
    """Submits jobs to Dask and reports each task's end through `on_done(job_id, future)`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None
        self._futures: dict[str, Future] = {}

    def start(self) -> None:
        # a task whose worker dies is re-run; after max_attempts deaths it fails (KilledWorker)
        dask.config.set({"distributed.scheduler.allowed-failures": max(self.settings.max_attempts - 1, 0)})
        if self.settings.dask_address:
            self.client = Client(self.settings.dask_address, set_as_default=False)
        else:
            # loopback only: the scheduler's HTTP endpoints (the dashboard, when bokeh is installed) on a free
            # loopback port unless RESKERNEL_DASHBOARD_ADDRESS names one (Dask's default is :8787, often taken)
            http = self.settings.dashboard_address or "127.0.0.1:0"
            self.cluster = LocalCluster(n_workers=self.settings.workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=http, memory_limit=0,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster, set_as_default=False)
        prepare = _Prepare(str(self.settings.data_dir), self.settings.warm_up)
        self.client.register_plugin(prepare, name="reskernel-prepare")
        log.info("dask scheduler at %s", self.client.scheduler.address)

    def close(self) -> None:
        for closable in (self.client, self.cluster):
            if closable is not None:
                closable.close()
        self.client = self.cluster = None

    def submit(self, job_id: str, operation: str, params: dict, on_done: Callable[[str, Future], None],
               ticket: str = "") -> None:
        """Run the job on a worker under the dispatch `ticket` (see service/store.py); its input
        arrays are read there from the store."""
        key = f"{operation}-{job_id[:12]}-{uuid.uuid4().hex[:8]}"
        settings = self.settings
        future = self.client.submit(_run_job, job_id, operation, params, str(settings.data_dir), settings.max_attempts,
                                    settings.cancel_grace_s, settings.store_url, settings.store_prefix,
                                    settings.lease_s, ticket, key=key, pure=False)
        self._futures[job_id] = future

        def done(f: Future) -> None:
            if self._futures.get(job_id) is f:
                del self._futures[job_id]
            on_done(job_id, f)

        future.add_done_callback(done)

    def cancel(self, job_id: str) -> None:
        """Drop a job's task if it has not started (a running one stops through the store)."""
        future = self._futures.get(job_id)
        if future is not None and future.status == "pending":
            future.cancel()

    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {})) if self.client else 0

    def describe(self) -> dict[str, Any] | None:
        """One worker's versions and JAX backend, asked outside its task queue (a busy worker
        answers at once); None when no worker is connected."""
        workers = list(self.client.scheduler_info().get("workers", {})) if self.client else []
        if not workers:
            return None
        return self.client.run(_describe, workers=workers[:1], wait=True)[workers[0]]

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)
