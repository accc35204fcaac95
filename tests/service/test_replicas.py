"""Replicas behave as one service (issue 9, item 2), with real processes started as compose
starts them, on loopback addresses: a redis-server of the test's own (a free port, append-only,
a temporary directory), `dask scheduler`, two `dask worker` and two `reskernel serve` sharing
the Redis store and one data directory. A job posted to one replica is visible, cancellable and
a cache hit on the other, and its events resume on either; the same request posted to both at
once runs once; a worker killed mid-job has its job finished by the other; Redis stopped and
started again: not ready while it is down, no job lost or left running after."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import redis
from distributed import Client
from test_server import free_port, read_events, wait_until

REDIS_SERVER = shutil.which("redis-server")
BIN = Path(sys.executable).parent
ARCH = {"kind": "resnet", "depth": 3, "alpha": 0.1}
X = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-0.8, 0.6]]
PROBLEM = "application/problem+json"
LEASE_S = 2

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="no redis-server binary")


def training(steps: int, seed: int) -> dict:
    return {"architecture": ARCH, "width": 128, "x_train": X, "y_train": [1.0, 0.0, -1.0, 0.5], "steps": steps,
            "record_every": 50, "seed": seed, "lr": 0.1}


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A process in a session of its own (so that it and its children can be killed together)."""
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)


def kill(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


class Redis:
    """The test's own redis-server: append-only persistence in its own directory."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = start([REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
                              "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction"],
                             self.folder / "redis.log")
        wait_until(self.answers, 30, "redis-server")

    def answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=1) as r:
                return bool(r.ping())
        except redis.RedisError:
            assert self.process.poll() is None, (self.folder / "redis.log").read_text()
            return False

    def stop(self) -> None:
        kill(self.process)


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("replicas")
    data, logs = folder / "data", folder / "logs"
    logs.mkdir()
    store = Redis(folder)
    store.start()
    scheduler_port = free_port()
    scheduler = f"tcp://127.0.0.1:{scheduler_port}"
    processes = [start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(scheduler_port),
                        "--dashboard-address", f"127.0.0.1:{free_port()}"], logs / "scheduler.log")]
    workers = [start([str(BIN / "dask"), "worker", scheduler, "--nthreads", "1", "--memory-limit", "0",
                      "--no-dashboard", "--host", "127.0.0.1"], logs / f"worker-{i}.log") for i in range(2)]
    env = {"RESKERNEL_STORE_URL": store.url, "RESKERNEL_DASK_ADDRESS": scheduler, "RESKERNEL_DATA_DIR": str(data),
           "RESKERNEL_LEASE_S": str(LEASE_S), "RESKERNEL_WARM_UP": "0", "RESKERNEL_WAIT_S": "60"}
    ports = [free_port(), free_port()]
    apis = [start([str(BIN / "reskernel"), "serve", "--host", "127.0.0.1", "--port", str(port)], logs / f"api-{i}.log",
                  env) for i, port in enumerate(ports)]
    processes += workers + apis
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            wait_until(lambda b=base: ready(b) and httpx.get(f"{b}/readyz").json()["workers"] == 2, 120,
                       f"{base} ready with two workers")
        with httpx.Client(base_url=bases[0], timeout=120) as a, httpx.Client(base_url=bases[1], timeout=120) as b, \
                Client(scheduler, set_as_default=False) as dask:
            yield SimpleNamespace(a=a, b=b, bases=bases, redis=store, dask=dask, workers=workers, apis=apis)
    finally:
        for process in reversed(processes):
            kill(process)
        store.stop()


def status(http: httpx.Client, job: str) -> dict:
    response = http.get(f"/v1/jobs/{job}")
    assert response.status_code == 200, response.text
    return response.json()


def ended(http: httpx.Client, job: str, timeout: float = 120) -> dict:
    return wait_until(lambda: (s := status(http, job))["status"] not in ("queued", "running") and s, timeout,
                      f"job {job} to end")


def test_a_job_is_visible_and_a_cache_hit_on_the_other_replica(cluster):
    body = {"x": X, "architecture": ARCH}
    first = cluster.a.post("/v1/kernels", json=body)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss", first.text
    second = cluster.b.post("/v1/kernels", json=body)
    assert second.status_code == 200 and second.headers["x-cache"] == "hit", second.text
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    job = first.headers["etag"].strip('"')
    assert status(cluster.b, job)["status"] == "succeeded"
    assert job in [j["id"] for j in cluster.b.get("/v1/jobs").json()["jobs"]]


def test_the_same_request_posted_to_both_at_once_runs_once(cluster):
    body = {"x": [[0.8, 0.6], [0.0, -1.0], [0.6, 0.8]], "architecture": {**ARCH, "depth": 4}}
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def post(base: str) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            barrier.wait()
            answers.append(http.post("/v1/kernels", json=body))

    threads = [threading.Thread(target=post, args=(base,)) for base in cluster.bases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    assert answers[0].content == answers[1].content
    job = answers[0].headers["etag"].strip('"')
    assert status(cluster.a, job)["attempts"] == 1


def test_a_job_is_cancelled_through_the_other_replica(cluster):
    job = cluster.a.post("/v1/train", json=training(100_000, seed=3), headers={"Prefer": "respond-async"}).json()["id"]
    wait_until(lambda: status(cluster.b, job)["progress"] > 0, 120, "the training to run")
    assert cluster.b.post(f"/v1/jobs/{job}:cancel", json={}).status_code == 202
    assert ended(cluster.a, job, 60)["status"] == "canceled"


def test_a_killed_worker_has_its_job_finished_by_the_other_and_events_resume_anywhere(cluster):
    job = cluster.a.post("/v1/train", json=training(3000, seed=4), headers={"Prefer": "respond-async"}).json()["id"]
    wait_until(lambda: (s := status(cluster.b, job))["status"] == "running" and s["progress"] > 0, 120, "training")
    [(first, kind)] = read_events(cluster.b, job)
    assert kind == "progress" and first.isdigit()
    [(resumed, kind)] = read_events(cluster.a, job, last=first)  # on the other replica: only what is newer
    assert int(resumed) > int(first) and kind in ("progress", "done")

    running = [address for address, keys in cluster.dask.processing().items() if any(job[:12] in k for k in keys)]
    assert len(running) == 1, cluster.dask.processing()
    group = cluster.dask.run(os.getpgrp, workers=running)[running[0]]
    [killed] = [w for w in cluster.workers if w.pid == group]
    kill(killed, signal.SIGKILL)
    final = ended(cluster.b, job)
    assert final["status"] == "succeeded" and final["attempts"] == 2, final
    [(_, kind)] = read_events(cluster.b, job, last=str(10**9))  # an ended job: its `done` at once
    assert kind == "done"


def test_redis_stopped_and_started_again(cluster):
    job = cluster.b.post("/v1/train", json=training(3000, seed=5), headers={"Prefer": "respond-async"}).json()["id"]
    wait_until(lambda: status(cluster.a, job)["progress"] > 0, 120, "training")
    streamed: list[tuple[str, str]] = []

    def follow() -> None:  # an event stream open across the outage
        with httpx.Client(base_url=cluster.bases[0], timeout=120) as http:
            read_events(http, job, count=10**6, seen=streamed)

    follower = threading.Thread(target=follow)
    follower.start()
    wait_until(lambda: streamed, 30, "the stream's first event")
    cluster.redis.stop()
    try:
        for http in (cluster.a, cluster.b):
            for path in ("/readyz", f"/v1/jobs/{job}"):
                response = http.get(path)
                assert response.status_code == 503 and response.headers["content-type"] == PROBLEM, response.text
            posted = http.post("/v1/kernels", json={"x": [[0.28, 0.96]], "architecture": ARCH})
            assert posted.status_code == 503 and posted.headers["content-type"] == PROBLEM, posted.text
            assert int(posted.headers["retry-after"]) > 0
        time.sleep(LEASE_S * 1.5)  # leases lapse while it is down
    finally:
        cluster.redis.start()
    for base in cluster.bases:
        wait_until(lambda b=base: ready(b), 60, f"{base} ready again")
    final = ended(cluster.a, job)
    assert final["status"] == "succeeded", final
    follower.join(60)
    assert streamed[-1][1] == "done" and {kind for _, kind in streamed[:-1]} <= {"progress"}, streamed
    fresh = cluster.b.post("/v1/kernels", json={"x": [[0.0, 1.0]], "architecture": ARCH})
    assert fresh.status_code == 200, fresh.text
    for state in ("queued", "running"):  # nothing lost, nothing left running
        wait_until(lambda s=state: cluster.a.get("/v1/jobs", params={"status": s}).json()["total"] == 0, 60,
                   f"no job {state}")
    assert all(j["status"] in ("succeeded", "canceled") for j in cluster.b.get("/v1/jobs").json()["jobs"])


def test_a_job_queued_by_a_replica_that_died_is_run_by_the_other(cluster):
    """Replica A queues a job behind long ones (one on every worker connected now, so the test
    needs no earlier one to have killed a worker) and is killed: Dask drops A's tasks, the job's
    lease lapses, and B's lease loop re-queues it and runs it (once)."""
    workers = cluster.b.get("/readyz").json()["workers"]
    longs = [cluster.b.post("/v1/train", json=training(100_000, seed=60 + i),
                            headers={"Prefer": "respond-async"}).json()["id"] for i in range(workers)]
    wait_until(lambda: all(status(cluster.b, job)["status"] == "running" for job in longs), 120,
               f"{workers} long jobs to run, one on each worker")
    queued = cluster.a.post("/v1/kernels", json={"x": [[0.6, -0.8]], "architecture": ARCH},
                            headers={"Prefer": "respond-async"}).json()["id"]
    assert status(cluster.b, queued)["status"] == "queued"  # behind the long jobs: every worker is busy
    kill(cluster.apis[0], signal.SIGKILL)
    for job in longs:
        assert cluster.b.post(f"/v1/jobs/{job}:cancel", json={}).status_code == 202
    final = ended(cluster.b, queued, 60)
    assert final["status"] == "succeeded" and final["attempts"] == 1, final
