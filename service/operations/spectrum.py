"""POST /v1/spectrum: the kernel's profile on the circle, its spectrum, a Gram's eigenvalues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from service.operations.cost import (
    EIGVALSH_S_PER_N3,
    POINTS,
    Cost,
    Term,
    count_rows,
    floats,
    input_numbers,
    kernel_seconds,
    kernel_tiles,
    norm_q,
    worker_base,
)
from service.operations.fields import (
    POINT_SCALE,
    ArchitectureSpec,
    Arrays,
    Kernel,
    Model,
    Points,
    Progress,
    check_scale,
)


class SpectrumRequest(Model):
    """Kernel profile on the circle, its Fourier spectrum, and optionally a Gram spectrum."""

    architecture: ArchitectureSpec
    kernel: Kernel = "ntk"
    n_grid: int = Field(1024, ge=8, multiple_of=2, description="Uniform grid on the circle (even).")
    normalize: bool = Field(True, description="Divide the profile by its peak (unit peak, as in Fig. 2).")
    x: Points | None = Field(None, description="Points whose Gram eigenvalues and condition number to return."
                             + POINT_SCALE)

    @model_validator(mode="after")
    def _scale(self) -> SpectrumRequest:
        check_scale(self.architecture, ("x", self.x))
        return self


class SpectrumResult(BaseModel):
    angles: list[float]
    profile: list[float]
    frequencies: list[float]
    magnitudes: list[float]
    eigenvalues: list[float] | None = None
    condition: float | None = Field(None, description="lambda_max / lambda_min; null when lambda_min <= 0.")


def cost(r: SpectrumRequest) -> Cost:
    g, n, arch = r.n_grid, count_rows(r.x), r.architecture
    output = [floats(2 * g + 2 * (g // 2 + 1), "n_grid", f"profile and spectrum of n_grid {g}", "lower n_grid")]
    memory = [worker_base(), kernel_tiles([arch]), floats(8 * g, "n_grid", f"8 arrays of n_grid {g}", "lower n_grid")]
    compute = [kernel_seconds(1, g + 1, arch, "n_grid", "profile: ")]
    if r.x is not None:
        output.append(floats(n, "x", f"{n} eigenvalues"))
        memory += [input_numbers(n * len(r.x[0])), floats(4 * n * n, "x", f"4 copies of the {n} x {n} Gram matrix")]
        compute += [kernel_seconds(n, None, arch, "x", "Gram: ", (norm_q(r.x), norm_q(r.x))),
                    Term(n**3 * EIGVALSH_S_PER_N3, "x", f"eigenvalues of {n} x {n}", POINTS)]
    return Cost(output, memory, compute)


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, circle_spectrum, gram_spectrum

    arch, kernel = Architecture.from_dict(params["architecture"]), params["kernel"]
    arrays = circle_spectrum(arch, params["n_grid"], kernel=kernel, normalize=params["normalize"])
    meta: dict[str, Any] = {}
    if "x" in inputs:
        gram = gram_spectrum(inputs["x"], arch=arch, kernel=kernel)
        arrays["eigenvalues"] = gram["eigenvalues"]
        meta["condition"] = gram["condition"] if np.isfinite(gram["condition"]) else None
    return meta, arrays
