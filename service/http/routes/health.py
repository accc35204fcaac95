"""/healthz, /readyz and /v1/info."""

import platform
from dataclasses import asdict
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from service.errors import Unavailable
from service.http.answers import problems
from service.http.deps import get_jobs, get_settings
from service.jobs.lifecycle import Jobs
from service.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:  # on the event loop: no thread pool to wait for
    return {"status": "ok"}


@router.get("/readyz", summary="Workers are connected and the store answers", responses=problems(503))
def readyz(jobs: Annotated[Jobs, Depends(get_jobs)]) -> dict[str, Any]:
    jobs.store.ping()  # a write: a full Redis answers reads but refuses writes (StoreUnavailable, 503)
    workers = jobs.executor.workers()
    if workers == 0:
        raise Unavailable("no Dask workers are connected")
    return {"status": "ready", "workers": workers, "active_jobs": jobs.store.count_active()}


@router.get("/v1/info", summary="Versions, the workers' JAX backend and devices, x64, limits")
def info(jobs: Annotated[Jobs, Depends(get_jobs)], settings: Annotated[Settings, Depends(get_settings)],
         ) -> dict[str, Any]:
    """Answers from what the service already knows: never waits on a worker."""
    packages = {name: version(name) for name in ("reskernel", "fastapi", "pydantic", "distributed", "numpy")}
    return {"service": {"python": platform.python_version(), **packages}, "worker": jobs.worker_info,  # null: not yet
            "limits": asdict(settings.limits), "wait_s": settings.wait_s, "workers": jobs.executor.workers()}
