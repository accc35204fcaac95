"""Issue 13: no small request may take the service down, fill its disk or run unbounded.
Each test reproduces one finding against the app in-process, a real uvicorn, or a real
`reskernel serve` (the disk-full case on a small tmpfs of the test's own)."""

import errno
import io
import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from test_server import ARCH, X, free_port, long_training, serve, stop, wait_until

from service.http.app import create_app
from service.http.results import negotiate
from service.jobs.ids import job_id, split_request
from service.jobs.lifecycle import Jobs
from service.jobs.worker import _finish
from service.operations.kernels import KernelsRequest
from service.store.job import Job
from service.store.sqlite import SQLiteStore

PROBLEM = "application/problem+json"


def client(app, host: str = "reskernel") -> httpx.AsyncClient:
    """In-process, answering 500s as a server does (not re-raising the app's exception)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url=f"http://{host}")


class BrokenExecutor:
    """An executor whose dispatch fails, with details that must not reach the client."""

    def __init__(self, executor):
        self.executor = executor

    def start(self) -> None:
        pass

    def submit(self, *args, **kwargs):
        raise RuntimeError("dispatch failed in /very/secret/path")

    def __getattr__(self, name):
        return getattr(self.executor, name)


# ---------------------------------------------------------------- 1: a job always ends

@pytest.mark.anyio
async def test_failed_dispatch_ends_the_job_and_answers_a_generic_500(settings, jobs):
    broken = Jobs(settings, jobs.store, BrokenExecutor(jobs.executor))
    body = {"x": [[0.3, 0.4, 0.5]], "architecture": {**ARCH, "depth": 2}}
    async with client(create_app(settings, broken)) as api:
        response = await api.post("/v1/kernels", json=body)
        assert response.status_code == 500 and response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert "secret" not in response.text and "RuntimeError" not in response.text
        assert problem["correlation_id"] in problem["detail"]
        listed = (await api.get("/v1/jobs", params={"status": "failed"})).json()["jobs"]
    job = next(j for j in listed if j["operation"] == "kernels" and j["error"]["status"] == 500)
    assert job["status"] == "failed"  # not left queued, so it holds no place in the queue
    async with client(create_app(settings, jobs)) as api:  # a failure of the service's own: retried
        assert (await api.post("/v1/kernels", json=body)).status_code == 200


def test_startup_survives_a_job_that_cannot_be_requeued(settings, jobs, tmp_path):
    store = SQLiteStore(tmp_path)
    store.create(Job(id="a" * 64, operation="kernels", params={}), {})
    store.update("a" * 64, status="running")
    restarted = Jobs(replace(settings, data_dir=tmp_path), store, BrokenExecutor(jobs.executor))
    restarted.start()  # must not raise
    restarted._closing.set()
    job = store.get("a" * 64)
    assert job.status == "failed" and job.error["status"] == 500 and "secret" not in json.dumps(job.error)


def test_a_job_whose_lease_lapsed_is_requeued_once_and_runs(jobs):
    """A job queued by a process that died (its lease lapsed): the lease sweep takes it under a
    new ticket and runs it; its old ticket can no longer claim it, and a second sweep (another
    replica) finds nothing to take."""
    params, inputs = split_request(KernelsRequest.model_validate({"x": [[0.6, 0.8]], "architecture": ARCH}))
    key = job_id("kernels", params, inputs)
    jobs.store.create(Job(id=key, operation="kernels", params=params, ticket="dead", lease_until=time.time() - 1),
                      inputs)
    try:
        jobs._recover(every=False)
        jobs._recover(every=False)
        wait_until(lambda: jobs.store.get(key).status == "succeeded", 120, "the re-queued job")
        job = jobs.store.get(key)
        assert job.attempts == 1 and job.ticket != "dead"
        assert jobs.store.claim(key, 3, ticket="dead") is None
    finally:
        jobs.store.delete(key)


@pytest.mark.anyio
async def test_deeply_nested_parameters_are_refused_and_leave_nothing(api):
    nested: list = [1.0]
    for _ in range(500):
        nested = [nested]
    body = json.dumps({"parameters": {"cutoff": nested}})
    before = (await api.get("/v1/jobs")).json()["total"]
    for _ in range(2):  # the same answer the second time: no job was left behind
        response = await api.post("/v1/experiments/rkhs-vs-curvature", content=body,
                                  headers={"content-type": "application/json"})
        assert response.status_code == 400 and "deeper than" in response.json()["detail"], response.text
    assert (await api.get("/v1/jobs")).json()["total"] == before
    assert (await api.get("/healthz")).status_code == 200


# ---------------------------------------------------------------- 2: errors cost little

@pytest.mark.anyio
async def test_a_body_of_empty_rows_is_refused_by_its_size_first(api, settings):
    rows = settings.limits.body_bytes // 3 - 100  # just under the body limit
    body = '{"x": [' + ",".join(["[]"] * rows) + '], "architecture": {"kind": "mlp", "depth": 1}}'
    response = await api.post("/v1/kernels", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 2000, response.text
    assert response.json()["errors"][0]["field"] == "points"


@pytest.mark.anyio
async def test_error_lists_are_capped(api):
    body = {"architectures": [{"kind": "cnn", "depth": 0}] * 60, "n_train": 6}
    response = await api.post("/v1/smoothness", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert len(problem["errors"]) == 20 and problem["error_count"] >= 60
    assert len(response.content) < 8000


@pytest.mark.anyio
async def test_bodies_are_parsed_off_the_event_loop(api, monkeypatch):
    import threading

    import service.http.bodies

    seen = []
    original = service.http.bodies._load
    monkeypatch.setattr(service.http.bodies, "_load",
                        lambda raw: seen.append(threading.current_thread()) or original(raw))
    await api.post("/v1/bounds", json={"architecture": ARCH, "width": 64, "input_dim": 2})
    assert seen and seen[0] is not threading.main_thread()


# ---------------------------------------------------------------- 4: cancellation is bounded

def test_a_job_that_cannot_stop_itself_has_its_worker_restarted(server, jobs):
    """One training chunk as long as the run: the engine cannot poll; the worker is restarted."""
    body = long_training(400_000, seed=11) | {"record_every": 400_000}
    with httpx.Client(base_url=server, timeout=60) as http:
        job = http.post("/v1/train", json=body, headers={"Prefer": "respond-async"}).json()["id"]
        wait_until(lambda: http.get(f"/v1/jobs/{job}").json()["status"] == "running", 120, "the job to run")
        time.sleep(1.0)
        asked = time.monotonic()
        assert http.post(f"/v1/jobs/{job}:cancel", json={}).status_code == 202
        grace = jobs.settings.cancel_grace_s
        final = wait_until(lambda: (s := http.get(f"/v1/jobs/{job}").json())["status"] != "running" and s,
                           grace + 30, "the cancelled job to end")
        assert final["status"] == "canceled" and time.monotonic() - asked < grace + 30, final
        # the restarted worker runs the next job, and the cancelled one never finishes
        wait_until(lambda: jobs.executor.workers() == 1, 120, "the worker to come back")
        small = http.post("/v1/kernels", json={"x": X, "architecture": {**ARCH, "depth": 4}})
        assert small.status_code == 200, small.text
        assert http.get(f"/v1/jobs/{job}").json()["status"] == "canceled"


def test_delete_stops_the_work_first(server, jobs):
    with httpx.Client(base_url=server, timeout=60) as http:
        job = http.post("/v1/train", json=long_training(300_000, seed=12),
                        headers={"Prefer": "respond-async"}).json()["id"]
        wait_until(lambda: http.get(f"/v1/jobs/{job}").json()["progress"] > 0, 120, "training to start")
        assert http.delete(f"/v1/jobs/{job}").status_code == 204
        assert http.get(f"/v1/jobs/{job}").status_code == 404
        assert not jobs.store.job_dir(job).exists()
        # the worker is free at once: the job's work stopped before its files went
        small = http.post("/v1/kernels", json={"x": X, "architecture": {**ARCH, "depth": 6}},
                          headers={"Prefer": "wait=20"})
        assert small.status_code == 200, small.text


def test_a_running_job_reads_running(server):
    with httpx.Client(base_url=server, timeout=60) as http:
        job = http.post("/v1/train", json=long_training(3000, seed=13),
                        headers={"Prefer": "respond-async"}).json()["id"]
        seen = set()
        wait_until(lambda: seen.add(http.get(f"/v1/jobs/{job}").json()["status"]) or "succeeded" in seen, 240,
                   "the job to succeed")
    assert "running" in seen, seen


# ---------------------------------------------------------------- 5: finite results only

def test_non_finite_numbers_anywhere_in_a_result_fail_the_job(tmp_path):
    with pytest.raises(ArithmeticError, match=r"results\.1\.mu"):
        _finish(tmp_path, {"results": [{"mu": 1.0}, {"mu": math.nan}]}, {})
    with pytest.raises(ArithmeticError, match="'curve'"):
        _finish(tmp_path, {}, {"curve": np.array([1.0, np.inf])})


@pytest.mark.anyio
async def test_huge_targets_give_a_finite_result_or_a_422(api):
    targets = [1e200, -1e200, 3e199, 0, 1e200, 5e199]
    body = {"architectures": [ARCH], "n_train": 6, "measure": "rkhs", "targets": targets}
    response = await api.post("/v1/smoothness", json=body)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert all(math.isfinite(r["mu"]) for r in response.json()["results"])
        assert (await api.get(f"/v1/jobs/{response.headers['etag'].strip(chr(34))}/result")).status_code == 200


# ---------------------------------------------------------------- 6: a full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs of the test's own (the machine's disks are never filled)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def on_small_disk(small_disk):
    """A `reskernel serve` whose data directory is on the small disk: (disk, client)."""
    port = free_port()
    process = serve(small_disk / "data", port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            yield small_disk, http
    finally:
        stop(process)


def fill(path: Path) -> None:
    """Write until the filesystem is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 2**20)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    try:
        with open(path.with_suffix(".tail"), "wb") as f:  # the last few blocks too
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC


def test_a_full_disk_answers_507_keeps_serving_and_recovers(on_small_disk):
    small_disk, http = on_small_disk
    old = http.post("/v1/kernels", json={"x": X, "architecture": ARCH})
    assert old.status_code == 200
    old_id = old.headers["etag"].strip('"')
    fill(small_disk / "filler")
    new = {"x": np.random.default_rng(0).normal(size=(300, 8)).tolist(), "architecture": ARCH}
    refused = http.post("/v1/kernels", json=new)
    assert refused.status_code == 507 and int(refused.headers["retry-after"]) > 0, refused.text
    assert refused.headers["content-type"] == PROBLEM
    # reads need no space
    assert http.get(f"/v1/jobs/{old_id}/result").json() == old.json()
    npz = http.get(f"/v1/jobs/{old_id}/result", headers={"Accept": "application/x-npz"})
    assert npz.status_code == 200 and np.load(io.BytesIO(npz.content))["ntk"].shape == (4, 4)
    assert http.get("/healthz").status_code == 200
    # no job is left without an end
    assert http.get("/v1/jobs", params={"status": "queued"}).json()["total"] == 0
    assert http.get("/v1/jobs", params={"status": "running"}).json()["total"] == 0
    # DELETE frees space even now
    assert http.delete(f"/v1/jobs/{old_id}").status_code == 204
    (small_disk / "filler").unlink()
    (small_disk / "filler.tail").unlink(missing_ok=True)
    again = http.post("/v1/kernels", json=new)
    assert again.status_code == 200, again.text


def test_a_disk_that_fills_while_a_job_runs_fails_the_job_with_507(on_small_disk):
    small_disk, http = on_small_disk
    assert http.post("/v1/kernels", json={"x": X, "architecture": ARCH}).status_code == 200
    free = shutil.disk_usage(small_disk).free
    with open(small_disk / "filler", "wb") as f:  # leave 2 MiB: the inputs fit, the 2 x 8 MB result not
        f.write(b"\0" * (free - 2 * 2**20))
    x = np.random.default_rng(1).normal(size=(1000, 2)).tolist()
    response = http.post("/v1/kernels", json={"x": x, "architecture": ARCH},
                         headers={"Prefer": "wait=100", "Accept": "application/x-npz"})
    assert response.status_code == 507, response.text
    job = http.get("/v1/jobs", params={"status": "failed"}).json()["jobs"][0]
    assert job["error"]["status"] == 507
    assert http.get("/v1/jobs", params={"status": "running"}).json()["total"] == 0


# ---------------------------------------------------------------- 7: storage

def test_inputs_count_in_the_size_and_are_evicted_with_their_jobs(tmp_path):
    store = SQLiteStore(tmp_path)
    inputs = {"x": np.zeros((1000, 10))}
    for i, status in enumerate(("canceled", "failed", "succeeded")):
        key = str(i) * 64
        store.create(Job(id=key, operation="kernels", params={}), inputs)
        assert store.get(key).size_bytes >= 80_000
        store.update(key, status=status, accessed_at=time.time() + i)
    assert store.evict(100_000, keep=("0" * 64,)) == ["1" * 64]
    assert store.job_dir("0" * 64).exists() and not store.job_dir("1" * 64).exists()
    assert store.evict(0) == ["2" * 64, "0" * 64]


@pytest.mark.anyio
async def test_npz_is_streamed_from_the_files(api):
    body = {"x": np.random.default_rng(3).normal(size=(50, 3)).tolist(), "architecture": ARCH}
    first = await api.post("/v1/kernels", json=body, headers={"Accept": "application/x-npz"})
    assert first.status_code == 200 and "content-length" not in first.headers
    arrays = np.load(io.BytesIO(first.content))
    job = first.headers["etag"].strip('"').split("-")[0]
    for name in ("nngp", "ntk"):
        npy = await api.get(f"/v1/jobs/{job}/result", params={"array": name}, headers={"Accept": "application/x-npy"})
        np.testing.assert_array_equal(arrays[name], np.load(io.BytesIO(npy.content)))
    assert not any(p.suffix == ".npz" for p in (await _result_files(api, job)))


async def _result_files(api, job: str) -> list[Path]:
    settings = api._transport.app.state.settings
    return list((Path(settings.data_dir) / "jobs" / job[:2] / job / "result").iterdir())


# ---------------------------------------------------------------- 8: exposure

@pytest.mark.anyio
async def test_state_changing_routes_take_json_only(api):
    job = "0" * 64
    form = await api.post(f"/v1/jobs/{job}:cancel", content="a=1",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and form.json()["errors"][0]["field"] == "Content-Type"
    plain = await api.post("/v1/kernels", content=json.dumps({"x": X, "architecture": ARCH}),
                           headers={"content-type": "text/plain"})
    assert plain.status_code == 415


@pytest.mark.anyio
async def test_untrusted_hosts_are_refused(settings, jobs):
    app = create_app(replace(settings, trusted_hosts=("localhost", "127.0.0.1", "::1")), jobs)
    async with client(app, "evil.example") as api:
        response = await api.get("/v1/jobs")
        assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        async with client(app, host) as api:
            assert (await api.get("/healthz")).status_code == 200


def test_nothing_listens_beyond_loopback(jobs):
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        for connection in process.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN:
                assert connection.laddr.ip in ("127.0.0.1", "::1"), (process.cmdline(), connection)


# ---------------------------------------------------------------- 9: smaller

@pytest.mark.anyio
async def test_info_never_waits_on_the_workers(settings, jobs):
    class Busy:
        def __getattr__(self, name):
            if name == "describe":
                raise AssertionError("/v1/info asked a worker")
            return getattr(jobs.executor, name)

    lonely = Jobs(settings, jobs.store, Busy())
    async with client(create_app(settings, lonely)) as api:
        info = (await api.get("/v1/info")).json()
    assert info["worker"] is None and info["limits"]["event_streams"] == settings.limits.event_streams


@pytest.mark.anyio
async def test_event_streams_are_capped_and_end(settings, jobs):
    key = "e" * 64
    # queued, never dispatched; its lease far off, so that the lease loop leaves it queued
    jobs.store.create(Job(id=key, operation="kernels", params={}, lease_until=time.time() + 3600), {})
    try:
        capped = replace(settings, limits=replace(settings.limits, event_streams=0))
        async with client(create_app(capped, jobs)) as api:
            response = await api.get(f"/v1/jobs/{key}/events")
            assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
        brief = replace(settings, event_stream_s=0.5)
        async with client(create_app(brief, jobs)) as api:
            text = (await api.get(f"/v1/jobs/{key}/events")).text
        assert text.rstrip().splitlines()[-2] == "event: timeout", text
        assert "\r" not in text and text.endswith("\n\n")  # lines end in "\n" (the explorer splits on "\n\n")
    finally:
        jobs.store.delete(key)


def job_id_of(response: httpx.Response) -> str:
    assert response.status_code in (200, 202), response.text
    return response.json()["id"]


@pytest.mark.anyio
@pytest.mark.parametrize(("operation", "one", "other"), [
    ("kernels", {"x": [[0.0, 1.0]], "architecture": ARCH}, {"x": [[-0.0, 1.0]], "architecture": ARCH}),
    ("kernels", {"x": [[0.5, 1.0]], "architecture": ARCH, "kernels": ["ntk", "nngp"]},
     {"x": [[0.5, 1.0]], "architecture": ARCH, "kernels": ["nngp", "ntk"]}),
    ("kernels", {"x": [[0.25, 1.0]], "architecture": {"kind": "mlp", "depth": 2, "alpha": 0.3}},
     {"x": [[0.25, 1.0]], "architecture": {"kind": "mlp", "depth": 2}}),
    ("smoothness", {"architectures": [ARCH], "n_train": 6, "bandwidth": 0.9, "cutoff": 12},
     {"architectures": [ARCH], "n_train": 6}),
    ("train", long_training(40, seed=1) | {"record_every": 2},
     {k: v for k, v in long_training(40, seed=1).items() if k != "record_every"}),
    ("train", long_training(40, seed=1) | {"optimizer": "sgd", "lr": 0.01},
     long_training(40, seed=1) | {"optimizer": "sgd", "lr": 0.01, "batch_size": 1}),
])
async def test_equivalent_requests_share_one_job(api, operation, one, other):
    headers = {"Prefer": "respond-async, return=minimal"}
    first = job_id_of(await api.post(f"/v1/{operation}", json=one, headers=headers))
    second = job_id_of(await api.post(f"/v1/{operation}", json=other, headers=headers))
    assert first == second


def test_accept_quality_values():
    assert negotiate("application/json;q=0, application/x-npz") == "application/x-npz"
    assert negotiate("application/json;q=0.5, application/x-npy;q=0.9") == "application/x-npy"
    assert negotiate("*/*;q=0.1, application/x-npz;q=0.2") == "application/x-npz"
    assert negotiate(None) == "application/json"
    for refused in ("application/json;q=0", "*/*;q=0", "text/html"):
        with pytest.raises(Exception, match="cannot answer"):
            negotiate(refused)


def test_os_errno_of_a_full_disk_is_recognised():
    from service.errors import storage_full

    assert storage_full(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert not storage_full(OSError(errno.EACCES, "denied"))


@pytest.mark.anyio
async def test_an_experiment_over_the_compute_budget_is_refused_before_any_job(api):
    """finite-vs-infinite at the paper's scale (width 2000 x 10K steps) is GPU work (with its 30 networks it
    is also over the memory budget: a 413, as /v1/train's; 4 networks fit in memory)."""
    before = (await api.get("/v1/jobs")).json()["total"]
    response = await api.post("/v1/experiments/finite-vs-infinite", json={"scale": "paper",
                                                                          "parameters": {"n_init": 4}})
    assert response.status_code == 422 and "RESKERNEL_MAX_COMPUTE_SECONDS" in response.json()["detail"], response.text
    assert response.json()["errors"][0]["field"].startswith("parameters")
    assert (await api.get("/v1/jobs")).json()["total"] == before


@pytest.mark.anyio
async def test_an_encoded_colon_is_data_not_the_cancel_separator(api):
    job = "a" * 64
    assert (await api.get(f"/v1/jobs/{job}:cancel")).status_code == 405  # the cancel route takes POST only
    assert (await api.get(f"/v1/jobs/{job}%3Acancel")).status_code == 404  # a job id "...:cancel": none such
