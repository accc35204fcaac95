"""POST /v1/bounds: the paper's bounds on ||df/dx|| at initialisation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from engine.architectures import Architecture
from service.operations.cost import Cost, Term, worker_base
from service.operations.fields import ArchitectureSpec, Arrays, Model, Number, Progress, field_error

MAX_SIZE = 10**15  # width and input_dim: exact as float64
C_PHI = (1e-6, 1e6)


class BoundsRequest(Model):
    """The paper's bounds on ||df/dx|| at initialisation (eqs. 18, 20, 21)."""

    architecture: ArchitectureSpec = Field(description=(
        "The network; shallow enough that both bounds stay below 1e300 (a 422 naming architecture.depth says the "
        "deepest that does)."))
    width: int = Field(ge=1, le=MAX_SIZE, description="Hidden width n, at most 1e15.")
    input_dim: int = Field(ge=1, le=MAX_SIZE, description="Input dimension d, at most 1e15.")
    c_phi: Number = Field(1.0, ge=C_PHI[0], le=C_PHI[1], description=(
        "The activation's Lipschitz constant, in [1e-6, 1e6] (1 for ReLU)."))

    @model_validator(mode="after")
    def _finite(self) -> BoundsRequest:
        """The bounds themselves (a closed form in plain math: cheap), so that no job fails on them."""
        from engine.bounds import jacobian_bounds

        try:
            values = jacobian_bounds(Architecture.from_dict(self.architecture.model_dump()), self.width,
                                     self.input_dim, self.c_phi)
        except ValueError as exc:  # the bound overflows float64 from some depth on
            raise field_error("architecture.depth", str(exc)) from None
        except ArithmeticError as exc:
            raise field_error("architecture", f"the bounds are not finite for this architecture ({exc})") from None
        if not all(math.isfinite(v) for v in values.values() if v is not None):
            raise field_error("architecture", "the bounds are not finite for this architecture and c_phi")
        return self


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
