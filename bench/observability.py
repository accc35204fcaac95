"""Benchmark: what the operators' view costs, in-process (httpx ASGITransport, no network, no Dask).

    python bench/observability.py                       # stores of 0, 10k and 100k jobs
    python bench/observability.py --jobs 0 1000 --requests 2000

1. A /metrics scrape against a SQLite store of N job records (the rows inserted directly; no
   files): CPU and wall milliseconds per scrape, medians of 5 rounds of 20 scrapes.
2. The request middleware (request id, route template, metrics, one JSON access line written to
   /dev/null as `reskernel serve` writes them): GET /v1/jobs/{unknown id} (a 404: one store read,
   logged at INFO) with and without it, CPU microseconds per request, medians of 5 alternating
   rounds; and the middleware alone around an app that answers at once, called directly. Times are
   process CPU seconds: the machine is shared, the wall clock is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repository, not bench/ (whose service.py would shadow it)

from service.http.app import create_app  # noqa: E402
from service.http.observability import RequestContext  # noqa: E402
from service.jobs.executor import Executor  # noqa: E402
from service.jobs.lifecycle import Jobs  # noqa: E402
from service.logs import JsonFormatter  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.store.sqlite import SQLiteStore  # noqa: E402

STATUSES = ("queued", "running", "succeeded", "failed", "canceled")


def fill(data_dir: Path, n: int) -> None:
    """n job records with statuses spread over the five (rows only: the metrics read nothing else)."""
    SQLiteStore(data_dir).close()  # the schema
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        now = time.time()
        db.executemany(
            "INSERT INTO jobs (id, operation, params, status, progress, message, attempts, created_at, started_at,"
            " finished_at, error, cancel_requested, size_bytes, accessed_at) VALUES (?, 'kernels', '{}', ?, 1, '',"
            " 1, ?, ?, ?, NULL, 0, 0, ?)",
            ((f"{i:064x}", STATUSES[i % 5], now, now, now, now) for i in range(n)))


def app_for(data_dir: Path, middleware: bool = True):
    settings = Settings(data_dir=data_dir, trusted_hosts=("*",))
    app = create_app(settings, Jobs(settings, SQLiteStore(data_dir), Executor(settings)))  # never started
    if not middleware:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestContext]
    return app


async def per_call(client: httpx.AsyncClient, path: str, calls: int) -> tuple[float, float]:
    """CPU and wall seconds per GET of `path`."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await client.get(path)
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


async def scrape(n: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        fill(Path(folder), n)
        app = app_for(Path(folder))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://local") as client:
            text = (await client.get("/metrics")).text
            assert f'reskernel_jobs{{status="queued"}} {float((n + 4) // 5)}' in text, text
            rounds = [await per_call(client, "/metrics", 20) for _ in range(5)]
    return {"jobs": n, "cpu_ms": 1e3 * statistics.median(r[0] for r in rounds),
            "wall_ms": 1e3 * statistics.median(r[1] for r in rounds)}


async def middleware_cost(requests: int) -> dict:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (open for the whole run)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    path = "/v1/jobs/" + "0" * 64
    with tempfile.TemporaryDirectory() as folder:
        clients = {name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(Path(folder), on)),
                                           base_url="http://local")
                   for name, on in (("with", True), ("without", False))}
        for client in clients.values():
            await per_call(client, path, 200)  # warm-up
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(5):
            for name, client in clients.items():
                cpu[name].append((await per_call(client, path, requests))[0])
        for client in clients.values():
            await client.aclose()
    medians = {name: 1e6 * statistics.median(values) for name, values in cpu.items()}
    return {"requests_per_round": requests, "cpu_us_with": medians["with"], "cpu_us_without": medians["without"],
            "cpu_us_added": medians["with"] - medians["without"]}


async def middleware_alone(requests: int) -> dict:
    """RequestContext around an ASGI app that answers 404 at once, called directly (no HTTP client,
    no routing): CPU microseconds per request, the JSON access line included (run after
    `middleware_cost`, which installs the /dev/null handler)."""
    from service.http.metrics import Metrics

    async def answer(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        pass

    wrapped = RequestContext(answer, Metrics(lambda: None))
    scope = {"type": "http", "method": "GET", "path": "/v1/jobs/" + "0" * 64, "headers": [(b"host", b"local")]}
    rounds = []
    for _ in range(5):
        cpu = time.process_time()
        for _ in range(requests):
            await wrapped(dict(scope), receive, send)
        rounds.append((time.process_time() - cpu) / requests)
    return {"middleware_alone_cpu_us": 1e6 * statistics.median(rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[0, 10_000, 100_000])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    for n in args.jobs:
        print(json.dumps(asyncio.run(scrape(n))))
    print(json.dumps(asyncio.run(middleware_cost(args.requests))))
    print(json.dumps(asyncio.run(middleware_alone(10 * args.requests))))


if __name__ == "__main__":
    main()
