"""The SQLite store on its own: creation is idempotent, attempts are counted, eviction is
least-recently-used and spares active jobs; and the executor on an existing Dask scheduler."""

import logging
import time

import numpy as np
import pytest
from distributed import LocalCluster

from service.executor import Executor
from service.jobs import Jobs, split_request
from service.schemas import KernelsRequest
from service.settings import Settings
from service.store import Job, SQLiteStore


def make(store: SQLiteStore, key: str, status: str = "queued", size: int = 0) -> None:
    assert store.create(Job(id=key, operation="kernels", params={"k": key}), {"x": np.ones((2, 2))})
    store.update(key, status=status, size_bytes=size)


def test_create_once_and_inputs(tmp_path):
    store = SQLiteStore(tmp_path)
    make(store, "a" * 64)
    assert not store.create(Job(id="a" * 64, operation="kernels", params={}), {})
    np.testing.assert_array_equal(store.inputs("a" * 64)["x"], np.ones((2, 2)))
    assert store.get("a" * 64).params == {"k": "a" * 64}


def test_claim_counts_attempts_and_gives_up(tmp_path):
    store = SQLiteStore(tmp_path)
    key = "b" * 64
    make(store, key)
    for attempt in (1, 2):
        job = store.claim(key, max_attempts=2)
        assert job.status == "running" and job.attempts == attempt
    assert store.claim(key, max_attempts=2) is None
    job = store.get(key)
    assert job.status == "failed" and job.error["status"] == 500 and "2 times" in job.error["detail"]
    make(store, "c" * 64)
    store.update("c" * 64, cancel_requested=True)
    assert store.claim("c" * 64, max_attempts=2) is None and store.get("c" * 64).status == "canceled"


def test_eviction_is_lru_and_spares_active_jobs(tmp_path):
    store = SQLiteStore(tmp_path)
    for key, status in (("1", "succeeded"), ("2", "succeeded"), ("3", "running"), ("4", "succeeded")):
        make(store, key * 64, status, size=100)
        time.sleep(0.01)
    store.touch("1" * 64)  # used after 2 and 4: 2 is now the least recently used
    assert store.evict(budget_bytes=250) == ["2" * 64]
    assert store.get("2" * 64) is None and not store.job_dir("2" * 64).exists()
    assert set(store.evict(budget_bytes=0)) == {"4" * 64, "1" * 64}
    assert store.get("3" * 64).status == "running"
    assert store.page()[1] == 1


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


@pytest.mark.parametrize(("name", "value"), [("RESKERNEL_MAX_POINTS", "7"), ("RESKERNEL_WORKERS", "3")])
def test_settings_from_env(name, value):
    settings = Settings.from_env({name: value})
    assert (settings.limits.points if "POINTS" in name else settings.workers) == int(value)
