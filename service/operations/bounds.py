"""POST /v1/bounds: the paper's bounds on ||df/dx|| at initialisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from service.operations.cost import Cost, Term, worker_base
from service.operations.fields import ArchitectureSpec, Arrays, Model, Number, Progress


class BoundsRequest(Model):
    """The paper's bounds on ||df/dx|| at initialisation (eqs. 18, 20, 21)."""

    architecture: ArchitectureSpec
    width: int = Field(ge=1)
    input_dim: int = Field(ge=1)
    c_phi: Number = Field(1.0, gt=0, description="The activation's Lipschitz constant.")


class BoundsResult(BaseModel):
    bound: float
    bound_mlp: float
    bound_resnet: float
    ratio_to_mlp: float
    alpha_threshold: float | None


def cost(r: BoundsRequest) -> Cost:
    return Cost([], [worker_base()], [Term(0.0, "body", "a closed form", "")])


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, jacobian_bounds

    return jacobian_bounds(Architecture.from_dict(params["architecture"]), params["width"], params["input_dim"],
                           params["c_phi"]), {}
