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


@dataclass(frozen=True)
class Operation:
    """One operation: its request and result models, `cost(request)` and `run` (the worker function)."""

    request: type[Model]
    result: type[BaseModel]
    cost: Callable[[Any], Cost]
    run: Run


OPERATIONS: dict[str, Operation] = {
    "kernels": Operation(kernels.KernelsRequest, kernels.KernelsResult, kernels.cost, kernels.run),
    "regression": Operation(regression.RegressionRequest, regression.RegressionResult, regression.cost,
                            regression.run),
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


def estimate(request: Model) -> Cost:
    """The cost of an operation's validated request (an instance of one of `REQUESTS`)."""
    for op in OPERATIONS.values():
        if isinstance(request, op.request):
            return op.cost(request)
    raise TypeError(f"no cost model for {type(request).__name__}")
