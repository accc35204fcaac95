"""The service's contract through HTTP: a job id per distinct request (every scalar field
counts), one ETag per representation, de-duplication counted in dispatches with two Dask
workers, and the failure paths end to end: a job left queued by a stopped service, a job
whose workers keep dying, eviction, and result files that disappeared.

The module runs its own service (data directory, two workers, 2 attempts per job), so
killing workers and evicting results leaves the session's service alone."""

import asyncio
import contextlib
import io
import os
import shutil
import signal
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import dask
import httpx
import numpy as np
import pytest

from engine import Architecture, analytic_kernels
from service.http.app import create_app
from service.jobs.executor import Executor
from service.jobs.lifecycle import Jobs
from service.operations.fields import ARRAY_FIELDS
from service.operations.registry import REQUESTS as OPERATIONS
from service.settings import Limits, Settings
from service.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"
ARCH = {"kind": "resnet", "depth": 2, "activation": "relu", "sigma_w": 1.0, "sigma_v": 1.0, "alpha": 1.0,
        "sigma_b": 0.0}
X = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]


class RecordingExecutor(Executor):
    """Runs nothing: records the jobs it is asked to run (a service whose workers never start)."""

    def __init__(self, settings):
        super().__init__(settings)
        self.dispatched: list[str] = []

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def submit(self, job_id, *args) -> None:
        self.dispatched.append(job_id)

    def cancel(self, job_id) -> None:
        pass


class CountingExecutor(Executor):
    """The real Dask executor, counting the tasks it submits per job."""

    def __init__(self, settings):
        super().__init__(settings)
        self.dispatched: list[str] = []

    def submit(self, job_id, *args) -> None:
        self.dispatched.append(job_id)
        super().submit(job_id, *args)


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=120)


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# ---------------------------------------------------------------- job ids

BASE = {
    "kernels": {"x": X, "architecture": ARCH, "kernels": ["nngp", "ntk"]},
    "regression": {"x_train": X, "y_train": [1.0, 0.0, -1.0], "x_test": X[:1], "architecture": ARCH,
                   "kernel": "nngp", "ridge": 1e-10, "t": None, "return_variance": False},
    "smoothness": {"architectures": [ARCH], "n_train": 6, "kernel": "ntk", "ridge": 1e-10, "n_grid": 64,
                   "measure": "rkhs", "bandwidth": 0.5, "cutoff": None},
    "bounds": {"architecture": ARCH, "width": 64, "input_dim": 2, "c_phi": 1.0},
    "spectrum": {"architecture": ARCH, "kernel": "ntk", "n_grid": 64, "normalize": True},
    "empirical-kernels": {"architecture": ARCH, "width": 16, "n_init": 1, "seed": 0, "parametrization": "ntk",
                          "x": X, "kernels": ["ntk"], "jacobian_norms": False},
    "train": {"architecture": ARCH, "width": 16, "n_init": 1, "seed": 0, "parametrization": "ntk",
              "x_train": X, "y_train": [1.0, 0.0, -1.0], "optimizer": "gd", "lr": 0.1, "steps": 10,
              "batch_size": None, "record_every": None, "track_ntk": False, "return_ntk": False,
              "jacobian_norms": False},
}
# a second base for an operation's fields that go with another mode: "operation/mode"
BASE["regression/nystrom"] = BASE["regression"] | {"t": None, "solver": "nystrom", "centers": 2, "seed": 0,
                                                   "tolerance": 1e-10, "max_iterations": 200}
ARCHITECTURE_CHANGES = {"kind": "mlp", "depth": 3, "activation": "erf", "sigma_w": 1.5, "sigma_v": 1.5, "alpha": 0.5,
                        "sigma_b": 0.1}
CHANGES = {  # operation -> {scalar field: another valid value}
    "kernels": {"kernels": ["ntk"]},
    "regression": {"kernel": "ntk", "ridge": 1e-3, "t": 2.0, "return_variance": True, "solver": "nystrom"},
    "regression/nystrom": {"centers": 3, "seed": 1, "tolerance": 1e-8, "max_iterations": 50},
    "smoothness": {"n_train": 10, "kernel": "nngp", "ridge": 1e-6, "n_grid": 128, "measure": "curvature",
                   "bandwidth": 0.25, "cutoff": 5},
    "bounds": {"width": 128, "input_dim": 3, "c_phi": 2.0},
    "spectrum": {"kernel": "nngp", "n_grid": 128, "normalize": False, "sphere_dim": 3, "k_max": 32},
    "empirical-kernels": {"width": 32, "n_init": 2, "seed": 1, "parametrization": "standard",
                          "kernels": ["ntk", "nngp"], "jacobian_norms": True},
    "train": {"width": 32, "n_init": 2, "seed": 1, "parametrization": "standard", "optimizer": "adam",
              "lr": 0.2, "steps": 11, "batch_size": 2, "record_every": 5, "track_ntk": True, "return_ntk": True,
              "jacobian_norms": True},
}
VARIANTS = [(op, ("architecture", key), value) for op in CHANGES if "architecture" in BASE[op]
            for key, value in ARCHITECTURE_CHANGES.items()]
VARIANTS += [(op, (field,), value) for op, changes in CHANGES.items() for field, value in changes.items()]
VARIANTS += [("smoothness", ("architectures", 0, key), value) for key, value in ARCHITECTURE_CHANGES.items()]


def test_every_scalar_field_is_varied():
    for operation, model in OPERATIONS.items():
        scalars = {name for name in model.model_fields if name not in ARRAY_FIELDS}
        varied = {path[0] for op, path, _ in VARIANTS if op.split("/")[0] == operation}
        assert scalars == varied, (operation, scalars ^ varied)


def changed(operation, path, value):
    body = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
            for k, v in BASE[operation].items()}
    if path[0] == "architectures":
        body["architectures"] = [{**ARCH, path[2]: value}]
    elif len(path) == 2:
        body[path[0]] = {**body[path[0]], path[1]: value}
    else:
        body[path[0]] = value
    return body


@pytest.fixture
async def idle(tmp_path):
    """A service whose executor runs nothing (jobs stay queued), for ids and dispatch counts."""
    settings = Settings(data_dir=tmp_path, limits=Limits(points=3000))
    jobs = Jobs(settings, SQLiteStore(tmp_path), RecordingExecutor(settings))
    async with client(create_app(settings, jobs)) as api:
        yield SimpleNamespace(api=api, jobs=jobs)


async def submit(api, operation, body) -> str:
    response = await api.post(f"/v1/{operation}", json=body, headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.mark.parametrize(("operation", "path", "value"), VARIANTS,
                         ids=[f"{op}-{'.'.join(map(str, path))}" for op, path, _ in VARIANTS])
async def test_the_job_id_changes_with_every_scalar_field(idle, operation, path, value):
    endpoint = operation.split("/")[0]
    base = await submit(idle.api, endpoint, BASE[operation])
    other = await submit(idle.api, endpoint, changed(operation, path, value))
    assert other != base
    assert await submit(idle.api, endpoint, BASE[operation]) == base
    assert idle.jobs.executor.dispatched == [base, other]  # the repeat found its job: no dispatch


async def test_the_job_id_changes_with_the_arrays(idle):
    base = await submit(idle.api, "kernels", BASE["kernels"])
    nudged = await submit(idle.api, "kernels", {**BASE["kernels"], "x": [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8000001]]})
    cross = await submit(idle.api, "kernels", {**BASE["kernels"], "x2": X})
    assert len({base, nudged, cross}) == 3


# ---------------------------------------------------------------- ETags


async def test_etags_differ_across_representations(api):
    """Each representation (JSON, one array as JSON, .npy per array, .npz, .npz of one array)
    has its own strong ETag, and If-None-Match matches only its own."""
    first = await api.post("/v1/kernels", json={"x": [[0.3, 0.4], [-0.5, 0.1]], "architecture": ARCH})
    assert first.status_code == 200
    job = first.headers["etag"].strip('"')
    url = f"/v1/jobs/{job}/result"
    forms = {"json": (url, {}), "json ntk": (f"{url}?array=ntk", {}),
             "npy ntk": (f"{url}?array=ntk", {"Accept": "application/x-npy"}),
             "npy nngp": (f"{url}?array=nngp", {"Accept": "application/x-npy"}),
             "npz": (url, {"Accept": "application/x-npz"}),
             "npz ntk": (f"{url}?array=ntk", {"Accept": "application/x-npz"})}
    tags = {}
    for name, (path, headers) in forms.items():
        response = await api.get(path, headers=headers)
        assert response.status_code == 200, (name, response.text)
        tags[name] = response.headers["etag"]
        assert tags[name].startswith('"') and tags[name].endswith('"'), tags[name]
    assert len(set(tags.values())) == len(tags), tags
    assert first.headers["etag"] == tags["json"]
    for name, (path, headers) in forms.items():
        own = await api.get(path, headers={**headers, "If-None-Match": tags[name]})
        assert own.status_code == 304, name
        others = ", ".join(tag for other, tag in tags.items() if other != name)
        assert (await api.get(path, headers={**headers, "If-None-Match": others})).status_code == 200, name


# ---------------------------------------------------------------- a service of its own


class RacingStore(SQLiteStore):
    """SQLite, except that the first lookups of a job that does not exist yet wait for each
    other: `parties` submitters all miss it, then race to create it (as two API threads or
    processes can)."""

    def __init__(self, root, parties: int):
        super().__init__(root)
        self.barrier, self.racing = threading.Barrier(parties, timeout=10), True

    def get(self, job_id):
        job = super().get(job_id)
        if job is None and self.racing:
            # a submit that no longer looks before it creates is not held (the barrier breaks)
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()
            self.racing = False
        return job


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """Two Dask workers, jobs fail after 2 runs. Before it starts, a service that never ran
    its jobs left one queued in the same data directory (a stopped service)."""
    data_dir = tmp_path_factory.mktemp("own-store")
    settings = Settings(data_dir=data_dir, workers=2, wait_s=120, max_attempts=2, limits=Limits(points=3000),
                        trusted_hosts=("127.0.0.1",))
    allowed_failures = dask.config.get("distributed.scheduler.allowed-failures")

    stopped = Jobs(settings, SQLiteStore(data_dir), RecordingExecutor(settings))

    async def leave_queued():
        async with client(create_app(settings, stopped)) as api:
            return await submit(api, "kernels", {"x": X, "architecture": ARCH})

    queued = asyncio.run(leave_queued())
    stopped.store.close()

    jobs = Jobs(settings, SQLiteStore(data_dir), CountingExecutor(settings))
    jobs.start()
    try:
        yield SimpleNamespace(jobs=jobs, app=create_app(settings, jobs), settings=settings, queued=queued)
    finally:
        jobs.close()
        dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures})


async def wait_for(api, job, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await api.get(f"/v1/jobs/{job}")).json()
        if predicate(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: {status}")


async def test_restart_runs_a_job_left_queued(own):
    async with client(own.app) as api:
        status = await wait_for(api, own.queued, lambda s: s["status"] not in ("queued", "running"), 120,
                                "the queued job")
        assert status["status"] == "succeeded" and status["attempts"] == 1, status
        result = (await api.get(f"/v1/jobs/{own.queued}/result")).json()
    expected = analytic_kernels(X, arch=Architecture.from_dict(ARCH))
    np.testing.assert_array_equal(result["ntk"], expected["ntk"])
    assert own.jobs.executor.dispatched.count(own.queued) == 1


async def test_racing_identical_requests_dispatch_once_with_two_workers(own):
    racing = Jobs(own.settings, RacingStore(own.settings.data_dir, parties=2), own.jobs.executor)
    body = {"x": [[0.8, 0.6], [0.0, -1.0]], "architecture": {**ARCH, "depth": 4}}
    async with client(create_app(own.settings, racing)) as api:
        first, second = await asyncio.gather(api.post("/v1/kernels", json=body), api.post("/v1/kernels", json=body))
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.headers["etag"] == second.headers["etag"] and first.content == second.content
    job = first.headers["etag"].strip('"')
    assert own.jobs.executor.dispatched.count(job) == 1
    assert own.jobs.store.get(job).attempts == 1
    assert own.jobs.executor.workers() == 2


def long_training(seed):
    return {"architecture": ARCH, "width": 64, "x_train": X, "y_train": [1.0, 0.0, -1.0], "steps": 100_000,
            "record_every": 50, "seed": seed, "lr": 0.1}


def pid_running(executor, job: str) -> int:
    """The pid of the worker process running `job` (only that one dies: a second dying worker
    that the job was moved to would count as a second death without a second run)."""
    pids = executor.worker_pids()
    for address, keys in executor.client.processing().items():
        if any(job[:12] in str(key) for key in keys):
            return pids[address]
    raise AssertionError(f"no worker is running {job}")


async def test_a_job_whose_workers_keep_dying_fails_for_good(own):
    body = long_training(seed=21)
    async with client(own.app) as api:
        job = await submit(api, "train", body)
        for attempt in (1, 2):
            await wait_for(api, job, lambda s, a=attempt: s["status"] == "running" and s["attempts"] == a
                           and s["progress"] > 0, 180, f"run {attempt}")
            os.kill(pid_running(own.jobs.executor, job), signal.SIGKILL)
        status = await wait_for(api, job, lambda s: s["status"] not in ("queued", "running"), 180, "the failure")
        assert status["status"] == "failed" and status["attempts"] == 2, status
        assert status["error"]["status"] == 500 and "died" in status["error"]["detail"], status
        problem = assert_problem(await api.get(f"/v1/jobs/{job}/result"), 500)
        assert problem["job"] == job
        # deleted, the request runs afresh
        assert (await api.delete(f"/v1/jobs/{job}")).status_code == 204
        again = await api.post("/v1/train", json=body, headers={"Prefer": "respond-async"})
        assert again.status_code == 202 and again.json()["id"] == job and again.json()["attempts"] <= 1
        assert (await api.delete(f"/v1/jobs/{job}")).status_code == 204
    deadline = time.monotonic() + 120
    while own.jobs.executor.workers() < 2:
        assert time.monotonic() < deadline, "the workers did not come back"
        await asyncio.sleep(0.1)


async def test_eviction_through_the_service(own):
    a = {"x": [[0.1, 0.2], [0.3, -0.4]], "architecture": ARCH}
    b = {"x": [[0.5, 0.6], [0.7, -0.8]], "architecture": ARCH}
    async with client(own.app) as api:
        first = await api.post("/v1/kernels", json=a)
        assert first.status_code == 200
    job_a = first.headers["etag"].strip('"')
    size = own.jobs.store.get(job_a).size_bytes
    # room for one result like these, not two: finishing b evicts a, the least recently used
    small = replace(own.settings, cache_bytes=int(1.5 * size))
    async with client(create_app(small, Jobs(small, own.jobs.store, own.jobs.executor))) as api:
        second = await api.post("/v1/kernels", json=b)
        assert second.status_code == 200 and second.headers["x-cache"] == "miss"
        job_b = second.headers["etag"].strip('"')
        assert_problem(await api.get(f"/v1/jobs/{job_a}"), 404)
        assert_problem(await api.get(f"/v1/jobs/{job_a}/result"), 404)
        assert (await api.get(f"/v1/jobs/{job_b}")).json()["status"] == "succeeded"
        again = await api.post("/v1/kernels", json=a)
        assert again.status_code == 200 and again.headers["x-cache"] == "miss"
        assert again.content == first.content


async def test_result_files_gone(own):
    body = {"x": [[0.9, -0.1], [0.2, 0.2]], "architecture": ARCH}
    async with client(own.app) as api:
        first = await api.post("/v1/kernels", json=body)
        assert first.status_code == 200
        job = first.headers["etag"].strip('"')
        shutil.rmtree(own.jobs.store.result_dir(job))  # the disk lost them
        gone = assert_problem(await api.get(f"/v1/jobs/{job}/result"), 410)
        assert "submit the request again" in gone["detail"]
        npy = await api.get(f"/v1/jobs/{job}/result?array=ntk", headers={"Accept": "application/x-npy"})
        assert_problem(npy, 410)
        # as the problem says: submitting the request again computes it again
        again = await api.post("/v1/kernels", json=body)
        assert again.status_code == 200, again.text
        assert again.headers["x-cache"] == "miss" and again.content == first.content
        npy = await api.get(f"/v1/jobs/{job}/result?array=ntk", headers={"Accept": "application/x-npy"})
        np.testing.assert_array_equal(np.load(io.BytesIO(npy.content)), np.array(first.json()["ntk"]))
