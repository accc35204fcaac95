"""/v1/experiments: the paper's experiments, listed, and run as jobs like any operation."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from engine.experiments import EXPERIMENTS
from engine.experiments.registry import ParameterError
from service.errors import ServiceError
from service.http.answers import PREFER, problems, submit_and_wait
from service.http.bodies import parse, read_body, request_body
from service.http.deps import get_jobs, get_settings, require_json
from service.http.documents import BINARY, JobStatus
from service.http.results import NPY, NPZ
from service.jobs.admission import check_experiment
from service.jobs.lifecycle import Jobs
from service.operations.experiment import ExperimentInfo, ExperimentRequest, check_architectures
from service.settings import Settings

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


@router.get("", summary="The paper's experiments, their descriptions and parameters",
            response_model=list[ExperimentInfo])
def list_experiments() -> list[dict[str, Any]]:
    return [e.describe() for e in EXPERIMENTS.values()]


@router.post("/{name}", summary="Run an experiment as a job (cached by its parameters)",
             description="The result holds the experiment's tables, labels and arrays; its figure is at "
                         "/v1/jobs/{id}/figure.png and .svg.",
             openapi_extra=request_body(ExperimentRequest), dependencies=[Depends(require_json)],
             responses={200: {"content": {NPY: BINARY, NPZ: BINARY}, "description": "The experiment's data."},
                        202: {"model": JobStatus}, **problems(400, 404, 406, 409, 413, 415, 422, 429, 500, 507)})
async def run_experiment(name: str, request: Request, jobs: Annotated[Jobs, Depends(get_jobs)],
                         settings: Annotated[Settings, Depends(get_settings)],
                         prefer: Annotated[str | None, Header(description=PREFER)] = None) -> Response:
    if name not in EXPERIMENTS:
        raise ServiceError(f"no experiment {name!r}; the experiments are {sorted(EXPERIMENTS)}", status=404,
                           title="No such experiment")
    body = await run_in_threadpool(parse, ExperimentRequest, await read_body(request), settings.limits)
    try:
        parameters = EXPERIMENTS[name].parameters(body.scale, body.parameters)
        check_architectures(parameters)
    except ParameterError as exc:
        field = "parameters" if exc.parameter is None else f"parameters.{exc.parameter}"
        raise ServiceError(str(exc), status=422, title="Invalid request", field=field) from None
    check_experiment(name, parameters, settings.limits, settings.cache_bytes)
    params = {"name": name, "scale": body.scale, "parameters": parameters}
    return await submit_and_wait("experiment", params, {}, request, jobs, settings, prefer)
