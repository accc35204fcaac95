"""The Redis job store that API replicas share (RESKERNEL_STORE_URL=redis://host:port/db).

Redis holds the records only: job fields, progress, the cancel flag, attempts and leases. The
files (inputs, results) stay in the data directory, a volume every replica and worker mounts.

Keys, under the prefix P: P:job:<id> (a hash of the record, plus accessed_at), and sorted sets
P:created (every job, by creation time), P:status:<status> (by creation time: pages, counts),
P:ended (ended jobs, by last use: eviction; their bytes summed in P:ended_bytes) and P:leases
(active jobs, by lease expiry). A change that reads before it writes runs as a WATCH/MULTI
transaction, so it is atomic across replicas; each committed change is published on the
channel P:changes (the job id), which is how every replica learns of it without polling.
Leases use each process's wall clock (replicas and workers on one host, or NTP-synchronised
hosts).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, OutOfMemoryError, WatchError
from redis.retry import Retry

from service.errors import QueueFull
from service.store import scripts
from service.store.files import DataFiles
from service.store.job import ACTIVE, STATUSES, TERMINAL, Job, abandoned
from service.store.protocol import StoreUnavailable, run_listener

log = logging.getLogger("reskernel")
R = TypeVar("R")
_FIELDS = {f.name: f.type for f in fields(Job)}
_JSON = ("params", "error")
_DOWN = (redis.ConnectionError, redis.TimeoutError, BusyLoadingError)
# full (maxmemory with noeviction): it answers reads but refuses writes; unavailable as well
_REFUSED = (*_DOWN, OutOfMemoryError)

def _encode(name: str, value: Any) -> str:
    if name in _JSON:
        return json.dumps(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(value) if isinstance(value, float) else str(value)


def _decode(raw: dict[str, str]) -> Job | None:
    if not raw:
        return None
    values: dict[str, Any] = {}
    for name, kind in _FIELDS.items():
        if name not in raw:
            continue  # None (started_at, finished_at, error)
        text = raw[name]
        if name in _JSON:
            values[name] = json.loads(text)
        elif name == "cancel_requested":
            values[name] = text == "1"
        elif "float" in kind:
            values[name] = float(text)
        elif kind == "int":
            values[name] = int(text)
        else:
            values[name] = text
    return Job(**values)


def _available(method: Callable[..., R]) -> Callable[..., R]:
    """Redis down (refused, timed out, loading its AOF) or full (out of memory: it refuses writes)
    is StoreUnavailable: a 503, never a 500."""
    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> R:
        try:
            return method(*args, **kwargs)
        except OutOfMemoryError as exc:
            raise StoreUnavailable(f"the job store (Redis) is full and refuses writes: {exc}") from exc
        except _DOWN as exc:
            raise StoreUnavailable(f"the job store (Redis) does not answer: {exc}") from exc

    return wrapped


class RedisStore(DataFiles):
    """Records in Redis under `prefix`, files under data_dir. Safe to share between threads."""

    shared = True  # several API replicas

    def __init__(self, data_dir: str | Path, url: str, prefix: str = "reskernel"):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url, self.prefix = url, prefix
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5,
                                           health_check_interval=10,
                                           retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
        self._renew = self._redis.register_script(scripts.RENEW)
        self._touch = self._redis.register_script(scripts.TOUCH)
        self._delete = self._redis.register_script(scripts.DELETE)

    def close(self) -> None:
        self._redis.close()

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _index(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @_available
    def ping(self) -> None:
        """A write, not only a PING: a full Redis (maxmemory, noeviction) answers PING but refuses writes."""
        self._redis.set(self._index("ready"), repr(time.time()), px=60_000)

    def _change(self, job_id: str, decide: Callable[[Job | None, dict[str, str]], tuple[dict[str, Any] | None, R]],
                also: tuple[str, ...] = ()) -> R:
        """decide(job, raw hash) -> (the fields to write or None, what to return), applied in a
        WATCH/MULTI transaction (re-run when another writer got in between); the keys `also`
        are watched too (decide reads them)."""
        key = self._key(job_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key, *also)
                    raw = cast(dict[str, str], pipe.hgetall(key))  # decode_responses: str
                    job = _decode(raw)
                    values, result = decide(job, raw)
                    if values is None:
                        pipe.unwatch()
                        return result
                    pipe.multi()
                    self._write(pipe, job_id, job, raw, values)
                    pipe.execute()
                    return result
                except WatchError:
                    continue

    def _write(self, pipe: Any, job_id: str, job: Job | None, raw: dict[str, str], values: dict[str, Any]) -> None:
        """Queue the writes of a change: the fields (None deletes one), the version, the indexes, the event."""
        key = self._key(job_id)
        new = {**raw, **{k: _encode(k, v) for k, v in values.items() if v is not None}}
        for name in values:
            if values[name] is None:
                new.pop(name, None)
        new["version"] = str(int(raw.get("version", "0")) + 1)
        gone = [name for name in raw if name not in new]
        if gone:
            pipe.hdel(key, *gone)
        pipe.hset(key, mapping={k: v for k, v in new.items() if raw.get(k) != v})
        created = float(new["created_at"])
        if job is None:
            pipe.zadd(self._index("created"), {job_id: created})
        elif job.status != new["status"]:
            pipe.zrem(self._index(f"status:{job.status}"), job_id)
        pipe.zadd(self._index(f"status:{new['status']}"), {job_id: created})
        ended_before = int(raw.get("size_bytes", "0")) if job is not None and job.status not in ACTIVE else 0
        ended_now = int(new.get("size_bytes", "0")) if new["status"] not in ACTIVE else 0
        if ended_now != ended_before:
            pipe.incrby(self._index("ended_bytes"), ended_now - ended_before)
        if new["status"] in ACTIVE:
            pipe.zrem(self._index("ended"), job_id)
            pipe.zadd(self._index("leases"), {job_id: float(new["lease_until"])})
        else:
            pipe.zrem(self._index("leases"), job_id)
            pipe.zadd(self._index("ended"), {job_id: float(new["accessed_at"])})
        pipe.publish(self._index("changes"), job_id)

    @_available
    def create(self, job: Job, inputs: dict[str, np.ndarray], limit: int | None = None) -> bool:
        """Insert a new record (after its input files); False when the id exists already (the
        files, equal by content, are left to the job that does); QueueFull when `limit` jobs
        are active already. Atomic across replicas: the active jobs' indexes are watched."""
        if self._redis.exists(self._key(job.id)):
            return False
        active = tuple(self._index(f"status:{status}") for status in ACTIVE)

        def decide(old: Job | None, raw: dict[str, str]) -> tuple[dict[str, Any] | None, bool]:
            if old is not None:
                return None, False
            if limit is not None and sum(int(self._redis.zcard(index)) for index in active) >= limit:
                raise QueueFull(f"{limit} jobs are queued or running; retry later", headers={"Retry-After": "5"})
            return record, True

        try:
            job.size_bytes, job.version = self.write_inputs(job.id, inputs), 0
            record = {f: getattr(job, f) for f in _FIELDS if f != "version"} | {"accessed_at": time.time()}
            return self._change(job.id, decide, also=active if limit is not None else ())
        except BaseException:
            try:
                if not self._redis.exists(self._key(job.id)):
                    shutil.rmtree(self.job_dir(job.id), ignore_errors=True)
            except _DOWN:
                pass
            raise

    @_available
    def get(self, job_id: str) -> Job | None:
        return _decode(cast(dict[str, str], self._redis.hgetall(self._key(job_id))))

    @_available
    def update(self, job_id: str, **values: Any) -> None:
        """Set fields of an existing job (a deleted one stays deleted)."""
        unknown = set(values) - set(_FIELDS) - {"accessed_at"}
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        self._change(job_id, lambda job, raw: (None, None) if job is None else (values, None))

    @_available
    def finish(self, job_id: str, ticket: str, **values: Any) -> bool:
        """Set fields of a job only while it is active and held under `ticket` (a compare-and-set:
        the end of a dispatch never touches a later one); whether it did."""
        return self._change(job_id, lambda job, raw: (values, True) if job is not None and job.status in ACTIVE
                            and job.ticket == ticket else (None, False))

    @_available
    def claim(self, job_id: str, max_attempts: int, ticket: str = "", lease_s: float = 30.0) -> Job | None:
        """As SQLiteStore.claim: the job running under `ticket`, its attempt counted; or None."""
        def decide(job: Job | None, raw: dict[str, str]) -> tuple[dict[str, Any] | None, Job | None]:
            if job is None or job.status in TERMINAL or job.ticket != ticket:
                return None, None
            if job.cancel_requested:
                return {"status": "canceled", "finished_at": time.time()}, None
            if job.attempts >= max_attempts:
                return {"status": "failed", "error": abandoned(job.attempts), "finished_at": time.time()}, None
            now = time.time()
            values: dict[str, Any] = {"status": "running", "attempts": job.attempts + 1, "started_at": now,
                                      "progress": 0.0, "lease_until": now + lease_s}
            return values, replace(job, **values, version=job.version + 1)

        return self._change(job_id, decide)

    @_available
    def renew(self, job_id: str, ticket: str, status: str, lease_s: float) -> bool:
        """Extend the lease of a job in `status` held under `ticket`; False when it is no longer held."""
        return bool(self._renew(keys=[self._key(job_id), self._index("leases")],
                                args=[ticket, status, repr(time.time() + lease_s), job_id]))

    @_available
    def expired(self) -> list[Job]:
        ids = cast(list[str], self._redis.zrangebyscore(self._index("leases"), "-inf", f"({time.time()!r}"))
        return [j for j in self._jobs(ids) if j.status in ACTIVE]

    @_available
    def requeue(self, job_id: str, ticket: str, new_ticket: str, lease_s: float, *, force: bool = False,
                message: str = "re-queued") -> Job | None:
        """As SQLiteStore.requeue: a compare-and-set on the ticket, so one replica wins."""
        def decide(job: Job | None, raw: dict[str, str]) -> tuple[dict[str, Any] | None, Job | None]:
            now = time.time()
            if (job is None or job.status not in ACTIVE or job.ticket != ticket
                    or not (force or job.lease_until < now)):
                return None, None
            values: dict[str, Any] = {"status": "queued", "ticket": new_ticket, "lease_until": now + lease_s,
                                      "message": message}
            return values, replace(job, **values, version=job.version + 1)

        return self._change(job_id, decide)

    def _jobs(self, ids: list[str]) -> list[Job]:
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self._key(job_id))
            return [job for raw in pipe.execute() if (job := _decode(raw)) is not None]

    @_available
    def page(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]:
        index = self._index(f"status:{status}" if status else "created")
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(index)
            pipe.zrange(index, offset, offset + limit - 1, desc=True)
            total, ids = pipe.execute()
        return self._jobs(ids), total

    @_available
    def active(self) -> list[Job]:
        with self._redis.pipeline(transaction=False) as pipe:
            for status in ACTIVE:
                pipe.zrange(self._index(f"status:{status}"), 0, -1, withscores=True)
            entries = sorted((score, job_id) for listed in pipe.execute() for job_id, score in listed)
        return [j for j in self._jobs([job_id for _, job_id in entries]) if j.status in ACTIVE]

    @_available
    def count_active(self) -> int:
        counts = self.counts()
        return sum(counts[status] for status in ACTIVE)

    @_available
    def counts(self) -> dict[str, int]:
        """Jobs per status, every status present."""
        with self._redis.pipeline(transaction=False) as pipe:
            for status in STATUSES:
                pipe.zcard(self._index(f"status:{status}"))
            return dict(zip(STATUSES, pipe.execute(), strict=True))

    def touch(self, job_id: str, extra_bytes: int = 0) -> None:
        """Mark a job used (for eviction). Best effort: a read never fails because this write did."""
        try:
            self._touch(keys=[self._key(job_id), self._index("ended"), self._index("ended_bytes")],
                        args=[repr(time.time()), extra_bytes, job_id])
        except redis.RedisError as exc:
            log.warning("could not record the use of job %s: %s", job_id, exc)

    @_available
    def delete(self, job_id: str) -> None:
        """Remove the files first, then the record and its index entries."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self._delete(keys=[self._key(job_id), self._index("ended"), self._index("ended_bytes")], args=[job_id])
        with self._redis.pipeline() as pipe:
            for index in ("created", "ended", "leases", *(f"status:{s}" for s in STATUSES)):
                pipe.zrem(self._index(index), job_id)
            pipe.publish(self._index("changes"), job_id)
            pipe.execute()

    @_available
    def evict(self, budget_bytes: int, keep: tuple[str, ...] = ()) -> list[str]:
        """Delete ended jobs, least recently used first, until they fit in budget_bytes; `keep` is spared.
        Their total is kept in P:ended_bytes, so that a store within its budget (the common case,
        after every job) reads no job's size."""
        if int(self._redis.get(self._index("ended_bytes")) or 0) <= budget_bytes:
            return []
        ids = cast(list[str], self._redis.zrange(self._index("ended"), 0, -1, desc=True))
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._key(job_id), "size_bytes")
            sizes = pipe.execute()
        total, evicted = 0, []
        for job_id, size in zip(ids, sizes, strict=True):
            total += int(size or 0)
            if total > budget_bytes and job_id not in keep:
                self.delete(job_id)
                evicted.append(job_id)
        return evicted

    def listen(self, changed: Callable[[str | None], None], watched: Callable[[], set[str]]) -> Callable[[], None]:
        """One subscriber thread for the process on P:changes: changed(id) for each watched job
        that changed; after a lost connection, changed(None) (re-read everything: events may
        have been missed). Returns a function that stops the thread."""
        stop = threading.Event()
        channel = self._index("changes")

        def run() -> None:
            pubsub, down = None, False
            while not stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                        pubsub.subscribe(channel)
                        if down:
                            log.info("the job store answers again")
                            down = False
                            changed(None)
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message["data"] in watched():
                        changed(message["data"])
                except Exception as exc:  # Redis down, or this client closed under it
                    if stop.is_set():
                        break
                    if not down:
                        log.warning("lost the job store's change events (%s); reconnecting", exc)
                    down = True
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            pubsub.close()
                    pubsub = None
                    stop.wait(0.5)
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    pubsub.close()

        return run_listener(run, stop)
