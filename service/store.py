"""Job records and results. `Store` is the interface; `SQLiteStore` is the embedded default:
SQLite (WAL) for records, `.npy` files for arrays, under one data directory that the API
process and its local workers share.

Layout: data_dir/jobs.sqlite3; data_dir/jobs/<id[:2]>/<id>/ holds input-<name>.npy (the
request's arrays, kept so queued jobs survive a restart) and result/ (meta.json, one
<name>.npy per array, result.json once rendered).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger("reskernel")
ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "canceled")


@dataclass
class Job:
    """The stored job record."""

    id: str
    operation: str
    params: dict[str, Any]
    status: str = "queued"
    progress: float = 0.0
    message: str = ""
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    cancel_requested: bool = False
    size_bytes: int = 0


class Store(Protocol):
    """What the service needs of a job store (records, and result files under result_dir)."""

    def create(self, job: Job, inputs: dict[str, np.ndarray]) -> bool: ...
    def get(self, job_id: str) -> Job | None: ...
    def update(self, job_id: str, **values: Any) -> None: ...
    def claim(self, job_id: str, max_attempts: int) -> Job | None: ...
    def page(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]: ...
    def active(self) -> list[Job]: ...
    def count_active(self) -> int: ...
    def counts(self) -> dict[str, int]: ...
    def inputs(self, job_id: str) -> dict[str, np.ndarray]: ...
    def staging(self, job_id: str) -> Path: ...
    def commit(self, job_id: str, staging: Path, meta: dict[str, Any]) -> None: ...
    def result_dir(self, job_id: str) -> Path: ...
    def job_dir(self, job_id: str) -> Path: ...
    def touch(self, job_id: str, extra_bytes: int = 0) -> None: ...
    def delete(self, job_id: str) -> None: ...
    def evict(self, budget_bytes: int, keep: tuple[str, ...] = ()) -> list[str]: ...


_COLUMNS = ("id", "operation", "params", "status", "progress", "message", "attempts", "created_at",
            "started_at", "finished_at", "error", "cancel_requested", "size_bytes")
_JSON = ("params", "error")


class SQLiteStore:
    """Safe to share between threads, and between processes on one machine (WAL)."""

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite3", timeout=60, isolation_level=None,
                                   check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, operation TEXT NOT NULL, params TEXT NOT NULL,"
                " status TEXT NOT NULL, progress REAL NOT NULL, message TEXT NOT NULL, attempts INTEGER NOT NULL,"
                " created_at REAL NOT NULL, started_at REAL, finished_at REAL, error TEXT,"
                " cancel_requested INTEGER NOT NULL, size_bytes INTEGER NOT NULL, accessed_at REAL NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, accessed_at)")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)")

    def close(self) -> None:
        self._db.close()

    def _execute(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _job(self, row: tuple) -> Job:
        values = dict(zip(_COLUMNS, row, strict=True))
        for name in _JSON:
            values[name] = None if values[name] is None else json.loads(values[name])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return Job(**values)

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id[:2] / job_id

    def create(self, job: Job, inputs: dict[str, np.ndarray]) -> bool:
        """Insert a new record with its input files; False (and nothing written) when the id
        exists already. A failure (a full disk) leaves nothing behind and raises."""
        if self.get(job.id) is not None:
            return False
        folder = self.job_dir(job.id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, array in inputs.items():
                _save_atomic(folder / f"input-{name}.npy", array)
            job.size_bytes = _size(folder)
            values = [getattr(job, c) for c in _COLUMNS]
            values = [json.dumps(v) if c in _JSON and v is not None else v
                      for c, v in zip(_COLUMNS, values, strict=True)]
            with self._lock:
                cursor = self._db.execute(
                    f"INSERT OR IGNORE INTO jobs ({', '.join(_COLUMNS)}, accessed_at) VALUES "
                    f"({', '.join('?' * (len(_COLUMNS) + 1))})", (*values, time.time()))
            return cursor.rowcount == 1
        except BaseException:
            if self.get(job.id) is None:
                shutil.rmtree(folder, ignore_errors=True)
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
        self._execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id))

    def claim(self, job_id: str, max_attempts: int) -> Job | None:
        """Mark a queued (or re-run) job running and count the attempt. None when the job is
        gone, finished, cancelled, or out of attempts (then it is marked failed)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchall()
                job = self._job(rows[0]) if rows else None
                if job is None or job.status in TERMINAL:
                    job = None
                elif job.cancel_requested:
                    self._db.execute("UPDATE jobs SET status = 'canceled', finished_at = ? WHERE id = ?",
                                     (time.time(), job_id))
                    job = None
                elif job.attempts >= max_attempts:
                    error = {"status": 500, "title": "Job abandoned", "abandoned": True,
                             "detail": f"the job was started {job.attempts} times and never finished "
                                       "(its worker or the service died each time); DELETE it to try again"}
                    self._db.execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                                     (json.dumps(error), time.time(), job_id))
                    job = None
                else:
                    job.attempts += 1
                    job.status, job.started_at = "running", time.time()
                    self._db.execute("UPDATE jobs SET status = ?, attempts = ?, started_at = ?, progress = 0 "
                                     "WHERE id = ?", (job.status, job.attempts, job.started_at, job_id))
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction
                    self._db.execute("ROLLBACK")
                raise
        return job

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
        """Jobs per status: every status in ACTIVE and TERMINAL, zeros included."""
        counts = dict.fromkeys((*ACTIVE, *TERMINAL), 0)
        counts.update(self._execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
        return counts

    def inputs(self, job_id: str) -> dict[str, np.ndarray]:
        return {p.name[len("input-"):-len(".npy")]: np.load(p) for p in self.job_dir(job_id).glob("input-*.npy")}

    def staging(self, job_id: str) -> Path:
        """A fresh folder for a run's result files; `commit` makes it the result."""
        path = self.job_dir(job_id) / f"staging-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def commit(self, job_id: str, staging: Path, meta: dict[str, Any]) -> None:
        (staging / "meta.json").write_text(json.dumps(meta))
        final = self.result_dir(job_id)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        size = _size(self.job_dir(job_id))
        self.update(job_id, status="succeeded", progress=1.0, message="done", finished_at=time.time(),
                    size_bytes=size, accessed_at=time.time())

    def result_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result"

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


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _save_atomic(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(temporary, "wb") as f:
        np.save(f, array)
    temporary.replace(path)
