"""Supervision of the jobs a worker process runs: `Reporter` (throttled progress, the stop
flag the engine polls) and one `Watchdog` thread per process that watches the store for
cancellation and deletion, renews the running jobs' leases, and restarts the process when a
cancelled job does not stop in time. No JAX here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from service.logs import job_context
from service.operations.tiles import Tiling
from service.store.protocol import Store, StoreUnavailable

log = logging.getLogger("reskernel.worker")
_lock = threading.Lock()
_watchdog: list[Watchdog] = []  # started once per worker process


class Reporter:
    """progress(fraction, message) for the engine, throttled: the store is written at most
    every `interval` seconds, first `interval` after the claim (a small job writes none: its
    commit sets progress 1); best effort: a store that does not answer skips it. should_stop()
    reads the watchdog's flag (no store access)."""

    def __init__(self, store: Store, job_id: str, interval: float = 0.2, tiling: Tiling | None = None):
        self.store, self.job_id, self.interval = store, job_id, interval
        self.tiling = tiling  # how a large Gram matrix is split across the workers
        self._written = time.monotonic()  # the claim wrote progress 0 just now; the commit writes 1
        self.stop = threading.Event()

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._written >= self.interval:
            self._written = now
            try:
                self.store.update(self.job_id, progress=min(max(float(fraction), 0.0), 1.0), message=message)
            except StoreUnavailable:
                log.debug("job %s: progress not recorded (the store does not answer)", self.job_id)

    def should_stop(self) -> bool:
        return self.stop.is_set()


@dataclass
class Watched:
    """A job the watchdog watches: its store, reporter and lease, since when, and when its stop was asked."""

    store: Store
    report: Reporter
    grace_s: float
    ticket: str = ""
    lease_s: float = 30.0
    since: float = field(default_factory=time.monotonic)
    renewed: float = field(default_factory=time.monotonic)  # the claim took the lease
    stop_asked: float | None = None
    superseded: bool = False  # the lease was lost: the job was re-queued under another ticket
    budget_s: float | None = None  # the compute budget (RESKERNEL_MAX_COMPUTE_SECONDS); None: no limit
    over_budget: bool = False  # it ran past its budget: stopped, and recorded as failed (`over_budget`)


def over_budget(budget_s: float, ran_s: float) -> dict[str, Any]:
    """The failure of a job stopped at its compute budget, naming the budget (a problem's fields)."""
    from service.jobs.admission import duration

    return {"status": 422, "title": "Compute budget exceeded",
            "detail": f"the job computed for {duration(ran_s)}, over the compute budget of {duration(budget_s)} "
                      "(RESKERNEL_MAX_COMPUTE_SECONDS), and was stopped: its estimate was lower than what it took. "
                      "Send a smaller request (fewer points, a lower depth, relu or erf); DELETE the job to run it "
                      "again under a larger budget"}


class Watchdog(threading.Thread):
    """One per worker process (`watchdog()`): watches the store for the jobs running in it and
    renews their leases (every lease_s / 3). When a job is cancelled or deleted, or its lease
    is lost (it was re-queued under another ticket: `superseded`), it sets that job's stop flag
    (the engine stops at its next tile, chunk or step); a job that has not stopped `grace_s`
    seconds later is marked canceled (unless superseded) and the worker process exits, so that
    no cancelled work runs on (the Dask nanny starts a fresh worker). A job that runs longer than
    its compute budget is stopped the same way, and recorded as failed (`over_budget`). A job is first read
    `interval` seconds after it starts (a small one never is); no thread is started per job."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True, name="reskernel-watchdog")
        self.interval = interval
        self._lock = threading.Lock()
        self._jobs: dict[str, Watched] = {}

    @contextlib.contextmanager
    def watching(self, store: Store, job_id: str, report: Reporter, grace_s: float, ticket: str = "",
                 lease_s: float = 30.0, budget_s: float | None = None) -> Iterator[Watched]:
        """Watch job_id (and renew its lease, held under `ticket`) while the block runs; stop it
        once it has run `budget_s` seconds."""
        watched = Watched(store, report, grace_s, ticket, lease_s, budget_s=budget_s)
        with self._lock:
            self._jobs[job_id] = watched
        try:
            yield watched
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    def run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                watched = list(self._jobs.items())
            for job_id, job in watched:
                self._check(job_id, job)

    def _check(self, job_id: str, watched: Watched) -> None:
        now, store = time.monotonic(), watched.store
        if watched.stop_asked is None:
            if now - watched.since < self.interval:
                return
            if watched.budget_s is not None and now - watched.since > watched.budget_s:
                watched.over_budget = True  # its run records the failure; past the grace, the code below
                watched.report.stop.set()
                watched.stop_asked = now
                return
            try:
                job = store.get(job_id)
                if job is not None and now - watched.renewed >= watched.lease_s / 3:
                    watched.superseded = not store.renew(job_id, watched.ticket, "running", watched.lease_s)
                    watched.renewed = now
            except Exception:  # a store that cannot be read now is asked again
                return
            if job is None or job.cancel_requested or watched.superseded:
                watched.report.stop.set()
                watched.stop_asked = now
            return
        with self._lock:
            if now - watched.stop_asked < watched.grace_s or job_id not in self._jobs:
                return
        why = ("re-queueing elsewhere" if watched.superseded else "compute budget" if watched.over_budget
               else "cancellation")
        with job_context(job_id):
            log.warning("job %s did not stop within %.0f s of its %s: restarting the worker", job_id,
                        watched.grace_s, why)
        with contextlib.suppress(Exception):
            if store.get(job_id) is not None and not watched.superseded:
                if watched.over_budget and watched.budget_s is not None:
                    error = over_budget(watched.budget_s, now - watched.since)
                    store.update(job_id, status="failed", error=error, message=error["title"], finished_at=time.time())
                else:
                    store.update(job_id, status="canceled", message="canceled (worker restarted)",
                                 finished_at=time.time())
        os._exit(70)


def watchdog() -> Watchdog:
    """This process's watchdog, started on first use."""
    with _lock:
        if not _watchdog:
            _watchdog.append(Watchdog())
            _watchdog[0].start()
        return _watchdog[0]
