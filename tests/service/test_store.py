"""The job store's contract, on both stores: SQLite in a temporary directory, and Redis on this
machine's 127.0.0.1:6379 under a key prefix of the test's own (removed afterwards; skipped when
no Redis answers). Creation is atomic and idempotent, claims count attempts and honour the
dispatch ticket, leases are renewed and taken over by one party only, eviction is LRU and spares
active jobs, pages and counts agree, changes are pushed to listeners, and a Redis that does not
answer is StoreUnavailable (a 503). Then the executor on an existing Dask scheduler, and settings."""

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import redis
from distributed import LocalCluster
from test_server import free_port, wait_until

from service.jobs.executor import Executor
from service.jobs.ids import split_request
from service.jobs.lifecycle import Jobs
from service.jobs.watchdog import Reporter, Watchdog
from service.operations.kernels import KernelsRequest
from service.settings import Settings
from service.store.job import STATUSES, Job
from service.store.open import open_store
from service.store.protocol import StoreUnavailable
from service.store.redis import RedisStore
from service.store.sqlite import SQLiteStore

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = open_store(tmp_path)
        assert isinstance(store, SQLiteStore)
        yield store
        store.close()
        return
    if not redis_answers():
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    prefix = f"reskernel-test-{uuid.uuid4().hex}"
    store = open_store(tmp_path, REDIS_URL, prefix)
    assert isinstance(store, RedisStore)
    yield store
    store.close()
    with redis.Redis.from_url(REDIS_URL) as r:
        keys = list(r.scan_iter(f"{prefix}:*"))
        if keys:
            r.delete(*keys)


def make(store, key: str, status: str = "queued", size: int = 0, ticket: str = "") -> None:
    assert store.create(Job(id=key, operation="kernels", params={"k": key}, ticket=ticket), {"x": np.ones((2, 2))})
    store.update(key, status=status, size_bytes=size)


def test_create_once_and_inputs(store):
    make(store, "a" * 64)
    assert not store.create(Job(id="a" * 64, operation="kernels", params={}), {})
    np.testing.assert_array_equal(store.inputs("a" * 64)["x"], np.ones((2, 2)))
    job = store.get("a" * 64)
    assert job.params == {"k": "a" * 64} and job.started_at is None and job.error is None
    assert store.get("f" * 64) is None


def test_create_is_atomic_under_a_race(store):
    """Eight threads create one job at once: exactly one creates it."""
    key = "d" * 64
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda i: store.create(Job(id=key, operation="kernels", params={"i": i}),
                                                       {"x": np.ones(3)}), range(8)))
    assert created.count(True) == 1
    assert store.counts()["queued"] == 1 and store.page()[1] == 1


def test_update_changes_fields_and_versions_and_never_recreates(store):
    make(store, "a" * 64)
    before = store.get("a" * 64).version
    store.update("a" * 64, progress=0.5, message="half", error={"status": 422, "detail": "x"})
    job = store.get("a" * 64)
    assert (job.progress, job.message, job.error["status"]) == (0.5, "half", 422) and job.version > before
    store.update("a" * 64, error=None)
    assert store.get("a" * 64).error is None
    with pytest.raises(ValueError, match="unknown"):
        store.update("a" * 64, colour="red")
    store.delete("a" * 64)
    store.update("a" * 64, status="running")
    assert store.get("a" * 64) is None and not store.job_dir("a" * 64).exists()


def test_claim_counts_attempts_and_gives_up(store):
    key = "b" * 64
    make(store, key)
    for attempt in (1, 2):
        job = store.claim(key, max_attempts=2)
        assert job.status == "running" and job.attempts == attempt and job.lease_until > time.time()
        assert store.get(key).attempts == attempt
    assert store.claim(key, max_attempts=2) is None
    job = store.get(key)
    assert job.status == "failed" and job.error["status"] == 500 and "2 times" in job.error["detail"]
    make(store, "c" * 64)
    store.update("c" * 64, cancel_requested=True)
    assert store.claim("c" * 64, max_attempts=2) is None and store.get("c" * 64).status == "canceled"


def test_claim_is_atomic_and_honours_the_ticket(store):
    key = "b" * 64
    make(store, key, ticket="t1")
    assert store.claim(key, 3, ticket="other") is None and store.get(key).status == "queued"
    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda _: store.claim(key, 3, ticket="t1", lease_s=10), range(4)))
    # each claim under the current ticket is one run (a Dask retry after a worker died): counted, never lost
    assert sorted(c.attempts for c in claims if c is not None) == [1, 2, 3]
    assert store.get(key).attempts == 3 and store.get(key).status == "failed"  # the fourth: out of attempts


def test_leases_are_renewed_by_their_holder_and_taken_over_once(store):
    key = "e" * 64
    make(store, key, ticket="t1")
    assert store.renew(key, "t1", "queued", lease_s=60)
    assert not store.renew(key, "t2", "queued", lease_s=60) and not store.renew(key, "t1", "running", lease_s=60)
    assert store.expired() == []
    assert store.requeue(key, "t1", "t2", lease_s=60) is None  # the lease holds
    assert store.renew(key, "t1", "queued", lease_s=-1)  # lapsed
    assert [j.id for j in store.expired()] == [key]
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda i: store.requeue(key, "t1", f"new{i}", lease_s=60, message="again"), range(4)))
    winners = [t for t in taken if t is not None]
    assert len(winners) == 1 and winners[0].status == "queued" and winners[0].message == "again"
    job = store.get(key)
    assert job.ticket == winners[0].ticket and job.lease_until > time.time() and store.expired() == []
    assert not store.renew(key, "t1", "queued", lease_s=60)  # the old holder lost it
    assert store.claim(key, 3, ticket="t1") is None  # and its task never runs
    assert store.claim(key, 3, ticket=job.ticket).attempts == 1
    forced = store.requeue(key, job.ticket, "t3", lease_s=60, force=True)
    assert forced.status == "queued" and store.get(key).ticket == "t3"
    store.update(key, status="succeeded")
    assert store.requeue(key, "t3", "t4", lease_s=-1, force=True) is None and store.expired() == []


def reopen(store):
    """Another connection to the same store (as a worker's watchdog opens)."""
    if isinstance(store, RedisStore):
        return RedisStore(store.root, store.url, store.prefix)
    return SQLiteStore(store.root)


def test_a_running_job_lease_is_renewed_by_its_worker_until_taken_over(store):
    """The worker's watchdog renews the lease while the job runs; once the job is re-queued
    under another ticket, the watchdog stops the run without recording anything."""
    key = "f" * 64
    make(store, key, ticket="t1")
    claimed = store.claim(key, 3, ticket="t1", lease_s=0.6)
    report = Reporter(store, key)
    watchdog = Watchdog(interval=0.05)  # not started: its checks are called here, as its thread would
    with watchdog.watching(reopen(store), key, report, grace_s=60, ticket="t1", lease_s=0.6) as watched:

        def checked(condition):
            def check() -> bool:
                watchdog._check(key, watched)
                return condition()
            return check

        wait_until(checked(lambda: store.get(key).lease_until > claimed.lease_until), 10, "a renewal")
        assert not report.should_stop() and store.expired() == []
        store.requeue(key, "t1", "t2", lease_s=60, force=True)
        wait_until(checked(report.should_stop), 10, "the superseded run to stop")
        assert watched.superseded
    job = store.get(key)
    assert job.status == "queued" and job.ticket == "t2" and not job.cancel_requested


def test_eviction_counts_touched_bytes_and_forgets_deleted_jobs(store):
    """The ended jobs' total (which Redis keeps as a running sum) follows every change of size and status."""
    for key in ("5", "6", "7"):
        make(store, key * 64, "succeeded", size=100)
        time.sleep(0.01)
    make(store, "8" * 64, "running", size=1000)  # active: not counted
    assert store.evict(budget_bytes=300) == []
    store.touch("5" * 64, extra_bytes=50)  # 350 ended bytes; 5 is now the most recently used
    store.delete("7" * 64)  # 250
    assert store.evict(budget_bytes=250) == []
    store.update("8" * 64, status="failed")  # 1250
    assert store.evict(budget_bytes=1200) == ["6" * 64]  # least recently used first: 6, then 8, then 5
    assert store.evict(budget_bytes=1150) == []


def test_eviction_is_lru_and_spares_active_jobs(store):
    for key, status in (("1", "succeeded"), ("2", "succeeded"), ("3", "running"), ("4", "succeeded")):
        make(store, key * 64, status, size=100)
        time.sleep(0.01)
    store.touch("1" * 64)  # used after 2 and 4: 2 is now the least recently used
    assert store.evict(budget_bytes=250) == ["2" * 64]
    assert store.get("2" * 64) is None and not store.job_dir("2" * 64).exists()
    assert set(store.evict(budget_bytes=0)) == {"4" * 64, "1" * 64}
    assert store.get("3" * 64).status == "running"
    assert store.page()[1] == 1
    store.touch("9" * 64)  # a job that does not exist is not created
    assert store.get("9" * 64) is None


def test_pages_active_and_counts(store):
    statuses = ["queued", "running", "succeeded", "succeeded", "failed"]
    for i, status in enumerate(statuses):
        make(store, f"{i}" * 64, status)
        time.sleep(0.01)
    jobs, total = store.page(offset=1, limit=2)
    assert total == 5 and [j.id for j in jobs] == ["3" * 64, "2" * 64]  # newest first
    jobs, total = store.page(status="succeeded")
    assert total == 2 and {j.id for j in jobs} == {"2" * 64, "3" * 64}
    assert store.page(offset=10)[0] == []
    assert [j.id for j in store.active()] == ["0" * 64, "1" * 64] and store.count_active() == 2
    assert store.counts() == {s: statuses.count(s) for s in STATUSES}
    store.update("1" * 64, status="canceled")
    assert store.counts()["running"] == 0 and store.counts()["canceled"] == 1 and store.count_active() == 1


def test_changes_are_pushed_to_a_listener(store):
    key, seen = "c" * 64, []
    changed = threading.Event()

    def on_change(job_id):
        seen.append(job_id)
        changed.set()

    make(store, key)
    stop = store.listen(on_change, lambda: {key})
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the listener is subscribed: each write is then seen
            changed.clear()
            store.update(key, progress=0.1)
            if changed.wait(0.5):
                break
        for what in (lambda: store.update(key, progress=0.5), lambda: store.delete(key)):
            changed.clear()
            what()
            assert changed.wait(10), "a change was not pushed"
        assert set(seen) <= {key, None}
    finally:
        stop()


def test_a_redis_that_does_not_answer_is_unavailable(tmp_path):
    """A closed port: every call is StoreUnavailable (503), never a raw connection error."""
    store = open_store(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "reskernel-test")
    for call in (lambda: store.get("a" * 64), store.ping, store.counts, store.expired,
                 lambda: store.create(Job(id="a" * 64, operation="kernels", params={}), {"x": np.ones(2)})):
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert caught.value.status == 503
    assert not store.job_dir("a" * 64).exists()  # a failed create leaves no files
    store.touch("a" * 64)  # best effort: never raises
    store.close()


def test_a_store_url_of_another_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="RESKERNEL_STORE_URL"):
        open_store(tmp_path, "postgres://somewhere/db")


def test_an_existing_scheduler(tmp_path):
    """RESKERNEL_DASK_ADDRESS: the service uses a scheduler it did not start."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                      silence_logs=logging.ERROR) as cluster:
        settings = Settings.from_env({"RESKERNEL_DASK_ADDRESS": cluster.scheduler_address,
                                      "RESKERNEL_DATA_DIR": str(tmp_path)})
        assert settings.dask_address == cluster.scheduler_address
        jobs = Jobs(settings, SQLiteStore(settings.data_dir), Executor(settings))
        jobs.start()
        try:
            request = KernelsRequest.model_validate({"x": [[1.0, 0.0]], "architecture": {"kind": "mlp", "depth": 2}})
            job, hit = jobs.submit("kernels", *split_request(request))
            deadline = time.monotonic() + 120
            while jobs.get(job.id).status != "succeeded":
                assert time.monotonic() < deadline and jobs.get(job.id).status in ("queued", "running")
                time.sleep(0.1)
            assert not hit and jobs.executor.cluster is None
        finally:
            jobs.close()


@pytest.mark.parametrize(("name", "value"), [("RESKERNEL_MAX_POINTS", "7"), ("RESKERNEL_WORKERS", "3"),
                                             ("RESKERNEL_STORE_URL", REDIS_URL), ("RESKERNEL_STORE_PREFIX", "p"),
                                             ("RESKERNEL_LEASE_S", "2.5")])
def test_settings_from_env(name, value):
    settings = Settings.from_env({name: value})
    read = {"RESKERNEL_MAX_POINTS": settings.limits.points, "RESKERNEL_WORKERS": settings.workers,
            "RESKERNEL_STORE_URL": settings.store_url, "RESKERNEL_STORE_PREFIX": settings.store_prefix,
            "RESKERNEL_LEASE_S": settings.lease_s}[name]
    assert str(read) == value
