"""The operators' view: /metrics after real requests, X-Request-ID, structured logs naming the
request and the job, bearer-token auth, CORS. In-process apps sharing the suite's Dask cluster
(each test builds its own app, so its metrics registry counts only that test's requests)."""

import io
import json
import logging
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from service.http.app import create_app
from service.logs import JsonFormatter, TextFormatter, job_context, names_job
from service.settings import Settings
from service.store.job import Job
from service.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
ARCH = {"kind": "resnet", "depth": 5, "alpha": 0.1}
UNKNOWN_JOB = "0" * 64
TOKEN = "s3cret-token"


def client(app: FastAPI, host: str = "reskernel") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


def fresh_points() -> list[list[float]]:
    """Points no other request used: the first POST of them is a cache miss."""
    return np.random.default_rng(uuid.uuid4().int % 2**32).normal(size=(4, 3)).tolist()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from Prometheus' text format."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def captured():
    """The "reskernel" loggers' lines as JSON objects, as `reskernel serve` writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("reskernel")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_metrics_count_requests_cache_jobs_and_durations(settings, jobs):
    # the Jobs service is shared: let earlier tests' jobs end first, so that the only job this app's metrics
    # (created after) observe ending is this test's
    deadline = time.monotonic() + 120
    while jobs.store.count_active() and time.monotonic() < deadline:
        await anyio.sleep(0.1)
    await anyio.sleep(0.5)  # an end recorded in the store just now may reach on_end a moment later
    app = create_app(settings, jobs)
    body = {"x": fresh_points(), "architecture": ARCH, "kernels": ["ntk"]}
    async with client(app) as api:
        miss = await api.post("/v1/kernels", json=body)
        hit = await api.post("/v1/kernels", json=body)
        assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("miss", "hit")
        job_id = hit.headers["ETag"].strip('"')
        assert (await api.get(f"/v1/jobs/{UNKNOWN_JOB}")).status_code == 404
        status = (await api.get(f"/v1/jobs/{job_id}")).json()
        deadline = time.monotonic() + 30  # the job's end is observed in Dask's callback thread, maybe after the answer
        while True:
            response = await api.get("/metrics")
            metrics = samples(response.text)
            count = metrics.get(("reskernel_job_duration_seconds_count",
                                 (("operation", "kernels"), ("status", "succeeded"))))
            if count or time.monotonic() > deadline:
                break
            await anyio.sleep(0.1)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    seconds = metrics[("reskernel_job_duration_seconds_sum", (("operation", "kernels"), ("status", "succeeded")))]
    assert count == 1 and seconds == pytest.approx(status["finished_at"] - status["started_at"])
    assert metrics[("reskernel_cache_misses_total", (("operation", "kernels"),))] == 1
    assert metrics[("reskernel_cache_hits_total", (("operation", "kernels"),))] == 1
    requests = {labels: value for (name, labels), value in metrics.items() if name == "reskernel_http_requests_total"}
    assert requests[(("method", "POST"), ("route", "/v1/kernels"), ("status", "200"))] == 2
    assert requests[(("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "404"))] == 1
    assert requests[(("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "200"))] == 1
    assert not any(job_id in str(labels) or UNKNOWN_JOB in str(labels) for labels in requests)  # templates only
    by_status = {dict(labels)["status"]: value for (name, labels), value in metrics.items() if name == "reskernel_jobs"}
    assert set(by_status) == {"queued", "running", "succeeded", "failed", "canceled"}
    assert by_status["succeeded"] >= 1
    assert metrics[("reskernel_queue_depth", ())] == by_status["queued"] + by_status["running"]
    assert metrics[("reskernel_store_up", ())] == 1


async def test_metrics_name_unmatched_paths_and_refused_requests_by_template(settings, jobs):
    app = create_app(replace(settings, api_token=TOKEN), jobs)
    async with client(app) as api:
        await api.get("/no/such/path", headers={"Authorization": f"Bearer {TOKEN}"})
        await api.get(f"/v1/jobs/{UNKNOWN_JOB}")  # refused by the token check, before routing
        await api.request("BREW", "/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        metrics = samples((await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text)
    requests = {labels: value for (name, labels), value in metrics.items() if name == "reskernel_http_requests_total"}
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert requests[(("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "401"))] == 1
    assert requests[(("method", "other"), ("route", "/v1/jobs"), ("status", "405"))] == 1


async def test_metrics_report_a_store_that_does_not_answer(settings, jobs, tmp_path):
    class Broken:
        store = None

        def __init__(self):
            self.on_end = []

    broken = Broken()
    broken.store = SQLiteStore(tmp_path)
    broken.store.close()  # every query now fails
    app = create_app(settings, broken)
    async with client(app) as api:
        response = await api.get("/metrics")
    metrics = samples(response.text)
    assert response.status_code == 200
    assert metrics[("reskernel_store_up", ())] == 0
    assert not any(name in ("reskernel_jobs", "reskernel_queue_depth") for name, _ in metrics)


def test_counts_has_every_status(tmp_path):
    store = SQLiteStore(tmp_path)
    try:
        assert store.counts() == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
        for i, status in enumerate(["queued", "queued", "failed"]):
            store.create(Job(id=f"{i:064x}", operation="kernels", params={}, status=status), {})
        assert store.counts() == {"queued": 2, "running": 0, "succeeded": 0, "failed": 1, "canceled": 0}
    finally:
        store.close()


async def test_request_id_is_echoed_generated_or_replaced(api):
    given = await api.get("/healthz", headers={"X-Request-ID": "trace-0af7651916cd43dd:8448eb211c80319c"})
    assert given.headers["X-Request-ID"] == "trace-0af7651916cd43dd:8448eb211c80319c"
    generated = [(await api.get("/healthz")).headers["X-Request-ID"] for _ in range(2)]
    assert all(len(g) == 32 and int(g, 16) >= 0 for g in generated) and generated[0] != generated[1]
    for bad in ("x" * 129, "has space", "<script>", "a\"quote", "-starts-with-dash", "caf\u00e9"):
        answer = (await api.get("/healthz", headers={"X-Request-ID": bad.encode()})).headers["X-Request-ID"]
        assert answer != bad and len(answer) == 32, bad
    assert len((await api.get("/healthz", headers={"X-Request-ID": "x" * 128})).headers["X-Request-ID"]) == 128


async def test_request_id_is_on_answers_the_middlewares_and_the_error_handler_give(settings, jobs, captured):
    app = create_app(replace(settings, api_token=TOKEN), jobs)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client(app) as api:
        big = await api.post("/v1/kernels", content=b" " * (settings.limits.body_bytes + 1),
                             headers={**auth, "Content-Type": "application/json", "X-Request-ID": "big-1"})
        untrusted = await api.get("/healthz", headers={"Host": "evil.example", "X-Request-ID": "host-1"})
        unauthorized = await api.get("/v1/jobs", headers={"X-Request-ID": "auth-1"})
        crashed = await api.get("/v1/boom", headers={**auth, "X-Request-ID": "boom-1"})
    assert (big.status_code, big.headers["X-Request-ID"]) == (413, "big-1")
    assert (untrusted.status_code, untrusted.headers["X-Request-ID"]) == (400, "host-1")
    assert (unauthorized.status_code, unauthorized.headers["X-Request-ID"]) == (401, "auth-1")
    assert (crashed.status_code, crashed.headers["X-Request-ID"]) == (500, "boom-1")
    traceback = next(line for line in captured() if line["message"].startswith("internal error"))
    assert traceback["request_id"] == "boom-1" and "RuntimeError: a bug" in traceback["exception"]
    access = {line["request_id"]: line for line in captured() if line["logger"] == "reskernel.access"}
    assert {rid: access[rid]["status"] for rid in ("big-1", "host-1", "auth-1", "boom-1")} == \
        {"big-1": 413, "host-1": 400, "auth-1": 401, "boom-1": 500}


async def test_json_logs_carry_the_request_and_the_job(api, captured):
    body = {"x": fresh_points(), "architecture": ARCH, "kernels": ["nngp"]}
    posted = await api.post("/v1/kernels", json=body, headers={"X-Request-ID": "post-1"})
    job_id = posted.headers["ETag"].strip('"')
    await api.get(f"/v1/jobs/{job_id}", headers={"X-Request-ID": "get-1"})
    access = {line["request_id"]: line for line in captured() if line["logger"] == "reskernel.access"}
    for rid, method, route in (("post-1", "POST", "/v1/kernels"), ("get-1", "GET", "/v1/jobs/{job_id}")):
        line = access[rid]
        assert {k: line[k] for k in ("level", "method", "route", "status", "job_id")} == \
            {"level": "INFO", "method": method, "route": route, "status": 200, "job_id": job_id}
        assert line["duration_s"] > 0 and line["time"].endswith("+00:00")
        assert line["message"].startswith(f"{method} /v1/")


def test_lines_logged_where_jobs_are_handled_name_the_job():
    record = logging.LogRecord("reskernel.worker", logging.WARNING, __file__, 1, "job did %s", ("this",), None)

    @names_job
    def run(job_id: str, where: str) -> str:
        return JsonFormatter().format(record) + "\n" + TextFormatter().format(record)

    as_json, as_text = run("a" * 64, "worker").splitlines()
    assert json.loads(as_json) == {"time": json.loads(as_json)["time"], "level": "WARNING",
                                   "logger": "reskernel.worker", "message": "job did this", "job_id": "a" * 64}
    assert as_text.endswith(f"reskernel.worker: job did this [job_id={'a' * 64}]")
    with job_context("b" * 64):
        assert json.loads(JsonFormatter().format(record))["job_id"] == "b" * 64
    assert "job_id" not in json.loads(JsonFormatter().format(record))  # outside any job


def test_serve_configures_json_lines_for_every_logger():
    """`reskernel serve`'s logging set-up (service.logs.configure) in a fresh interpreter: the
    service's, uvicorn's and Dask's lines are JSON objects, and the service's INFO lines still
    come out while a local Dask cluster silences its own loggers (it lowers their handlers)."""
    code = ("import logging, distributed; from distributed.utils import silence_logging_cmgr\n"
            "from service.logs import configure; configure('json', 'INFO')\n"
            "with silence_logging_cmgr(logging.ERROR):\n"
            "    [logging.getLogger(n).info('from %s', n) for n in ('reskernel', 'uvicorn.error', 'distributed')]\n"
            "    logging.getLogger('distributed.scheduler').error('from Dask')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert [(line["logger"], line["level"], line["message"]) for line in lines] == \
        [*((n, "INFO", f"from {n}") for n in ("reskernel", "uvicorn.error")),
         ("distributed.scheduler", "ERROR", "from Dask")], run.stderr


async def test_bearer_token_guards_everything_but_health_and_static_pages(settings, jobs):
    app = create_app(replace(settings, api_token=TOKEN), jobs)
    async with client(app) as api:
        missing = await api.get("/v1/jobs")
        wrong = await api.get("/v1/jobs", headers={"Authorization": "Bearer not-the-token"})
        basic = await api.get("/v1/jobs", headers={"Authorization": f"Basic {TOKEN}"})
        right = await api.get("/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        metrics = await api.get("/metrics")
        big = await api.post("/v1/kernels", content=b" " * (settings.limits.body_bytes + 1),
                             headers={"Content-Type": "application/json"})
        opened = {path: (await api.get(path)).status_code for path in
                  ("/healthz", "/readyz", "/", "/explorer/api.js", "/openapi.json", "/docs", "/docs/swagger-ui.css")}
        schema = (await api.get("/openapi.json")).json()
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="reskernel"'
    detail = missing.json()["detail"]
    assert missing.json() == {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": detail,
                              "instance": "/v1/jobs", "errors": [{"field": "Authorization", "message": detail}]}
    assert "Bearer <token>" in detail
    for refused in (wrong, basic):
        assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert right.status_code == 200 and "jobs" in right.json()
    assert metrics.status_code == 401
    assert big.status_code == 401  # refused before its body is read
    assert opened == dict.fromkeys(opened, 200)
    assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer",
                                                                 "description": "RESKERNEL_API_TOKEN"}
    assert schema["security"] == [{"bearer": []}]


async def test_without_a_token_the_api_is_open(api):
    assert (await api.get("/v1/jobs")).status_code == 200
    assert "securitySchemes" not in (await api.get("/openapi.json")).json()["components"]


async def test_cors_is_off_unless_origins_are_set(settings, jobs, api):
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, x-request-id"}
    off = await api.options("/v1/kernels", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    assert "access-control-allow-origin" not in (await api.get("/v1/jobs", headers={"Origin": "https://ui.example"})).headers

    app = create_app(replace(settings, cors_origins=("https://ui.example",), api_token=TOKEN), jobs)
    async with client(app) as cross:
        on = await cross.options("/v1/kernels", headers=preflight)  # no token: a preflight never carries one
        other = await cross.options("/v1/kernels", headers={**preflight, "Origin": "https://other.example"})
        simple = await cross.get("/v1/jobs", headers={"Origin": "https://ui.example",
                                                      "Authorization": f"Bearer {TOKEN}"})
        refused = await cross.get("/v1/jobs", headers={"Origin": "https://ui.example"})
    assert on.status_code == 200 and on.headers["access-control-allow-origin"] == "https://ui.example"
    assert {"authorization", "content-type", "x-request-id"} <= \
        {h.strip().lower() for h in on.headers["access-control-allow-headers"].split(",")}
    assert "POST" in on.headers["access-control-allow-methods"] and "X-Request-ID" in on.headers
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    exposed = {h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")}
    assert {"location", "etag", "x-cache", "x-request-id", "retry-after"} <= exposed
    assert simple.status_code == 200 and simple.headers["access-control-allow-origin"] == "https://ui.example"
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://ui.example"


def test_settings_read_the_operations_variables():
    settings = Settings.from_env({"RESKERNEL_API_TOKEN": "t0k3n", "RESKERNEL_LOG_FORMAT": "TEXT",
                                  "RESKERNEL_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert (settings.api_token, settings.log_format, settings.cors_origins) == \
        ("t0k3n", "text", ("https://a.example", "https://b.example"))
    assert "t0k3n" not in repr(settings)
    default = Settings.from_env({})
    assert (default.api_token, default.log_format, default.cors_origins) == (None, "json", ())
    with pytest.raises(ValueError, match="RESKERNEL_LOG_FORMAT"):
        Settings.from_env({"RESKERNEL_LOG_FORMAT": "xml"})
