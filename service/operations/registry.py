"""The operations by name: what `POST /v1/<name>` validates (its request model), answers (its
result model), charges (its cost estimate) and runs in a worker (its worker function).
Experiments (`service.operations.experiment`) run as jobs of the operation "experiment"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from service.operations import (
    bounds,
    empirical_kernels,
    experiment,
    kernels,
    regression,
    smoothness,
    spectrum,
    train,
)
from service.operations.cost import Cost
from service.operations.fields import Model, Run
from service.operations.tiles import Tiling


@dataclass(frozen=True)
class Operation:
    """One operation: its request and result models, `cost(request)` and `run` (the worker function);
    `cost_within(request, memory_bytes, edge)`, for an operation whose worker changes its method to fit the
    memory budget (the exact regression out of core), its cost under that budget."""

    request: type[Model]
    result: type[BaseModel]
    cost: Callable[[Any], Cost]
    run: Run
    cost_within: Callable[[Any, int, int], Cost] | None = None


OPERATIONS: dict[str, Operation] = {
    "kernels": Operation(kernels.KernelsRequest, kernels.KernelsResult, kernels.cost, kernels.run),
    "regression": Operation(regression.RegressionRequest, regression.RegressionResult, regression.cost,
                            regression.run, regression.cost_within),
    "smoothness": Operation(smoothness.SmoothnessRequest, smoothness.SmoothnessResult, smoothness.cost,
                            smoothness.run),
    "bounds": Operation(bounds.BoundsRequest, bounds.BoundsResult, bounds.cost, bounds.run),
    "spectrum": Operation(spectrum.SpectrumRequest, spectrum.SpectrumResult, spectrum.cost, spectrum.run),
    "empirical-kernels": Operation(empirical_kernels.EmpiricalKernelsRequest,
                                   empirical_kernels.EmpiricalKernelsResult, empirical_kernels.cost,
                                   empirical_kernels.run),
    "train": Operation(train.TrainRequest, train.TrainResult, train.cost, train.run),
}
REQUESTS: dict[str, type[Model]] = {name: op.request for name, op in OPERATIONS.items()}
RESULTS: dict[str, type[BaseModel]] = {name: op.result for name, op in OPERATIONS.items()}
RUNS: dict[str, Run] = {name: op.run for name, op in OPERATIONS.items()} | {"experiment": experiment.run}
BODY_MODELS: tuple[type[Model], ...] = (*REQUESTS.values(), experiment.ExperimentRequest)  # parsed by http.bodies


def estimate(request: Model, memory_bytes: int | None = None, edge: int = Tiling.edge) -> Cost:
    """The cost of an operation's validated request (an instance of one of `REQUESTS`); given the worker's
    memory budget (and the out-of-core blocks' edge, RESKERNEL_TILE_EDGE), the cost of what the worker runs
    under it (`Operation.cost_within`)."""
    for op in OPERATIONS.values():
        if isinstance(request, op.request):
            if memory_bytes is not None and op.cost_within is not None:
                return op.cost_within(request, memory_bytes, edge)
            return op.cost(request)
    raise TypeError(f"no cost model for {type(request).__name__}")
