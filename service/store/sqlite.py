"""The embedded default store: SQLite (WAL) for the records, under the data directory that
the API process and its local workers share (data_dir/jobs.sqlite3); the files as
`service.store.files` lays them out."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import QueueFull
from service.store.files import DataFiles
from service.store.job import ACTIVE, STATUSES, TERMINAL, Job, abandoned
from service.store.protocol import run_listener

log = logging.getLogger("reskernel")


_COLUMNS = ("id", "operation", "params", "status", "progress", "message", "attempts", "created_at",
            "started_at", "finished_at", "error", "cancel_requested", "size_bytes", "version", "ticket", "lease_until")
_JSON = ("params", "error")
_ADDED = {"version": "INTEGER NOT NULL DEFAULT 0", "ticket": "TEXT NOT NULL DEFAULT ''",
          "lease_until": "REAL NOT NULL DEFAULT 0"}  # columns newer than the first schema



class SQLiteStore(DataFiles):
    """Safe to share between threads, and between processes on one machine (WAL)."""

    shared = False  # one API process per data directory

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "jobs.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, operation TEXT NOT NULL, params TEXT NOT NULL,"
                " status TEXT NOT NULL, progress REAL NOT NULL, message TEXT NOT NULL, attempts INTEGER NOT NULL,"
                " created_at REAL NOT NULL, started_at REAL, finished_at REAL, error TEXT,"
                " cancel_requested INTEGER NOT NULL, size_bytes INTEGER NOT NULL, accessed_at REAL NOT NULL)")
            present = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for name, kind in _ADDED.items():
                if name not in present:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                        self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, accessed_at)")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)")

    def close(self) -> None:
        self._db.close()

    def ping(self) -> None:
        self._execute("SELECT 1")

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _job(self, row: tuple[Any, ...]) -> Job:
        values = dict(zip(_COLUMNS, row, strict=True))
        for name in _JSON:
            values[name] = None if values[name] is None else json.loads(values[name])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return Job(**values)

    def create(self, job: Job, inputs: dict[str, np.ndarray], limit: int | None = None) -> bool:
        """Insert a new record with its input files; False (and nothing written) when the id
        exists already; QueueFull when `limit` jobs are active already (counted and inserted in
        one write transaction). A failure (a full disk) leaves nothing behind and raises."""
        if self.get(job.id) is not None:
            return False
        try:
            job.size_bytes, job.version = self.write_inputs(job.id, inputs), 1
            values = [getattr(job, c) for c in _COLUMNS]
            values = [json.dumps(v) if c in _JSON and v is not None else v
                      for c, v in zip(_COLUMNS, values, strict=True)]
            created = False

            def insert(old: Job | None) -> Job | None:
                nonlocal created
                if old is not None:
                    return old
                if limit is not None:
                    [(count,)] = self._db.execute(
                        f"SELECT COUNT(*) FROM jobs WHERE status IN ({', '.join('?' * len(ACTIVE))})", ACTIVE
                    ).fetchall()
                    if count >= limit:
                        raise QueueFull(f"{limit} jobs are queued or running; retry later",
                                        headers={"Retry-After": "5"})
                cursor = self._db.execute(
                    f"INSERT OR IGNORE INTO jobs ({', '.join(_COLUMNS)}, accessed_at) VALUES "
                    f"({', '.join('?' * (len(_COLUMNS) + 1))})", (*values, time.time()))
                created = cursor.rowcount == 1
                return None

            self._transaction(insert, job.id)
            return created
        except BaseException:
            if self.get(job.id) is None:
                shutil.rmtree(self.job_dir(job.id), ignore_errors=True)
            raise

    def get(self, job_id: str) -> Job | None:
        rows = self._execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def update(self, job_id: str, **values: Any) -> None:
        unknown = set(values) - set(_COLUMNS) - {"accessed_at"}
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        values = {k: json.dumps(v) if k in _JSON and v is not None else v for k, v in values.items()}
        assignments = ", ".join(f"{k} = ?" for k in values)
        self._execute(f"UPDATE jobs SET {assignments}, version = version + 1 WHERE id = ?",
                      (*values.values(), job_id))

    def _transaction(self, change: Callable[[Job | None], Job | None], job_id: str) -> Job | None:
        """change(job) inside one write transaction (BEGIN IMMEDIATE): read, decide, write."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchall()
                job = change(self._job(rows[0]) if rows else None)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction
                    self._db.execute("ROLLBACK")
                raise
        return job

    def _set(self, job_id: str, **values: Any) -> None:
        """UPDATE within a transaction (the lock is held)."""
        values = {k: json.dumps(v) if k in _JSON and v is not None else v for k, v in values.items()}
        self._db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)}, version = version + 1 "
                         "WHERE id = ?", (*values.values(), job_id))

    def finish(self, job_id: str, ticket: str, **values: Any) -> bool:
        """As RedisStore.finish: set fields only while the job is active under `ticket`."""
        def change(job: Job | None) -> Job | None:
            if job is None or job.status not in ACTIVE or job.ticket != ticket:
                return None
            self._set(job_id, **values)
            return job

        return self._transaction(change, job_id) is not None

    def claim(self, job_id: str, max_attempts: int, ticket: str = "", lease_s: float = 30.0) -> Job | None:
        """Mark a queued (or re-run) job running under its lease and count the attempt. None when
        the job is gone, finished, cancelled, re-queued under another ticket, or out of attempts
        (then it is marked failed)."""
        def change(job: Job | None) -> Job | None:
            if job is None or job.status in TERMINAL or job.ticket != ticket:
                return None
            if job.cancel_requested:
                self._set(job_id, status="canceled", finished_at=time.time())
                return None
            if job.attempts >= max_attempts:
                self._set(job_id, status="failed", error=abandoned(job.attempts), finished_at=time.time())
                return None
            job.attempts, job.version = job.attempts + 1, job.version + 1
            job.status, job.started_at, job.progress = "running", time.time(), 0.0
            job.lease_until = job.started_at + lease_s
            self._set(job_id, status=job.status, attempts=job.attempts, started_at=job.started_at, progress=0.0,
                      lease_until=job.lease_until)
            return job

        return self._transaction(change, job_id)

    def renew(self, job_id: str, ticket: str, status: str, lease_s: float) -> bool:
        """Extend the lease of a job in `status` held under `ticket`; False when it is no longer held."""
        with self._lock:
            cursor = self._db.execute("UPDATE jobs SET lease_until = ? WHERE id = ? AND ticket = ? AND status = ?",
                                      (time.time() + lease_s, job_id, ticket, status))
        return cursor.rowcount == 1

    def expired(self) -> list[Job]:
        rows = self._execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE status IN ('queued', 'running') "
                             "AND lease_until < ? ORDER BY created_at", (time.time(),))
        return [self._job(r) for r in rows]

    def requeue(self, job_id: str, ticket: str, new_ticket: str, lease_s: float, *, force: bool = False,
                message: str = "re-queued") -> Job | None:
        """Take an active job still held under `ticket` whose lease has lapsed (any lease with
        force) and queue it under `new_ticket`; None when it is not so (another took it first)."""
        def change(job: Job | None) -> Job | None:
            now = time.time()
            if (job is None or job.status not in ACTIVE or job.ticket != ticket
                    or not (force or job.lease_until < now)):
                return None
            job.status, job.ticket, job.lease_until, job.message = "queued", new_ticket, now + lease_s, message
            job.version += 1
            self._set(job_id, status="queued", ticket=new_ticket, lease_until=job.lease_until, message=message)
            return job

        return self._transaction(change, job_id)

    def page(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        total = self._execute(f"SELECT COUNT(*) FROM jobs {where}", args)[0][0]
        rows = self._execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs {where} ORDER BY created_at DESC, id "
                             f"LIMIT ? OFFSET ?", (*args, limit, offset))
        return [self._job(r) for r in rows], total

    def active(self) -> list[Job]:
        rows = self._execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE status IN ('queued', 'running') "
                             "ORDER BY created_at")
        return [self._job(r) for r in rows]

    def count_active(self) -> int:
        return self._execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]

    def counts(self) -> dict[str, int]:
        """Jobs per status, every status present."""
        rows = self._execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return dict.fromkeys(STATUSES, 0) | dict(rows)

    def touch(self, job_id: str, extra_bytes: int = 0) -> None:
        """Mark a job used (for eviction). Best effort: a read never fails because this write did."""
        try:
            self._execute("UPDATE jobs SET accessed_at = ?, size_bytes = size_bytes + ? WHERE id = ?",
                          (time.time(), extra_bytes, job_id))
        except sqlite3.OperationalError as exc:
            log.warning("could not record the use of job %s: %s", job_id, exc)

    def delete(self, job_id: str) -> None:
        """Remove the files first (that frees space even when the disk is full), then the record."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self._execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def evict(self, budget_bytes: int, keep: tuple[str, ...] = ()) -> list[str]:
        """Delete ended jobs (inputs and results), least recently used first, until they fit in
        budget_bytes; the ids in `keep` are spared."""
        ended = "FROM jobs WHERE status IN ('succeeded', 'failed', 'canceled')"
        if self._execute(f"SELECT COALESCE(SUM(size_bytes), 0) {ended}")[0][0] <= budget_bytes:
            return []  # the common case, summed by SQLite without a row reaching Python
        rows = self._execute(f"SELECT id, size_bytes {ended} ORDER BY accessed_at DESC")
        total, evicted = 0, []
        for job_id, size in rows:
            total += size
            if total > budget_bytes and job_id not in keep:
                self.delete(job_id)
                evicted.append(job_id)
        return evicted

    def listen(self, changed: Callable[[str | None], None], watched: Callable[[], set[str]],
               interval: float = 0.1) -> Callable[[], None]:
        """One thread for the whole process: every `interval` s while some job is watched, reads
        SQLite's `PRAGMA data_version` (it moves when any other connection commits, in any
        process); when it moved, compares the watched jobs' versions and calls changed(id) for
        each that changed or vanished. Returns a function that stops the thread."""
        stop = threading.Event()

        def run() -> None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            seen_data, versions = None, {}  # type: tuple[int | None, dict[str, int | None]]
            try:
                while not stop.wait(interval):
                    ids = watched()
                    if not ids:
                        versions.clear()
                        continue
                    try:
                        data = db.execute("PRAGMA data_version").fetchone()[0]
                        if data == seen_data and ids <= versions.keys():
                            continue
                        seen_data = data
                        marks = ", ".join("?" * len(ids))
                        now = dict(db.execute(f"SELECT id, version FROM jobs WHERE id IN ({marks})", tuple(ids)))
                    except sqlite3.Error:
                        log.warning("the job store's change watcher could not read the store", exc_info=True)
                        continue
                    for job_id in ids:
                        if versions.get(job_id) != now.get(job_id):
                            versions[job_id] = now.get(job_id)
                            changed(job_id)
                    for job_id in versions.keys() - ids:
                        del versions[job_id]
            finally:
                db.close()

        return run_listener(run, stop)
