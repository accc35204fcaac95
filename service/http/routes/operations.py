"""POST /v1/<operation>: validate, admit, submit (or find) the job, wait, answer."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from service.http.answers import PREFER, answer, problems, wait_seconds
from service.http.bodies import parse, read_body, request_body
from service.http.deps import get_jobs, get_settings, require_json
from service.http.documents import BINARY, JobStatus
from service.http.results import NPY, NPZ
from service.jobs.admission import check_limits
from service.jobs.ids import split_request
from service.jobs.lifecycle import Jobs
from service.operations.fields import Model
from service.operations.registry import REQUESTS, RESULTS
from service.settings import Settings
from service.store.job import Job

router = APIRouter(prefix="/v1", tags=["operations"], dependencies=[Depends(require_json)])
def _admit_and_submit(operation: str, model: type[Model], raw: bytearray, jobs: Jobs, settings: Settings,
                      ) -> tuple[Job, bool]:
    """Parse, validate and admit a request body, then submit (or find) its job: one trip to a
    worker thread. The estimated compute seconds go with the job (small jobs share a task)."""
    body = parse(model, raw, settings.limits)
    cost = check_limits(body, settings.limits, settings.cache_bytes, settings.tile_edge)
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
        responses={200: {"model": RESULTS[operation], "content": {NPY: BINARY, NPZ: BINARY},
                         "description": "The result (X-Cache: hit or miss; strong ETag)."},
                   202: {"model": JobStatus, "description": "Not finished yet: poll Location."},
                   304: {"description": "Not modified (If-None-Match)."},
                   **problems(400, 406, 409, 413, 415, 422, 429, 500, 507)})


for _name, _model in REQUESTS.items():
    _route(_name, _model)
