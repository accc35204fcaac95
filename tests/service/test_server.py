"""Against a real uvicorn on 127.0.0.1 (port 0): Server-Sent Events, the Python client,
concurrent identical requests, cancellation, a worker killed mid-job, and a restart."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine import Architecture, analytic_kernels
from service.client import Client, ProblemError
from service.http.app import create_app
from service.jobs.lifecycle import Jobs
from service.store.job import Job
from service.store.sqlite import SQLiteStore

ARCH = {"kind": "resnet", "depth": 3, "alpha": 0.1}
X = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-0.8, 0.6]]


def long_training(steps: int, seed: int = 0) -> dict:
    return {"architecture": ARCH, "width": 256, "x_train": X, "y_train": [1.0, 0.0, -1.0, 0.5], "steps": steps,
            "record_every": 50, "seed": seed, "lr": 0.1}


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_events_stream_progress_until_done(server):
    with httpx.Client(base_url=server, timeout=60) as http:
        job = http.post("/v1/train", json=long_training(1000), headers={"Prefer": "respond-async"}).json()["id"]
        events = []
        with http.stream("GET", f"/v1/jobs/{job}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache"  # no-store: Chromium reports the end as aborted
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((kind, httpx.Response(200, content=line[5:]).json()))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) <= {"progress"} and len(kinds) >= 3
    progress = [e["progress"] for _, e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert events[-1][1]["status"] == "succeeded" and "loss" in events[-1][1]["result"]["arrays"]


def read_events(http: httpx.Client, job: str, last: str | None = None, count: int = 1,
                seen: list | None = None) -> list[tuple[str, str]]:
    """The first `count` events (id, kind) of a job's stream, resumed after `last` (appended to
    `seen` as they arrive)."""
    seen, fields = [] if seen is None else seen, {}
    with http.stream("GET", f"/v1/jobs/{job}/events", headers={"Last-Event-ID": last} if last else {}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
            elif not line and "event" in fields:
                seen.append((fields.get("id"), fields["event"]))
                fields = {}
                if len(seen) == count:
                    break
    return seen


def test_events_resume_after_the_last_event_id(server):
    with httpx.Client(base_url=server, timeout=60) as http:
        body = long_training(3000, seed=11)
        job = http.post("/v1/train", json=body, headers={"Prefer": "respond-async"}).json()["id"]
        wait_until(lambda: http.get(f"/v1/jobs/{job}").json()["progress"] > 0, 120, "training")
        [(first, kind)] = read_events(http, job)
        assert kind == "progress"
        resumed = read_events(http, job, last=first, count=2)
        assert all(int(i) > int(first) for i, _ in resumed)  # only newer states, in order
        assert [int(i) for i, _ in resumed] == sorted(int(i) for i, _ in resumed)
        wait_until(lambda: http.get(f"/v1/jobs/{job}").json()["status"] == "succeeded", 120, "the end")
        [(done, kind)] = read_events(http, job, last=str(10**9))  # an ended job: its `done` at once
        assert kind == "done" and int(done) >= int(resumed[-1][0])
        bad = http.get(f"/v1/jobs/{job}/events", headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "last-event-id"


class Idle:
    """An executor that dispatches nothing (the test moves its job by hand)."""

    def submit(self, *args, **kwargs) -> None:
        pass

    def workers(self) -> int:
        return 1

    def close(self) -> None:
        pass


@pytest.mark.anyio
async def test_events_resume_with_exactly_the_states_after_the_last_event_id(settings, tmp_path):
    """A job moved by hand, so its versions are known: a stream resumed after version n sends
    the job's state n+1 first (nothing when n is the current version), then each later state
    once, in order, and an ended job's `done` when n is just before it."""
    own = replace(settings, data_dir=tmp_path, event_stream_s=1.5)
    jobs = Jobs(own, SQLiteStore(tmp_path), Idle())  # type: ignore[arg-type]
    key = "5" * 64
    jobs.store.create(Job(id=key, operation="kernels", params={}, ticket="t", lease_until=time.time() + 3600), {})
    jobs.store.claim(key, 3, ticket="t", lease_s=3600)
    now = jobs.store.get(key).version
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(own, jobs)),
                                     base_url="http://reskernel", timeout=30) as api:
            async def events(last: int | None) -> list[tuple[int | None, str]]:
                headers = {} if last is None else {"Last-Event-ID": str(last)}
                text = (await api.get(f"/v1/jobs/{key}/events", headers=headers)).text
                fields = [dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
                          for block in text.split("\n\n") if block.strip()]
                return [(int(f["id"]) if "id" in f else None, f["event"]) for f in fields if "event" in f]

            async def advance() -> None:
                for progress in (0.25, 0.5, 0.75):
                    await asyncio.sleep(0.3)
                    jobs.store.update(key, progress=progress)
                    jobs.changes.notify(key)

            timeout = (None, "timeout")
            assert await events(None) == [(now, "progress"), timeout]
            assert await events(now - 1) == [(now, "progress"), timeout]
            assert await events(now) == [timeout]
            resumed, _ = await asyncio.gather(events(now), advance())
            assert resumed == [(now + 1, "progress"), (now + 2, "progress"), (now + 3, "progress"), timeout]
            jobs.store.update(key, status="canceled", finished_at=time.time())
            assert await events(now + 3) == [(now + 4, "done")]
    finally:
        jobs.close()
        jobs.store.close()


def test_client_returns_numpy(server):
    seen = []
    with Client(server) as rk:
        grams = rk.kernels(np.array(X), architecture=ARCH, progress=lambda f, m: seen.append(f))
        assert isinstance(grams["ntk"], np.ndarray) and grams["shape"] == [4, 4]
        np.testing.assert_array_equal(grams["ntk"], analytic_kernels(X, arch=Architecture.from_dict(ARCH))["ntk"])
        assert seen[-1] == 1.0
        fit = rk.run("train", long_training(100, seed=7))
        assert fit["loss"].shape == (1, 3) and fit["lr"] == 0.1
        with pytest.raises(ProblemError, match="422") as caught:
            rk.run("kernels", {"x": [[1.0]], "architecture": {"kind": "mlp", "depth": 0}})
        assert caught.value.problem["errors"][0]["field"] == "architecture.depth"


def test_concurrent_identical_requests_compute_once(server, jobs):
    body = long_training(1500, seed=11)
    answers = []

    def post():
        with httpx.Client(base_url=server, timeout=120) as http:
            answers.append(http.post("/v1/train", json=body))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.headers["etag"] for a in answers}) == 1 and len({a.content for a in answers}) == 1
    job = jobs.store.get(answers[0].headers["etag"].strip('"'))
    assert job.attempts == 1  # each run claims the job and counts an attempt: it ran once


def test_cancel_a_long_training_job(server, jobs):
    with httpx.Client(base_url=server, timeout=60) as http:
        job = http.post("/v1/train", json=long_training(400_000, seed=3),
                        headers={"Prefer": "respond-async"}).json()["id"]
        wait_until(lambda: http.get(f"/v1/jobs/{job}").json()["progress"] > 0, 120, "training to start")
        asked = time.monotonic()
        assert http.post(f"/v1/jobs/{job}:cancel", json={}).status_code == 202
        final = wait_until(lambda: (s := http.get(f"/v1/jobs/{job}").json())["status"] != "running" and s, 30,
                           "the job to stop")
        stopped = time.monotonic() - asked
        assert final["status"] == "canceled" and final["progress"] < 0.5, final
        assert stopped < 20
        assert http.post(f"/v1/jobs/{job}:cancel", json={}).status_code == 409
        answer = http.get(f"/v1/jobs/{job}/result")
        assert answer.status_code == 409 and answer.headers["content-type"] == "application/problem+json"
    assert not list(jobs.store.job_dir(job).glob("staging-*"))


def test_worker_killed_mid_job_reruns_it(server, jobs):
    with httpx.Client(base_url=server, timeout=60) as http:
        job = http.post("/v1/train", json=long_training(6000, seed=5),
                        headers={"Prefer": "respond-async"}).json()["id"]
        wait_until(lambda: http.get(f"/v1/jobs/{job}").json()["progress"] > 0, 120, "training to start")
        for pid in jobs.executor.worker_pids().values():
            os.kill(pid, signal.SIGKILL)
        final = wait_until(lambda: (s := http.get(f"/v1/jobs/{job}").json())["status"] not in ("queued", "running")
                           and s, 240, "the job to end after its worker died")
    assert final["status"] == "succeeded" and final["attempts"] == 2, final
    wait_until(lambda: jobs.executor.workers() == 1, 60, "the worker to come back")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data_dir: Path, port: int, settings: dict[str, str] | None = None) -> subprocess.Popen:
    """`reskernel serve` on 127.0.0.1:port, ready; `settings`: more RESKERNEL_* variables."""
    env = {**os.environ, "RESKERNEL_DATA_DIR": str(data_dir), "RESKERNEL_WAIT_S": "60", **(settings or {})}
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready():
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, "reskernel serve exited"
            return False

    wait_until(ready, 120, "reskernel serve")
    return process


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def test_restart_keeps_results_and_reruns_interrupted_jobs(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = serve(tmp_path, port)
    try:
        done = httpx.post(f"{base}/v1/kernels", json={"x": X, "architecture": ARCH}, timeout=60)
        assert done.status_code == 200 and done.headers["x-cache"] == "miss"
        running = httpx.post(f"{base}/v1/train", json=long_training(4000, seed=9), timeout=60,
                             headers={"Prefer": "respond-async"}).json()["id"]
        wait_until(lambda: httpx.get(f"{base}/v1/jobs/{running}").json()["progress"] > 0, 120, "training")
    finally:
        stop(process)

    process = serve(tmp_path, port)
    try:
        again = httpx.post(f"{base}/v1/kernels", json={"x": X, "architecture": ARCH}, timeout=60)
        assert again.headers["x-cache"] == "hit" and again.content == done.content
        final = wait_until(lambda: (s := httpx.get(f"{base}/v1/jobs/{running}").json())["status"]
                           not in ("queued", "running") and s, 240, "the interrupted job")
        assert final["status"] == "succeeded" and final["attempts"] == 2, final
    finally:
        stop(process)
