"""How a job becomes an HTTP answer: its status document, waiting as the Prefer header asks
(RFC 7240), and the outcome (the result, its failure as problem+json, or a 202)."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.errors import Conflict, ServiceError
from service.http.documents import Problem
from service.http.results import Window, manifest, respond
from service.jobs.lifecycle import Jobs
from service.logs import bind_job
from service.settings import Settings
from service.store.job import ACTIVE, Job
from service.store.protocol import Store

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: PROBLEM for code in codes}


def describe(job: Job, store: Store | None = None) -> dict[str, Any]:
    """The public status document of a job (`JobStatus`); with the store, a succeeded job's
    document lists what its result holds."""
    base = f"/v1/jobs/{job.id}"
    links = {"self": base, "events": f"{base}/events", "cancel": f"{base}:cancel"}
    document = {"id": job.id, "operation": job.operation, "status": job.status, "progress": job.progress,
                "message": job.message, "attempts": job.attempts, "created_at": job.created_at,
                "started_at": job.started_at, "finished_at": job.finished_at, "error": job.error, "links": links}
    if job.status == "succeeded":
        links["result"] = f"{base}/result"
        if store is not None:
            document["result"] = manifest(store, job)
    return document


def pending(job: Job, cache: str = "miss") -> JSONResponse:
    """202: the job has not ended; where to look and when."""
    return JSONResponse(describe(job), status_code=202, headers={
        "Location": f"/v1/jobs/{job.id}", "Retry-After": "1", "X-Cache": cache})


def outcome(job: Job, jobs: Jobs, settings: Settings, request: Request, *, hit: bool,
            array: str | None = None, window: Window = (None, None)) -> Response:
    """The answer for a job in any state: its result (or a block of one array), its failure, or a 202."""
    if job.status == "succeeded":
        return respond(jobs.store, job, request, hit=hit, json_limit=settings.limits.json_elements, array=array,
                       window=window)
    if job.status == "failed":
        error = job.error or {"status": 500, "title": "Job failed", "detail": "unknown failure"}
        retry = {"Retry-After": "60"} if error["status"] == 507 else None  # as a 507 answered at once
        raise ServiceError(error["detail"], status=error["status"], title=error["title"], extra={"job": job.id},
                           headers=retry)
    if job.status == "canceled":
        raise Conflict(f"job {job.id} was canceled; submit the request again to re-run it", extra={"job": job.id})
    return pending(job)


PREFER = ("How long to wait for the result: 'wait=N' seconds (default 30; 0 = do not wait), or "
          "'respond-async' (answer 202 at once); 'return=minimal' answers with the job's status document "
          "(its result's values and array links) instead of the result itself, whatever its size.")


def minimal(prefer: str | None) -> bool:
    """Whether an RFC 7240 Prefer header asks for `return=minimal`."""
    return "return=minimal" in [token.strip().lower() for token in (prefer or "").split(",")]


def wait_seconds(prefer: str | None, settings: Settings) -> float:
    """Seconds to wait, from an RFC 7240 Prefer header."""
    wait = settings.wait_s
    for token in (prefer or "").split(","):
        token = token.strip().lower()
        if token == "respond-async":
            wait = 0.0
        elif token.startswith("wait="):
            try:
                wait = float(token[len("wait="):])
            except ValueError:
                raise ServiceError(f"Prefer: wait must be a number of seconds, got {token!r}", field="Prefer") from None
    return min(max(wait, 0.0), settings.max_wait_s)


async def submit_and_wait(operation: str, params: dict[str, Any], inputs: dict[str, Any], request: Request, jobs: Jobs,
                          settings: Settings, prefer: str | None) -> Response:
    """Submit (or find) the job, wait as the Prefer header asks, answer with its outcome."""
    wait = wait_seconds(prefer, settings)
    job, hit = await run_in_threadpool(jobs.submit, operation, params, inputs)
    return await answer(job, hit, wait, request, jobs, settings, prefer)


async def answer(job: Job, hit: bool, wait: float, request: Request, jobs: Jobs, settings: Settings,
                 prefer: str | None) -> Response:
    """Wait up to `wait` seconds for a submitted job, then answer with its outcome."""
    bind_job(job.id)
    request.app.state.metrics.cache(job.operation, hit)
    if job.status in ACTIVE and wait > 0:
        job = await jobs.wait(job.id, wait)
    if job.status == "succeeded" and minimal(prefer):
        jobs.store.touch(job.id)
        return JSONResponse(describe(job, jobs.store), headers={
            "Location": f"/v1/jobs/{job.id}", "X-Cache": "hit" if hit else "miss",
            "Preference-Applied": "return=minimal"})
    return outcome(job, jobs, settings, request, hit=hit)
