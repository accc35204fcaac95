"""POST /v1/spectrum: the kernel's profile on the circle, its spectrum, its Funk-Hecke eigenvalues on the
sphere S^(d-1) with their decay, a Gram's eigenvalues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from engine.sphere import check_rule, nodes_for
from service.operations.cost import (
    CIRCLE_Q,
    EIGVALSH_S_PER_N3,
    ELEMENTWISE_S,
    POINTS,
    Cost,
    Term,
    count_rows,
    floats,
    input_numbers,
    kernel_seconds,
    kernel_tiles,
    largest_q,
    norm_q,
    profile_seconds,
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

SPHERE_DIM, K_MAX = 2, 64  # the defaults
MAX_SPHERE_DIM, MAX_K_MAX = 64, 1024


class SpectrumRequest(Model):
    """Kernel profile on the circle, its Fourier spectrum, and optionally a Gram spectrum."""

    architecture: ArchitectureSpec
    kernel: Kernel = "ntk"
    n_grid: int = Field(1024, ge=8, multiple_of=2, description="Uniform grid on the circle (even).")
    normalize: bool = Field(True, description="Divide the profile by its peak (unit peak, as in Fig. 2).")
    x: Points | None = Field(None, description="Points whose Gram eigenvalues and condition number to return."
                             + POINT_SCALE)
    sphere_dim: int = Field(SPHERE_DIM, ge=2, le=MAX_SPHERE_DIM, description=(
        "d: the Funk-Hecke eigenvalues (`coefficients`) are those of the kernel on the unit sphere S^(d-1) of R^d "
        "(2: the circle)."))
    k_max: int = Field(K_MAX, ge=4, le=MAX_K_MAX, description="The highest degree of `coefficients`.")

    @model_validator(mode="after")
    def _scale(self) -> SpectrumRequest:
        check_scale(self.architecture, ("x", self.x))
        return self


class DecayExponent(BaseModel):
    value: float | None = Field(description="Least-squares slope of log lambda_k against log k (null: fewer than "
                                "3 nonzero degrees in the range).")
    standard_error: float | None = Field(description="Its standard error.")
    k_min: int = Field(description="The fitted degrees k_min..k_max (exact zeros skipped).")
    k_max: int
    points: int = Field(description="Degrees fitted.")
    asymptotic: float | None = Field(description="The ReLU law: -d for the NTK, -(d + 2) for the NNGP; null for "
                                     "the other activations.")


class SpectrumResult(BaseModel):
    angles: list[float]
    profile: list[float]
    frequencies: list[float]
    magnitudes: list[float]
    eigenvalues: list[float] | None = None
    condition: float | None = Field(None, description="lambda_max / lambda_min; null when lambda_min <= 0.")
    coefficients: list[float] = Field(description="Funk-Hecke eigenvalues lambda_0..lambda_k_max on S^(d-1) "
                                      "(unnormalised), one per degree k.")
    multiplicities: list[float] = Field(description="N(d, k): the number of degree-k spherical harmonics.")
    decay_exponent: DecayExponent
    sphere_dim: int
    nodes: int = Field(description="Gauss-Legendre nodes in the angle of the coefficients' quadrature.")


def cost(r: SpectrumRequest) -> Cost:
    g, n, arch = r.n_grid, count_rows(r.x), r.architecture
    sphere_output, sphere_memory, sphere_compute = _sphere_cost(r)
    output = [floats(2 * g + 2 * (g // 2 + 1), "n_grid", f"profile and spectrum of n_grid {g}", "lower n_grid")]
    memory = [worker_base(), kernel_tiles([arch]), floats(8 * g, "n_grid", f"8 arrays of n_grid {g}", "lower n_grid")]
    compute = [profile_seconds(g // 2 + 1, arch, "n_grid", "profile: ", CIRCLE_Q)]
    if r.x is not None:
        output.append(floats(n, "x", f"{n} eigenvalues"))
        memory += [input_numbers(n * len(r.x[0])), floats(4 * n * n, "x", f"4 copies of the {n} x {n} Gram matrix")]
        compute += [kernel_seconds(n, None, arch, "x", "Gram: ", (norm_q(r.x), norm_q(r.x)), largest_q(r.x)),
                    Term(n**3 * EIGVALSH_S_PER_N3, "x", f"eigenvalues of {n} x {n}", POINTS)]
    output, memory, compute = output + sphere_output, memory + sphere_memory, compute + sphere_compute
    return Cost(output, memory, compute)


def _sphere_cost(r: SpectrumRequest) -> tuple[list[Term], list[Term], list[Term]]:
    """The coefficients, by two rules (engine.sphere: the second's for the error estimate): the kernel
    at both rules' nodes (points of R^d) in one call, P_{k,d} at each rule's nodes, the sums."""
    k, d = r.k_max, r.sphere_dim
    nodes = nodes_for(k, d)
    both = nodes + check_rule(nodes)
    output = [floats(2 * (k + 1), "k_max", f"coefficients and multiplicities of k_max {k}", "lower k_max")]
    memory = [floats((k + 1) * check_rule(nodes) + (d + 8) * both, "k_max",
                     f"P_k at {check_rule(nodes)} nodes for k <= {k}, {both} points of R^{d}", "lower k_max")]
    compute = [profile_seconds(both, r.architecture, "k_max", "sphere: ", 1.0 / d),
               Term(4 * (k + 1) * both * ELEMENTWISE_S, "k_max", f"recurrence 4 x {k + 1} degrees x {both} nodes",
                    "lower k_max")]
    return output, memory, compute


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, circle_spectrum, gram_spectrum, sphere_spectrum

    arch, kernel = Architecture.from_dict(params["architecture"]), params["kernel"]
    arrays = circle_spectrum(arch, params["n_grid"], kernel=kernel, normalize=params["normalize"],
                             progress=lambda done, depth: report(0.9 * done / depth, f"profile: layer {done}/{depth}"))
    d, k_max = params.get("sphere_dim", SPHERE_DIM), params.get("k_max", K_MAX)  # absent at their defaults
    sphere = sphere_spectrum(arch, d, k_max, kernel=kernel)
    arrays["coefficients"], arrays["multiplicities"] = sphere["coefficients"], sphere["multiplicities"]
    decay = {**sphere["decay_exponent"], "asymptotic": sphere["asymptotic_exponent"]}
    meta: dict[str, Any] = {"decay_exponent": decay, "sphere_dim": d, "nodes": sphere["nodes"]}
    if "x" in inputs:
        gram = gram_spectrum(inputs["x"], arch=arch, kernel=kernel)
        arrays["eigenvalues"] = gram["eigenvalues"]
        meta["condition"] = gram["condition"] if np.isfinite(gram["condition"]) else None
    return meta, arrays
