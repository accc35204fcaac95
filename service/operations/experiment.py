"""POST /v1/experiments/{name}: one of the paper's experiments, run as a job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from service.operations import experiment_cost
from service.operations.cost import Cost
from service.operations.fields import Arrays, Model, Progress

FLOAT_MAX = sys.float_info.max


class ExperimentRequest(Model):
    """One of the paper's experiments (GET /v1/experiments lists them and their parameters)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"scale": "quick", "parameters": {"depths": [5]}}]})
    scale: Literal["quick", "paper"] = Field("quick", description="Parameter set: 'quick' (CPU) or the paper's.")
    parameters: dict[str, Any] = Field({}, description=(
        "Overrides of the scale's parameters, by name (GET /v1/experiments lists their types and bounds); numbers "
        "within float64's range. The depths must keep every compared network's kernel within [1e-300, 1e300] (the "
        "MLP's underflows near depth 1000): a 422 names the depth parameter."))

    @field_validator("parameters")
    @classmethod
    def _numbers(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        """Integers beyond float64's range are refused here, naming the parameter (not an
        OverflowError in the checks of `engine.experiments`)."""
        for name, value in parameters.items():
            for i, item in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(item, int) and not isinstance(item, bool) and abs(item) > FLOAT_MAX:
                    where = (name, i) if isinstance(value, list) else (name,)
                    raise PydanticCustomError("value_error", "an integer beyond float64's range (about 1.8e308)",
                                              {"where": where})
        return parameters


def check_architectures(parameters: dict[str, Any]) -> None:
    """Every network the experiment compares (the MLP and a ResNet per alpha, `engine.experiments.common`)
    at each of its depths must keep its kernel within float64's range; else a `ParameterError`
    naming the depth parameter (checked by the engine's plain-numpy `Architecture`)."""
    from engine.experiments.common import architectures
    from engine.experiments.registry import ParameterError

    alphas = parameters.get("alphas", [parameters["alpha"]] if "alpha" in parameters else [])
    for name in ("depth", "depths", "condition_depths"):
        value = parameters.get(name)
        for depth in value if isinstance(value, list) else [] if value is None else [value]:
            try:
                architectures(depth, alphas)
            except ValueError as exc:
                raise ParameterError(f"{name} {depth}: {exc}", name) from None


class ExperimentInfo(BaseModel):
    name: str
    title: str
    description: str
    quick: dict[str, Any] = Field(description="Parameters at the quick scale (the default).")
    paper: dict[str, Any] = Field(description="Parameters at the paper's scale.")
    parameters: dict[str, dict[str, Any]] = Field(description=(
        "Each parameter's declaration: type ('int', 'float', 'str', 'bool' or 'list[...]'), minimum / maximum / "
        "exclusive_minimum, choices, min_items / max_items / unique for lists, nullable, and both scales' values."))
    cost: dict[str, dict[str, int]] = Field(description=(
        "Cost estimates at both scales: kernel_entry_layers (Gram entries x depth), training_weight_steps "
        "(networks x steps x samples per step x weights), output_bytes (float64 arrays returned)."))


def cost(name: str, params: dict[str, Any]) -> Cost:
    """The cost of a paper experiment with a full parameter set: the sum of the operations it runs,
    each charged by its operation's own cost (`service.operations.experiment_cost`)."""
    return experiment_cost.cost(name, params)


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    """One of the paper's experiments: its data, and its figure as figure.png / figure.svg."""
    from engine import Cancelled
    from engine.experiments import run as run_experiment
    from report.figures import save

    def progress(fraction: float, message: str) -> None:
        report(fraction, message)
        if report.should_stop():
            raise Cancelled(f"experiment {params['name']} was cancelled")

    data = run_experiment(params["name"], params["scale"], params["parameters"], progress=progress)
    save(params["name"], data, folder)
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    return {k: v for k, v in data.items() if k not in arrays}, arrays
