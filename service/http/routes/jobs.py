"""/v1/jobs: status, result, progress events, cancel, delete, listing."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from service.errors import ServiceError
from service.http.answers import describe, outcome, problems
from service.http.deps import get_jobs, get_settings, require_json
from service.http.documents import BINARY, JobList, JobStatus
from service.http.results import NPY, NPZ, Download
from service.jobs.lifecycle import Jobs
from service.logs import bind_job
from service.settings import Settings
from service.store.job import TERMINAL, Job
from service.store.protocol import StoreUnavailable


class JobIdConvertor(Convertor[str]):
    """Job ids in paths are 64 hex digits, so '/v1/jobs/{id}:cancel' never matches '/v1/jobs/{id}'."""

    regex = "[0-9a-f]{64}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("job_id", JobIdConvertor())


async def _log_job(request: Request) -> None:
    """Log lines written while a job's route runs name the job (on the event loop: the context is the request's)."""
    if "job_id" in request.path_params:
        bind_job(request.path_params["job_id"])


router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(_log_job)])
JobId = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="The job id: a SHA-256 in hex (64 digits).")]
KEEP_ALIVE_S = 15  # a comment line this often keeps proxies from closing a quiet stream
SEP = "\n"  # the events' line separator (the explorer splits events on a blank line, "\n\n")
@router.get("", summary="List jobs, newest first", response_model=JobList, responses=problems(422))
def list_jobs(jobs: Annotated[Jobs, Depends(get_jobs)],
              status: Literal["queued", "running", "succeeded", "failed", "canceled"] | None = None,
              offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    page, total = jobs.store.page(status=status, offset=offset, limit=limit)
    following = None
    if offset + len(page) < total:
        following = f"/v1/jobs?offset={offset + len(page)}&limit={limit}" + (f"&status={status}" if status else "")
    return {"jobs": [describe(j) for j in page], "total": total, "next": following}


@router.get("/{job_id:job_id}", summary="A job's status and progress", response_model=JobStatus,
            responses=problems(404, 422))
def get_job(job_id: JobId, jobs: Annotated[Jobs, Depends(get_jobs)]) -> dict[str, Any]:
    return describe(jobs.get(job_id), jobs.store)


@router.get("/{job_id:job_id}/result", summary="A finished job's result (JSON, .npy or .npz by Accept)",
            responses={200: {"content": {NPY: BINARY, NPZ: BINARY}}, 202: {"model": JobStatus},
                       **problems(404, 406, 409, 410, 422, 500)})
def get_result(job_id: JobId, request: Request, jobs: Annotated[Jobs, Depends(get_jobs)],
               settings: Annotated[Settings, Depends(get_settings)],
               array: Annotated[str | None, Query(description="One array of the result, by name.")] = None,
               rows: Annotated[str | None, Query(description=(
                   "With array: the rows a:b (half-open, 0-based; either end may be left out) of its first axis, "
                   "read from the stored file with bounded memory."), examples=["0:100"])] = None,
               cols: Annotated[str | None, Query(description="With array: the columns c:d of its second axis.",
                                                 examples=["0:100"])] = None,
               ) -> Response:
    return outcome(jobs.get(job_id), jobs, settings, request, hit=True, array=array, window=(rows, cols))


@router.get("/{job_id:job_id}/figure.{kind}", summary="An experiment job's figure (PNG or SVG)",
            response_class=Response,  # no JSON: what the document says to generated clients
            responses={200: {"content": {"image/png": BINARY, "image/svg+xml": BINARY}, "description": "The figure."},
                       202: {"model": JobStatus}, **problems(404, 409, 422, 500)})
def get_figure(job_id: JobId, kind: Literal["png", "svg"], request: Request, jobs: Annotated[Jobs, Depends(get_jobs)],
               settings: Annotated[Settings, Depends(get_settings)]) -> Response:
    job = jobs.get(job_id)
    if job.status != "succeeded":
        return outcome(job, jobs, settings, request, hit=True)
    path = jobs.store.result_dir(job_id) / f"figure.{kind}"
    if not path.exists():
        raise ServiceError(f"job {job_id} ({job.operation}) has no figure; experiments have one", status=404,
                           title="No figure")
    media = "image/png" if kind == "png" else "image/svg+xml"
    return Download(path, media_type=media, headers={"ETag": f'"{job_id}-{kind}"'})


@router.get("/{job_id:job_id}/events", summary="Server-Sent Events of progress until the job ends",
            description="`progress` events while the job runs, then one `done` (or `deleted`); each carries the "
                        "job's status document and, as its id, the job's version. A client that reconnects with "
                        "`Last-Event-ID` (to any replica) receives only newer states, and at once the `done` of an "
                        "ended job. A stream lasts at most RESKERNEL_EVENT_STREAM_S seconds (then an "
                        "`event: timeout`; connect again); at most RESKERNEL_MAX_EVENT_STREAMS are open at once "
                        "(then 429).",
            response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
                       **problems(404, 422, 429, 503)})
async def job_events(job_id: JobId, request: Request, jobs: Annotated[Jobs, Depends(get_jobs)],
                     settings: Annotated[Settings, Depends(get_settings)],
                     last_event_id: Annotated[str | None, Header(
                         pattern="^[0-9]{0,18}$", description="The id of the last event received (the job's "
                         "version, a whole number), to resume after it.")] = None,
                     ) -> EventSourceResponse:
    after = int(last_event_id) if last_event_id else None
    await run_in_threadpool(jobs.get, job_id)
    state = request.app.state
    # checked and taken at once, with no await between (one event loop): a burst cannot overshoot the cap
    if state.event_streams >= settings.limits.event_streams:
        raise ServiceError(f"{state.event_streams} event streams are open, the limit; retry later or poll "
                           f"/v1/jobs/{job_id}", status=429, title="Too many event streams",
                           headers={"Retry-After": "5"})
    state.event_streams += 1
    slot = _Slot(state)
    deadline = time.monotonic() + settings.event_stream_s

    async def stream() -> AsyncIterator[dict[str, str]]:  # events as dicts: the response encodes them with `sep`
        try:
            with jobs.changes.watch(job_id) as changed:  # woken by the store, not by polling it
                seen = after
                while True:
                    changed.clear()
                    try:
                        job, answered = await run_in_threadpool(jobs.store.get, job_id), True
                    except StoreUnavailable:  # the stream waits: the store's listener wakes it once it is back
                        job, answered = None, False
                    if answered and job is None:
                        yield {"event": "deleted", "data": json.dumps({"id": job_id})}
                        return
                    if job is not None and (job.status in TERMINAL or seen is None or job.version > seen):
                        seen = job.version
                        ended = job.status in TERMINAL
                        yield {"event": "done" if ended else "progress", "id": str(job.version),
                               "data": json.dumps(_document(job, jobs))}
                        if ended:
                            return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), left)
            yield {"event": "timeout", "data": json.dumps({"id": job_id})}
        finally:
            slot.release()

    # no-cache, as before sse-starlette (its default, no-store, has Chromium report the stream's end as aborted)
    return _Events(slot, stream(), ping=KEEP_ALIVE_S, sep=SEP, headers={"Cache-Control": "no-cache"},
                   ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep=SEP))


def _document(job: Job, jobs: Jobs) -> dict[str, Any]:
    """The job's status document for an event; without its result's manifest when the result's
    files are gone (the stream has started: an error can no longer be the answer)."""
    try:
        return describe(job, jobs.store)
    except ServiceError:
        return describe(job)


class _Slot:
    """One open event stream counted in app.state.event_streams; released once, however it ends."""

    def __init__(self, state: Any):
        self.state, self.held = state, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.state.event_streams -= 1


class _Events(EventSourceResponse):
    """The event stream, its slot released when the response ends (also when its stream never
    started: the client left first)."""

    def __init__(self, slot: _Slot, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


@router.post("/{job_id:job_id}:cancel", summary="Cancel a job (a running one stops within a bounded time)",
             status_code=202, response_model=JobStatus, responses=problems(404, 409, 415, 422),
             dependencies=[Depends(require_json)], openapi_extra={"requestBody": {
                 "required": True, "description": "An empty JSON object (the Content-Type is what matters).",
                 "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}}})
def cancel_job(job_id: JobId, jobs: Annotated[Jobs, Depends(get_jobs)]) -> dict[str, Any]:
    return describe(jobs.cancel(job_id))


@router.delete("/{job_id:job_id}", summary="Delete a job and its result (stopping its work first)",
               status_code=204, responses=problems(404, 422, 507))
async def delete_job(job_id: JobId, jobs: Annotated[Jobs, Depends(get_jobs)]) -> Response:
    await jobs.delete(job_id)  # waits for the work to stop on the event loop, holding no thread
    return Response(status_code=204)


