"""What keeps a small job's overhead small: small jobs share Dask tasks (with a fake Dask client),
one store per worker process, one watchdog thread for all its jobs, results' JSON rendered once
by the worker. No cluster, no JAX: about a second."""

import json
import time

import numpy as np
import pytest

from service.jobs import executor as executor_module
from service.jobs import worker
from service.jobs.executor import Executor
from service.jobs.watchdog import Reporter, Watchdog
from service.jobs.worker import _finish, worker_store
from service.settings import Settings
from service.store.files import RESULT_JSON, render_json
from service.store.job import Job


class FakeFuture:
    def __init__(self, key: str):
        self.key, self.status, self.callbacks = key, "pending", []

    def add_done_callback(self, callback) -> None:
        self.callbacks.append(callback)

    def end(self, status: str) -> None:
        self.status = status
        for callback in self.callbacks:
            callback(self)

    def exception(self) -> BaseException:
        return RuntimeError("the worker died")

    def cancel(self) -> None:
        self.status = "cancelled"


class FakeClient:
    """Records the tasks submitted: (function name, job ids, future)."""

    def __init__(self):
        self.tasks: list[tuple[str, list[str], FakeFuture]] = []

    def submit(self, function, *args, key: str, pure: bool) -> FakeFuture:
        ids = [job[0] for job in args[0]] if function.__name__ == "_run_jobs" else [args[0]]
        future = FakeFuture(key)
        self.tasks.append((function.__name__, ids, future))
        return future


@pytest.fixture
def fake(tmp_path):
    executor = Executor(Settings(data_dir=tmp_path))
    executor.client = FakeClient()
    executor._slots, executor._slots_at = 2, time.monotonic() + 3600  # one worker: two batches at once
    ended: list[tuple[str, str]] = []
    return executor, executor.client, lambda job_id, future: ended.append((job_id, future.status)), ended


def test_small_jobs_wait_while_every_slot_has_a_batch_then_go_as_one_task(fake):
    executor, client, on_done, ended = fake
    for i in range(5):
        executor.submit(f"small-{i}", "kernels", {}, on_done, seconds=0.001)
    executor.submit("large", "kernels", {}, on_done, seconds=10.0)
    executor.submit("unknown", "kernels", {}, on_done)  # no estimate (re-queued at a restart): alone
    assert [(name, ids) for name, ids, _ in client.tasks] == [
        ("_run_jobs", ["small-0"]), ("_run_jobs", ["small-1"]), ("_run_job", ["large"]), ("_run_job", ["unknown"])]
    client.tasks[0][2].end("finished")
    assert ended == [("small-0", "finished")]
    assert client.tasks[-1][:2] == ("_run_jobs", ["small-2", "small-3", "small-4"])
    client.tasks[-1][2].end("finished")
    assert [job for job, _ in ended] == ["small-0", "small-2", "small-3", "small-4"]


def test_a_batch_is_bounded_by_count_and_estimated_seconds(fake):
    executor, client, on_done, _ = fake
    executor._slots = 1
    for i in range(executor_module.BATCH_JOBS + 6):
        executor.submit(f"tiny-{i}", "kernels", {}, on_done, seconds=1e-4)
    client.tasks[0][2].end("finished")
    assert len(client.tasks[-1][1]) == executor_module.BATCH_JOBS
    executor._waiting.clear()
    for i in range(20):  # 0.04 s each: 12 of them fit in the 0.5 s of one batch
        executor.submit(f"heavier-{i}", "kernels", {}, on_done, seconds=0.04)
    client.tasks[-1][2].end("finished")
    assert client.tasks[-1][1] == [f"heavier-{i}" for i in range(12)]


def test_a_failed_batch_runs_again_one_task_per_job_and_a_cancelled_job_leaves_the_wait(fake):
    executor, client, on_done, ended = fake
    for i in range(5):
        executor.submit(f"job-{i}", "kernels", {}, on_done, seconds=0.001)
    executor.cancel("job-4")  # waiting, not yet in a task: dropped (the store says it is canceled)
    client.tasks[0][2].end("finished")
    batch = client.tasks[-1]
    assert batch[1] == ["job-2", "job-3"]
    executor.cancel("job-2")  # in a batch task: that task is not cancelled (the worker skips the job)
    assert batch[2].status == "pending"
    batch[2].end("error")
    assert [(name, ids) for name, ids, _ in client.tasks[-2:]] == [("_run_job", ["job-2"]), ("_run_job", ["job-3"])]
    assert [job for job, _ in ended] == ["job-0"]  # the re-run tasks report the others
    client.tasks[-1][2].end("finished")
    assert ended[-1] == ("job-3", "finished")


def test_the_worker_keeps_one_store_and_opens_another_when_the_file_is_replaced(tmp_path):
    first = worker_store(str(tmp_path))
    assert worker_store(str(tmp_path)) is first
    for path in tmp_path.glob("jobs.sqlite3*"):
        path.unlink()
    second = worker_store(str(tmp_path))
    assert second is not first
    assert second.create(Job(id="a" * 64, operation="kernels", params={}), {}) and second.get("a" * 64)
    worker._stores.pop((str(tmp_path), None, "reskernel"))[0].close()


class OneJobStore:
    def __init__(self):
        self.cancelled, self.reads = False, 0

    def get(self, job_id: str) -> Job:
        self.reads += 1
        return Job(id=job_id, operation="kernels", params={}, cancel_requested=self.cancelled)


def test_one_watchdog_stops_the_cancelled_job_among_those_it_watches():
    watchdog = Watchdog(interval=0.25)  # not started: its checks are called here
    stores = {name: OneJobStore() for name in ("kept", "cancelled")}
    reports = {name: Reporter(stores[name], name) for name in stores}
    with watchdog.watching(stores["kept"], "kept", reports["kept"], 60), \
            watchdog.watching(stores["cancelled"], "cancelled", reports["cancelled"], 60):
        stores["cancelled"].cancelled = True
        for job_id, watched in list(watchdog._jobs.items()):
            watchdog._check(job_id, watched)  # a job younger than the interval is not read
        assert stores["kept"].reads == stores["cancelled"].reads == 0
        for job_id, watched in list(watchdog._jobs.items()):
            watched.since -= 1.0
            watchdog._check(job_id, watched)
        assert reports["cancelled"].stop.is_set() and not reports["kept"].stop.is_set()
        assert stores["kept"].reads == stores["cancelled"].reads == 1
    assert not watchdog._jobs


def test_a_small_results_json_is_written_by_the_worker_and_checked_first(tmp_path):
    meta = {"shape": [2, 2], "note": "x"}
    arrays = {"ntk": np.arange(4.0).reshape(2, 2), "scale": np.array(2.5)}
    listing = _finish(tmp_path, meta, arrays)
    assert listing["arrays"] == {"ntk": {"shape": [2, 2], "dtype": "float64"},
                                 "scale": {"shape": [], "dtype": "float64"}}
    assert json.loads((tmp_path / RESULT_JSON).read_bytes()) == {**meta, "ntk": [[0, 1], [2, 3]], "scale": 2.5}
    assert render_json(meta, {name: np.load(tmp_path / f"{name}.npy") for name in sorted(arrays)}) == \
        (tmp_path / RESULT_JSON).read_bytes()  # what the API would render from the files
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(ArithmeticError, match="'ntk' overflowed"):
        _finish(bad, meta, {"ntk": np.array([[1.0, np.inf]])})
    assert not any(bad.iterdir())
