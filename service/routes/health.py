"""/healthz, /readyz and /v1/info."""

import platform
from dataclasses import asdict
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from service.deps import get_jobs, get_settings
from service.errors import Unavailable
from service.jobs import Jobs
from service.routes.jobs import problems
from service.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Workers are connected and the store answers", responses=problems(503))
def readyz(jobs: Annotated[Jobs, Depends(get_jobs)]) -> dict[str, Any]:
    workers = jobs.executor.workers()
    if workers == 0:
        raise Unavailable("no Dask workers are connected")
    return {"status": "ready", "workers": workers, "active_jobs": jobs.store.count_active()}


@router.get("/v1/info", summary="Versions, the workers' JAX backend and devices, x64, limits")
async def info(request: Request, jobs: Annotated[Jobs, Depends(get_jobs)],
               settings: Annotated[Settings, Depends(get_settings)]) -> dict[str, Any]:
    state = request.app.state
    if getattr(state, "worker_info", None) is None and jobs.executor.workers() > 0:
        state.worker_info = await run_in_threadpool(jobs.executor.describe)
    packages = {name: version(name) for name in ("reskernel", "fastapi", "pydantic", "distributed", "numpy")}
    return {"service": {"python": platform.python_version(), **packages}, "worker": state.worker_info,  # null: none yet
            "limits": asdict(settings.limits), "wait_s": settings.wait_s, "workers": jobs.executor.workers()}
