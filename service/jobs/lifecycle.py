"""Jobs: submission with de-duplication (by content-addressed id, `service.jobs.ids`), waiting,
cancellation, recovery after a restart, and leases: this process renews the jobs it queued, and
re-queues any job whose lease lapsed (its replica or worker died; see `service.store.job`). Glue
between the store and the executor; no maths here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from anyio.to_thread import run_sync
from distributed import Future

from service.errors import Conflict, JobNotFound, QueueFull, StorageFull, storage_full
from service.jobs.changes import Changes
from service.jobs.executor import Executor
from service.jobs.ids import job_id
from service.logs import job_context
from service.settings import Settings
from service.store.job import ACTIVE, TERMINAL, Job
from service.store.protocol import Store, StoreUnavailable

log = logging.getLogger("reskernel")


class Jobs:
    def __init__(self, settings: Settings, store: Store, executor: Executor):
        self.settings, self.store, self.executor = settings, store, executor
        self.worker_info: dict[str, Any] | None = None  # one worker's versions and devices, once known
        self._lock = threading.Lock()
        # jobs whose task ended but whose end could not be recorded: id -> (the task's ticket, the error to record)
        self._unsettled: dict[str, tuple[str, dict[str, Any]]] = {}
        self._tickets: dict[str, str] = {}  # job id -> the ticket of this process's dispatch (leases it renews)
        self._closing = threading.Event()
        self.on_end: list[Callable[[Job], None]] = []  # called with each job whose task this process saw end
        self._settler = threading.Thread(target=self._settle_loop, daemon=True, name="reskernel-settle")
        self._leaser = threading.Thread(target=self._lease_loop, daemon=True, name="reskernel-leases")
        self.changes = Changes(store)  # pushes the store's changes to event streams

    def start(self) -> None:
        """Start the executor, then re-queue what nobody runs: with a store of its own (SQLite),
        everything a previous run left queued or running; with a shared one (Redis), the jobs
        whose lease lapsed. A job that cannot be re-queued is failed (and logged); it never
        stops the service starting, nor does a store that does not answer yet."""
        self.executor.start()
        try:
            self._recover(every=not self.store.shared)
        except StoreUnavailable:
            log.warning("the job store does not answer; jobs are recovered once it does", exc_info=True)
        self._settler.start()
        self._leaser.start()
        threading.Thread(target=self._describe_workers, daemon=True, name="reskernel-describe").start()

    def close(self) -> None:
        self._closing.set()
        self.changes.close()
        self.executor.close()

    def _recover(self, every: bool) -> None:
        """Re-queue (under a new ticket) and dispatch the active jobs whose lease lapsed, or
        `every` active job. Two replicas may try at once: the store lets one win."""
        for job in self.store.active() if every else self.store.expired():
            if every:
                message = "re-queued after a restart"
            elif job.status == "running":
                message = "re-queued: its worker stopped renewing its lease"
            else:
                message = "re-queued: the process that queued it stopped renewing its lease"
            taken = None
            try:
                taken = self.store.requeue(job.id, job.ticket, uuid.uuid4().hex, self.settings.lease_s, force=every,
                                           message=message)
                if taken is not None:
                    log.info("job %s %s", job.id, message)
                    self._dispatch(taken.id, taken.operation, taken.params, taken.ticket)
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("job %s could not be re-queued", job.id)
                with contextlib.suppress(Exception):
                    self._end(job.id, _internal("the job could not be re-queued"),
                              ticket=job.ticket if taken is None else taken.ticket)

    def _lease_loop(self) -> None:
        """Every lease_s / 3: renew the leases of the jobs this process queued (a running job's
        worker renews its own), and re-queue the jobs whose lease lapsed."""
        down = False
        while not self._closing.wait(self.settings.lease_s / 3):
            try:
                with self._lock:
                    held = list(self._tickets.items())
                for key, ticket in held:
                    self.store.renew(key, ticket, "queued", self.settings.lease_s)
                self._recover(every=False)
                down = False
            except StoreUnavailable as exc:
                if not down:
                    log.warning("leases are not renewed while the job store does not answer: %s", exc)
                down = True
            except Exception:
                log.exception("the lease loop failed; it runs again in %.1f s", self.settings.lease_s / 3)

    def _describe_workers(self) -> None:
        """Learn the workers' versions and devices in the background (/v1/info never waits)."""
        while not self._closing.is_set() and self.worker_info is None:
            try:
                self.worker_info = self.executor.describe()
            except Exception:
                log.debug("could not describe the workers yet", exc_info=True)
            self._closing.wait(1.0)

    def submit(self, operation: str, params: dict[str, Any], inputs: dict[str, np.ndarray],
               seconds: float | None = None) -> tuple[Job, bool]:
        """The job for this request (scalar params, float64 input arrays), created and
        dispatched unless it exists; and whether its result was already there (a cache hit).
        `seconds`: its estimated compute (its operation's `cost`), which lets small jobs share a task."""
        key = job_id(operation, params, inputs)
        job = self.store.get(key)
        if job is not None and not _retryable(job) and not self._result_gone(job):
            if job.status != "succeeded":  # a result is marked used where it is served (results.respond)
                self.store.touch(key)
            return job, job.status == "succeeded"
        limit, ticket = self.settings.limits.queue, uuid.uuid4().hex
        if self.store.count_active() >= limit:  # cheap, before any file is written; create checks it atomically
            raise QueueFull(f"{limit} jobs are queued or running; retry later", headers={"Retry-After": "5"})
        try:
            if job is not None:  # cancelled, failed for a reason other than its input, or its result lost:
                self.store.delete(key)  # start afresh, inputs included
            job = Job(id=key, operation=operation, params=params, message="queued", ticket=ticket,
                      lease_until=time.time() + self.settings.lease_s)
            if self.store.create(job, inputs, limit=limit):
                self._dispatch(key, operation, params, ticket, seconds)
        except (StoreUnavailable, QueueFull):
            raise  # a 503: nothing was created, or its lease re-queues it once the store is back; a 429
        except Exception as exc:
            if storage_full(exc):
                with contextlib.suppress(Exception):
                    self._end(key, {"status": 507, "title": "Insufficient storage",
                                    "detail": "the data directory was full when the job was submitted"},
                              ticket=ticket)
                raise StorageFull() from exc
            with contextlib.suppress(Exception):  # never leave a job queued that nothing will run
                self._end(key, _internal("the job could not be dispatched to a worker"), ticket=ticket)
            raise
        return self.get(key), False

    def _result_gone(self, job: Job) -> bool:
        """A succeeded job whose result files are missing (lost from disk): it must run again."""
        return job.status == "succeeded" and not (self.store.result_dir(job.id) / "meta.json").exists()

    def _dispatch(self, key: str, operation: str, params: dict[str, Any], ticket: str,
                  seconds: float | None = None) -> None:
        with self._lock:
            self._tickets[key] = ticket
        try:
            self.executor.submit(key, operation, params, lambda k, future: self._on_done(k, future, ticket), ticket,
                                 seconds)
        except BaseException:
            with self._lock:
                self._tickets.pop(key, None)
            raise

    def _end(self, key: str, error: dict[str, Any] | None, status: str = "failed", *, ticket: str) -> bool:
        """Record a job's end when its worker could not: only while the job is still active under
        the `ticket` of the dispatch that ended (a compare-and-set: never a later dispatch's run)."""
        return self.store.finish(key, ticket, status=status, message=status if error is None else error["title"],
                                 finished_at=time.time(), error=error)

    def _on_done(self, key: str, future: Future[Any], ticket: str) -> None:
        """Runs in Dask's client thread when a task ends: record what the worker could not.
        Not while this process shuts down (its tasks are released, not failed: the leases of
        their jobs lapse and another process re-queues them), nor while the store does not
        answer (the lease as well)."""
        with self._lock:
            if self._tickets.get(key) == ticket:
                del self._tickets[key]
        if self._closing.is_set():
            return
        with job_context(key):
            try:
                self._announce_end(self._record_end(key, future, ticket))
            except StoreUnavailable:
                log.warning("could not record the end of job %s: the store does not answer; its lease will lapse",
                            key)
            except Exception as exc:
                log.warning("could not record the end of job %s; retrying in the background", key, exc_info=True)
                error = _STORAGE_FULL if storage_full(exc) else {
                    "status": 500, "title": "Internal error", "detail": "the job's end could not be recorded"}
                with self._lock:
                    self._unsettled[key] = (ticket, error)
        self.changes.notify(key)

    def _announce_end(self, job: Job | None) -> None:
        """Tell the `on_end` listeners (the metrics) about a job that has ended; never raises."""
        if job is None or job.status not in TERMINAL:
            return
        for listener in self.on_end:
            try:
                listener(job)
            except Exception:
                log.warning("could not report the end of job %s", job.id, exc_info=True)

    def _record_end(self, key: str, future: Future[Any], ticket: str) -> Job | None:
        """Record what the worker could not; the job as it now is (None: deleted)."""
        job = self.store.get(key)
        if job is None or job.ticket != ticket:  # deleted, or re-queued under another ticket since
            return job
        if future.status == "error" and job.status in ACTIVE:
            exc = future.exception()
            if type(exc).__name__ == "KilledWorker":
                error = {"status": 500, "title": "Job abandoned", "abandoned": True,
                         "detail": f"the worker running this job died {job.attempts} times (out of memory?); "
                                   "DELETE the job to try again"}
            elif storage_full(exc):
                error = {"status": 507, "title": "Insufficient storage",
                         "detail": "the data directory was full while the job ran; submit it again"}
            else:
                log.error("job %s: its task failed", key, exc_info=exc)
                error = _internal("the job's task failed")
            self._end(key, error, ticket=ticket)
            job = self.store.get(key)
        # a task cancelled by anything but a cancel (which has ended the job already: the scheduler was lost)
        # leaves its job queued: its lease lapses and it is re-queued
        if future.status == "finished":
            self.store.evict(self.settings.cache_bytes, keep=(key,))
        return job

    def _settle_loop(self) -> None:
        """Every 2 s, record the ends that could not be written when their tasks ended."""
        while not self._closing.wait(2.0):
            self._settle()

    def _settle(self) -> None:
        """Record the ends that could not be written, each under its task's ticket only: a job
        re-queued since (its lease lapsed meanwhile) belongs to its new dispatch and is left alone."""
        with self._lock:
            pending = list(self._unsettled.items())
        for key, (ticket, error) in pending:
            try:
                self._end(key, error, ticket=ticket)
            except Exception:
                continue  # still full, or the store does not answer: next round
            with self._lock:
                if self._unsettled.get(key) == (ticket, error):
                    del self._unsettled[key]

    def get(self, key: str) -> Job:
        job = self.store.get(key)
        if job is None:
            raise JobNotFound(f"no job {key!r} (never submitted, deleted, or evicted from the cache)")
        return job

    async def wait(self, key: str, timeout: float) -> Job:
        """The job once it has ended, or as it is after `timeout` seconds. Woken when this
        process sees its task end and, with a shared store, when the store pushes a change of
        the job (another replica's task); the store is read at least every 0.5 s as well."""
        deadline = time.monotonic() + timeout
        # with a store of its own (SQLite) a job ends only through this process's tasks, whose ends notify
        with self.changes.watch(key, listen=self.store.shared) as woken:
            while True:
                woken.clear()  # before the status is read, so no wake-up is missed
                job = self.get(key)
                left = deadline - time.monotonic()
                if job.status not in ACTIVE or left <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(left, 0.5))

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

    async def delete(self, key: str, timeout: float | None = None) -> None:
        """Stop the job's work first (cancel it and wait until it has ended, at most the
        worker's grace time and a little), then remove its files and record. The wait is
        asynchronous (woken by the job's changes, as `wait`): no thread is held while it lasts,
        however many deletions wait at once."""
        job = await run_sync(self.get, key)
        if job.status in ACTIVE:
            with contextlib.suppress(Conflict):  # it ended meanwhile (another DELETE, or its worker)
                await run_sync(self.cancel, key)
            with contextlib.suppress(JobNotFound):  # deleted meanwhile (another DELETE)
                await self.wait(key, self.settings.cancel_grace_s + 5 if timeout is None else timeout)
        await run_sync(self.store.delete, key)


def _retryable(job: Job) -> bool:
    """Cancelled jobs, and failures not caused by the request (5xx) except a job that killed
    its worker every time it ran (it would again: DELETE it to try once more)."""
    error = job.error or {}
    return job.status == "canceled" or (job.status == "failed" and error.get("status", 500) >= 500
                                        and not error.get("abandoned"))


_STORAGE_FULL = {"status": 507, "title": "Insufficient storage",
                 "detail": "the job's end could not be recorded (the data directory was full); submit it again"}


def _internal(what: str) -> dict[str, Any]:
    correlation = uuid.uuid4().hex
    log.error("%s (correlation id %s)", what, correlation)
    return {"status": 500, "title": "Internal error",
            "detail": f"{what} (correlation id {correlation}); it is logged with that id"}
