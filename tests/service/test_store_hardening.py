"""Issue 19, store and jobs: DELETE holds no thread while it waits, a full Redis is an
unavailable store, an end is recorded only under its dispatch's ticket, an .npz download
survives its result's eviction, the event-stream and queue limits hold under a burst, a 507
job failure says when to retry, and the lease loop re-queues by itself. These tests run no
Dask worker: jobs are made in the store and an idle executor dispatches nothing."""

from __future__ import annotations

import asyncio
import io
import shutil
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
from sse_starlette import EventSourceResponse
from starlette.requests import Request

from service.errors import QueueFull
from service.http.app import create_app
from service.http.results import respond
from service.jobs import worker
from service.jobs.lifecycle import Jobs
from service.store.job import Job
from service.store.protocol import StoreUnavailable
from service.store.redis import RedisStore
from service.store.sqlite import SQLiteStore

PROBLEM = "application/problem+json"


def redis_answers() -> bool:
    """Whether the machine's Redis answers (the tests that use it do so under a key prefix of their own)."""
    import redis

    try:
        return bool(redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class IdleExecutor:
    """An executor with one worker that never runs anything: it records what it was given."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []  # (job id, ticket)
        self.cancelled: list[str] = []

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def submit(self, job_id: str, operation: str, params: dict[str, Any], on_done: Any, ticket: str = "",
               seconds: float | None = None) -> None:
        self.submitted.append((job_id, ticket))

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def workers(self) -> int:
        return 1

    def describe(self) -> None:
        return None

    def worker_pids(self) -> dict[str, int]:
        return {}


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://reskernel", timeout=60)


def running(store: Any, key: str, ticket: str = "t1", lease_s: float = 3600) -> None:
    """A job in the store, running under `ticket` (as a worker that claimed it leaves it)."""
    assert store.create(Job(id=key, operation="kernels", params={}, ticket=ticket,
                            lease_until=time.time() + lease_s), {"x": np.ones((2, 2))})
    assert store.claim(key, 3, ticket=ticket, lease_s=lease_s) is not None


@pytest.fixture
def local(settings, tmp_path):
    """Jobs on a SQLite store of its own with an idle executor (nothing runs), and its app."""
    own = replace(settings, data_dir=tmp_path, cancel_grace_s=3)
    jobs = Jobs(own, SQLiteStore(tmp_path), IdleExecutor())  # type: ignore[arg-type]
    yield jobs, create_app(own, jobs)
    jobs.close()
    jobs.store.close()


# ---------------------------------------------------------------- item 5: DELETE holds no thread

@pytest.mark.anyio
async def test_concurrent_deletes_of_a_running_job_leave_the_service_responsive(local):
    """45 DELETEs of a running job that never stops (no worker): each waits the grace time and
    a little (8 s here); meanwhile /readyz and the job list, which need a pool thread, answer at
    once. Deleting by sleeping in pool threads took all 40 of them for the whole wait."""
    jobs, app = local
    key = "d" * 64
    running(jobs.store, key)
    async with client(app) as api:
        deletes = [asyncio.create_task(api.delete(f"/v1/jobs/{key}")) for _ in range(45)]
        await asyncio.sleep(1.0)  # every DELETE is waiting by now
        assert jobs.store.get(key).cancel_requested and not any(d.done() for d in deletes)
        started = time.monotonic()
        ready = await api.get("/readyz")
        listed = await api.get("/v1/jobs")
        elapsed = time.monotonic() - started
        assert ready.status_code == 200 and listed.status_code == 200
        assert elapsed < 3.0, f"/readyz and /v1/jobs took {elapsed:.1f} s while DELETEs waited"
        answers = await asyncio.gather(*deletes)
    assert [a.status_code for a in answers] == [204] * 45
    assert jobs.store.get(key) is None and not jobs.store.job_dir(key).exists()


@pytest.mark.anyio
async def test_delete_returns_once_the_job_has_ended(local):
    """A DELETE waiting on a running job returns as soon as the job ends (woken, not timed out)."""
    jobs, app = local
    key = "e" * 64
    running(jobs.store, key)
    async with client(app) as api:
        started = time.monotonic()
        delete = asyncio.create_task(api.delete(f"/v1/jobs/{key}"))
        await asyncio.sleep(0.5)
        jobs.store.update(key, status="canceled", finished_at=time.time())  # as its worker would
        jobs.changes.notify(key)
        assert (await delete).status_code == 204
    assert time.monotonic() - started < 4.0  # the wait alone would have lasted 8 s
    assert jobs.store.get(key) is None


# ---------------------------------------------------------------- item 6: a full Redis, and tickets

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def full_redis(tmp_path):
    """A redis-server of its own (maxmemory 4 MB, noeviction, as compose sets it), and `fill`, which fills it."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--maxmemory", "4mb", "--maxmemory-policy", "noeviction",
                                "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    raw = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            raw.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def fill() -> None:  # ballast, then the limit below what is used: every write refused, not only the next
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(100_000):
                raw.set(f"ballast:{i}", b"x" * 4096)
        raw.config_set("maxmemory", int(raw.info("memory")["used_memory"]) // 2)

    yield url, fill, raw
    raw.close()
    process.terminate()
    process.wait(10)


def test_a_full_redis_is_an_unavailable_store(full_redis, tmp_path):
    url, fill, _ = full_redis
    store = RedisStore(tmp_path / "data", url, prefix=f"t{uuid.uuid4().hex[:8]}")
    try:
        running(store, "a" * 64)
        store.ping()
        fill()
        assert store.get("a" * 64).status == "running"  # reads still work
        for write in (store.ping, lambda: store.update("a" * 64, progress=0.5),
                      lambda: store.finish("a" * 64, "t1", status="failed"),
                      lambda: store.create(Job(id="b" * 64, operation="kernels", params={}), {"x": np.ones(2)})):
            with pytest.raises(StoreUnavailable) as refused:
                write()
            assert refused.value.headers["Retry-After"]
        assert not store.job_dir("b" * 64).exists()  # the refused create left no files
    finally:
        store.close()


@pytest.mark.anyio
async def test_a_full_redis_answers_503_and_is_not_ready(full_redis, settings, tmp_path):
    url, fill, _ = full_redis
    own = replace(settings, data_dir=tmp_path)
    jobs = Jobs(own, RedisStore(tmp_path, url, prefix=f"t{uuid.uuid4().hex[:8]}"), IdleExecutor())  # type: ignore[arg-type]
    try:
        async with client(create_app(own, jobs)) as api:
            assert (await api.get("/readyz")).status_code == 200
            fill()
            body = {"x": [[0.25, 0.5]], "architecture": {"kind": "mlp", "depth": 2}}
            posted = await api.post("/v1/kernels", json=body, headers={"Prefer": "respond-async"})
            assert posted.status_code == 503, posted.text
            assert posted.headers["content-type"] == PROBLEM and int(posted.headers["retry-after"]) > 0
            ready = await api.get("/readyz")
            assert ready.status_code == 503 and int(ready.headers["retry-after"]) > 0
    finally:
        jobs.store.close()


def test_a_settled_end_never_touches_a_later_dispatch(local):
    """A task's end that could not be recorded (the store refused the write) is settled later
    only under that task's ticket: the job, re-queued meanwhile and running again under a new
    ticket, is left to its new run."""
    jobs, _ = local
    key = "f" * 64
    running(jobs.store, key, ticket="old")
    jobs._unsettled[key] = ("old", {"status": 507, "title": "Insufficient storage", "detail": "full"})
    taken = jobs.store.requeue(key, "old", "new", 60, force=True)
    assert taken is not None and jobs.store.claim(key, 3, ticket="new", lease_s=60) is not None
    jobs._settle()
    job = jobs.store.get(key)
    assert (job.status, job.ticket, job.error) == ("running", "new", None)
    assert key not in jobs._unsettled  # nothing left to settle: the old dispatch is over
    jobs._unsettled[key] = ("new", {"status": 507, "title": "Insufficient storage", "detail": "full"})
    jobs._settle()  # under the current ticket it is recorded
    assert jobs.store.get(key).status == "failed" and jobs.store.get(key).error["status"] == 507


def test_a_superseded_run_records_nothing(tmp_path, monkeypatch):
    """A run whose job was re-queued elsewhere (its lease taken over) leaves the job to that
    run: its failure is not recorded."""
    store = SQLiteStore(tmp_path)
    key = "a" * 64
    running(store, key, ticket="old")
    store.requeue(key, "old", "new", 60, force=True)

    def fails(*args: Any) -> Any:
        raise ValueError("the run failed after it was superseded")

    monkeypatch.setitem(worker.RUNS, "kernels", fails)
    watched = type("Watched", (), {"superseded": True})()
    report = worker.Reporter(store, key)
    assert worker._run(store, key, "kernels", {}, report, watched) == "superseded"  # type: ignore[arg-type]
    job = store.get(key)
    assert (job.status, job.ticket, job.error) == ("queued", "new", None)


# ---------------------------------------------------------------- item 7: a download outlives eviction

@pytest.mark.anyio
async def test_an_npz_download_survives_its_result_being_evicted(tmp_path):
    """The .npz is streamed member by member; the result's folder deleted after the first chunk
    (evicted) must not cut the download short: every member is opened before it starts."""
    store = SQLiteStore(tmp_path)
    key = "c" * 64
    running(store, key)
    folder = store.staging(key)
    arrays = {name: np.random.default_rng(i).normal(size=(300, 300)) for i, name in enumerate(("a", "b", "c"))}
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    store.commit(key, folder, {"values": {}, "arrays": {n: {"shape": list(a.shape)} for n, a in arrays.items()}})
    request = Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                       "headers": [(b"accept", b"application/x-npz")]})
    response = respond(store, store.get(key), request, hit=True, json_limit=10)
    chunks = response.body_iterator
    body = [await chunks.__anext__()]  # type: ignore[union-attr]
    store.delete(key)  # evicted while it is being sent
    assert not store.job_dir(key).exists()
    body += [chunk async for chunk in chunks]
    received = np.load(io.BytesIO(b"".join(c if isinstance(c, bytes) else c.encode() for c in body)))
    for name, array in arrays.items():
        np.testing.assert_array_equal(received[name], array)


# ---------------------------------------------------------------- items 8, 9: limits under a burst

@pytest.mark.anyio
async def test_a_burst_of_event_streams_stays_within_the_cap(local, monkeypatch):
    """30 streams asked at once with a cap of 4: 4 open, 26 refused. Each response starts a
    little late (as behind a slow proxy), so a count taken only once a stream starts overshoots."""
    original = EventSourceResponse.__call__

    async def late(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.2)
        await original(self, scope, receive, send)

    monkeypatch.setattr(EventSourceResponse, "__call__", late)
    jobs, _ = local
    key = "b" * 64
    running(jobs.store, key)
    own = replace(jobs.settings, event_stream_s=1.0, limits=replace(jobs.settings.limits, event_streams=4))
    app = create_app(own, jobs)
    async with client(app) as api:
        answers = await asyncio.gather(*(api.get(f"/v1/jobs/{key}/events") for _ in range(30)))
        codes = [a.status_code for a in answers]
        assert codes.count(200) == 4 and codes.count(429) == 26, codes
        assert app.state.event_streams == 0  # every slot given back
        assert (await api.get(f"/v1/jobs/{key}/events")).status_code == 200


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_queue_limit_holds_under_a_burst_across_replicas(kind, tmp_path):
    """Two stores on one database (two replicas) create 40 jobs at once under a limit of 7:
    exactly 7 are created, the others refused with nothing left behind."""
    if kind == "sqlite":
        stores = [SQLiteStore(tmp_path), SQLiteStore(tmp_path)]
    else:
        if not redis_answers():
            pytest.skip("no Redis at 127.0.0.1:6379")
        prefix = f"reskernel-test-{uuid.uuid4().hex[:8]}"
        stores = [RedisStore(tmp_path, "redis://127.0.0.1:6379/0", prefix=prefix) for _ in range(2)]
    barrier = threading.Barrier(40)

    def create(i: int) -> bool:
        job = Job(id=f"{i:064x}", operation="kernels", params={})
        barrier.wait()
        try:
            return stores[i % 2].create(job, {"x": np.ones(2)}, limit=7)
        except QueueFull:
            return False

    try:
        with ThreadPoolExecutor(40) as pool:
            created = list(pool.map(create, range(40)))
        assert sum(created) == 7 and stores[0].count_active() == 7
        kept = [i for i in range(40) if stores[1].job_dir(f"{i:064x}").exists()]
        assert kept == [i for i, made in enumerate(created) if made]
    finally:
        if kind == "redis":
            for i in range(40):
                stores[0].delete(f"{i:064x}")
            stores[0]._redis.delete(stores[0]._index("ended_bytes"))
        for store in stores:
            store.close()


# ---------------------------------------------------------------- item 12, and the lease loop

@pytest.mark.anyio
async def test_a_507_job_failure_says_when_to_retry(local):
    jobs, app = local
    key = "9" * 64
    running(jobs.store, key)
    jobs.store.update(key, status="failed", finished_at=time.time(),
                      error={"status": 507, "title": "Insufficient storage", "detail": "the disk filled up"})
    async with client(app) as api:
        answer = await api.get(f"/v1/jobs/{key}/result")
    assert answer.status_code == 507 and answer.headers["content-type"] == PROBLEM
    assert int(answer.headers["retry-after"]) > 0


def test_the_lease_loop_requeues_a_lapsed_job_by_itself(settings, tmp_path):
    """Started, the lease loop (every lease_s / 3) finds a job whose lease lapsed after the start
    and re-queues and dispatches it under a new ticket; nothing calls the recovery by hand."""
    own = replace(settings, data_dir=tmp_path, lease_s=0.6)
    executor = IdleExecutor()
    jobs = Jobs(own, SQLiteStore(tmp_path), executor)  # type: ignore[arg-type]
    jobs.start()
    try:
        key = "7" * 64
        running(jobs.store, key, ticket="dead", lease_s=0.3)  # its worker died: nobody renews it
        deadline = time.monotonic() + 10
        while not executor.submitted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [k for k, _ in executor.submitted] == [key]
        job = jobs.store.get(key)
        assert job.status == "queued" and job.ticket == executor.submitted[0][1] != "dead"
        assert "re-queued" in job.message
    finally:
        jobs.close()
        jobs.store.close()


def test_the_running_byte_sum_of_redis_eviction_follows_deletes(tmp_path):
    """P:ended_bytes, the sum eviction reads first, loses a deleted job's bytes."""
    if not redis_answers():
        pytest.skip("no Redis at 127.0.0.1:6379")
    store = RedisStore(tmp_path, "redis://127.0.0.1:6379/0", prefix=f"reskernel-test-{uuid.uuid4().hex[:8]}")
    keys = [f"{i:064x}" for i in range(3)]
    try:
        for key in keys:
            running(store, key)
            store.update(key, status="succeeded", finished_at=time.time())

        def total() -> int:
            return int(store._redis.get(store._index("ended_bytes")) or 0)

        sizes = {key: store.get(key).size_bytes for key in keys}
        assert all(sizes.values()) and total() == sum(sizes.values())
        store.delete(keys[0])
        assert total() == sizes[keys[1]] + sizes[keys[2]]
        store.touch(keys[1], extra_bytes=100)
        store.delete(keys[1])
        assert total() == sizes[keys[2]]
    finally:
        for key in keys:
            store.delete(key)
        store._redis.delete(store._index("ended_bytes"))
        store.close()
