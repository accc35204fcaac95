"""POST /v1/<operation>: validate, admit, submit (or find) the job, wait, answer."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.bodies import parse, read_body, request_body
from service.deps import get_jobs, get_settings, require_json
from service.errors import ServiceError
from service.jobs import Jobs, split_request
from service.limits import check_limits
from service.logs import bind_job
from service.results import NPY, NPZ
from service.routes.jobs import describe, outcome, problems
from service.schemas import OPERATIONS, RESULTS, JobStatus, Model
from service.settings import Settings
from service.store import ACTIVE, Job

router = APIRouter(prefix="/v1", tags=["operations"], dependencies=[Depends(require_json)])
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


async def submit_and_wait(operation: str, params: dict, inputs: dict, request: Request, jobs: Jobs,
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


def _admit_and_submit(operation: str, model: type[Model], raw: bytes, jobs: Jobs, settings: Settings,
                      ) -> tuple[Job, bool]:
    """Parse, validate and admit a request body, then submit (or find) its job: one trip to a
    worker thread. The estimated compute seconds go with the job (small jobs share a task)."""
    body = parse(model, raw, settings.limits)
    cost = check_limits(body, settings.limits, settings.cache_bytes)
    return jobs.submit(operation, *split_request(body), seconds=cost.total("compute"))


def _route(operation: str, model: type[Model]) -> None:
    async def handler(request: Request, jobs: Annotated[Jobs, Depends(get_jobs)],
                      settings: Annotated[Settings, Depends(get_settings)],
                      prefer: Annotated[str | None, Header(description=PREFER)] = None) -> Response:
        wait = wait_seconds(prefer, settings)
        job, hit = await run_in_threadpool(_admit_and_submit, operation, model, await read_body(request), jobs,
                                           settings)
        return await answer(job, hit, wait, request, jobs, settings, prefer)

    router.add_api_route(
        f"/{operation}", handler, methods=["POST"], name=operation, openapi_extra=request_body(model),
        summary=(model.__doc__ or operation).strip().splitlines()[0],
        description=(model.__doc__ or "").strip() + "\n\nRuns as a job (see /v1/jobs); equal requests share one "
                    "job and its cached result.",
        responses={200: {"model": RESULTS[operation], "content": {NPY: {}, NPZ: {}},
                         "description": "The result (X-Cache: hit or miss; strong ETag)."},
                   202: {"model": JobStatus, "description": "Not finished yet: poll Location."},
                   304: {"description": "Not modified (If-None-Match)."},
                   **problems(400, 406, 409, 413, 415, 422, 429, 500, 507)})


for _name, _model in OPERATIONS.items():
    _route(_name, _model)
