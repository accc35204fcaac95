"""POST /v1/empirical-kernels: empirical NTK / NNGP of finite networks at initialisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from service.operations.cost import (
    INIT_SECONDS_PER_PARAMETER,
    SECONDS_PER_PARAMETER_STEP,
    Cost,
    Term,
    count_rows,
    floats,
    flops,
    input_numbers,
    ntk_pass,
    parameters,
    peak_phase,
    signal_layers,
    worker_base,
)
from service.operations.fields import (
    POINT_SCALE,
    Arrays,
    Kernels,
    Matrix,
    NetworkFields,
    Points,
    Progress,
    check_scale,
    same_dimension,
)
from service.store.files import open_memmaps


class EmpiricalKernelsRequest(NetworkFields):
    """Empirical NTK of each network and the ensemble's Monte Carlo NNGP, at initialisation."""

    x: Points = Field(description="Points (N1, d)." + POINT_SCALE)
    x2: Points | None = Field(None, description="Second point set (N2, d); null means x." + POINT_SCALE)
    kernels: Kernels = Field(["ntk"])
    jacobian_norms: bool = Field(False, description="Also ||df/dx|| at each x for each network.")

    @model_validator(mode="after")
    def _dimensions(self) -> EmpiricalKernelsRequest:
        same_dimension(("x", self.x), ("x2", self.x2))
        check_scale(self.architecture, ("x", self.x), ("x2", self.x2))
        return self


class EmpiricalKernelsResult(BaseModel):
    ntk: list[Matrix] | None = Field(None, description="(n_init, N1, N2): each network's NTK.")
    ntk_mean: Matrix | None = None
    nngp: Matrix | None = Field(None, description="(N1, N2): E[f(x) f(x2)] over the ensemble.")
    jacobian_norms: Matrix | None = Field(None, description="(n_init, N1).")
    shape: list[int]


def cost(r: EmpiricalKernelsRequest) -> Cost:
    arch, width, nets = r.architecture, r.width, r.n_init
    n1, n2, d = len(r.x), count_rows(r.x2) or len(r.x), len(r.x[0])
    p = parameters(arch, width, d)
    field = "x2" if r.x2 is not None and n2 > n1 else "x"
    ntk, nngp = "ntk" in r.kernels, "nngp" in r.kernels
    output = []
    if ntk:
        output += [floats(nets * n1 * n2, "n_init", f"n_init {nets} x {n1} x {n2} NTKs",
                          "lower n_init or the number of points"), floats(n1 * n2, field, f"ntk_mean {n1} x {n2}")]
    if nngp:
        output.append(floats(n1 * n2, field, f"nngp {n1} x {n2}"))
    if r.jacobian_norms:
        output.append(floats(nets * n1, "n_init", f"jacobian_norms n_init {nets} x {n1}"))
    ensemble = floats(nets * p, "width", f"n_init {nets} networks x {p} weights",
                      "lower the width, depth or n_init")
    pass_memory, pass_flops = ntk_pass(arch, width, p, n1, n2 if r.x2 is not None else 0, field)
    phases = [[ensemble], [*pass_memory, floats(2 * n1 * n2, field, f"ntk_mean and nngp {n1} x {n2}")],
              [floats(3 * nets * (n1 + n2) * width, "n_init", f"ensemble forward 3 x {nets} x {n1 + n2} x {width}")],
              [floats(6 * signal_layers(arch) * n1 * width, "x",
                      f"Jacobians 6 x {signal_layers(arch)} x {n1} x {width}")]]
    memory = [worker_base(), input_numbers((n1 + count_rows(r.x2)) * d), ensemble, *peak_phase(*phases)]
    remedy = "lower n_init, the width, the depth or the number of points"
    compute = [Term(nets * p * INIT_SECONDS_PER_PARAMETER, "width", f"drawing {nets} x {p} weights", remedy)]
    if ntk:
        compute.append(flops(nets * pass_flops, "n_init", f"n_init {nets} NTKs x {pass_flops:.3g} flops", remedy))
    passes = nets * ((2 * (n1 + n2) * p if nngp else 0) + (6 * n1 * p if r.jacobian_norms else 0))
    compute.append(flops(passes, "n_init", f"{passes:.3g} forward / backward flops", remedy))
    compute.append(Term(nets * 3 * p * SECONDS_PER_PARAMETER_STEP, "width", "weight traffic", remedy))
    return Cost(output, memory, compute)


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import (
        Architecture,
        Cancelled,
        empirical_nngp,
        empirical_ntk,
        ensemble_member,
        init_params,
        input_jacobian_norms,
    )

    arch, x, x2 = Architecture.from_dict(params["architecture"]), inputs["x"], inputs.get("x2")
    how = {"parametrization": params["parametrization"]}
    n_init, shape = params["n_init"], (len(x), len(x if x2 is None else x2))
    ensemble = init_params(arch, params["width"], x.shape[1], params["seed"], n_init=n_init, **how)
    arrays: Arrays = {}
    if "ntk" in params["kernels"]:
        ntk = open_memmaps(folder, ["ntk"], (n_init, *shape))["ntk"]
        for i in range(n_init):
            ntk[i] = empirical_ntk(arch, ensemble_member(ensemble, i), x, x2, **how)
            report((i + 1) / n_init, f"{i + 1}/{n_init} networks")
            if report.should_stop():
                raise Cancelled("empirical_kernels was cancelled")
        arrays["ntk_mean"] = ntk.mean(axis=0)
    if "nngp" in params["kernels"]:
        arrays["nngp"] = empirical_nngp(arch, ensemble, x, x2, **how)
    if params["jacobian_norms"]:
        arrays["jacobian_norms"] = np.stack([input_jacobian_norms(arch, ensemble_member(ensemble, i), x, **how)
                                             for i in range(n_init)])
    return {"shape": list(shape)}, arrays
