"""POST /v1/empirical-kernels: empirical NTK / NNGP of finite networks at initialisation."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from engine.conv.architecture import CONV_KINDS, ConvArchitecture
from service.operations.cost import (
    INIT_SECONDS_PER_PARAMETER,
    SECONDS_PER_PARAMETER_STEP,
    Cost,
    Term,
    count_rows,
    floats,
    flops,
    forward_flops,
    input_numbers,
    ntk_pass,
    parameters,
    peak_phase,
    positions,
    signal_layers,
    worker_base,
)
from service.operations.fields import (
    POINT_SCALE,
    Arrays,
    ConvArchitectureSpec,
    Inputs,
    Kernels,
    Matrix,
    NetworkFields,
    Progress,
    check_inputs,
)
from service.store.files import open_memmaps


class EmpiricalKernelsRequest(NetworkFields):
    """Empirical NTK of each network and the ensemble's Monte Carlo NNGP, at initialisation."""

    x: Inputs = Field(description="Points (N1, d) for kinds resnet and mlp; signals (N1, P, C) or images "
                      "(N1, H, W, C), channels last, for conv-resnet and cnn (rank = len(filter_size) + 2)."
                      + POINT_SCALE)
    x2: Inputs | None = Field(None, description="Second set (N2, ...), shaped as x but for N; null means x."
                              + POINT_SCALE)
    kernels: Kernels = Field(["ntk"])
    jacobian_norms: bool = Field(False, description="Also ||df/dx|| at each x for each network (dense kinds only).")

    @model_validator(mode="after")
    def _dimensions(self) -> EmpiricalKernelsRequest:
        check_inputs(self.architecture, ("x", self.x), ("x2", self.x2))
        self.check_conv_network("x", self.x, self.jacobian_norms)
        return self


class EmpiricalKernelsResult(BaseModel):
    ntk: list[Matrix] | None = Field(None, description="(n_init, N1, N2): each network's NTK.")
    ntk_mean: Matrix | None = None
    nngp: Matrix | None = Field(None, description="(N1, N2): E[f(x) f(x2)] over the ensemble.")
    jacobian_norms: Matrix | None = Field(None, description="(n_init, N1).")
    shape: list[int]


def cost(r: EmpiricalKernelsRequest) -> Cost:
    arch, width, nets = r.architecture, r.width, r.n_init
    shape = tuple(np.shape(r.x)[1:])  # one input's: (d,), or (*S, C) for a conv kind
    n1, n2, where = len(r.x), count_rows(r.x2) or len(r.x), positions(shape)
    p = parameters(arch, width, shape)
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
    pass_memory, pass_flops = ntk_pass(arch, width, p, n1, n2 if r.x2 is not None else 0, field,
                                       input_shape=shape)
    phases = [[ensemble], [*pass_memory, floats(2 * n1 * n2, field, f"ntk_mean and nngp {n1} x {n2}")]]
    if isinstance(arch, ConvArchitectureSpec):  # one network at a time, every layer's signals at every position
        layers = signal_layers(arch)
        phases.append([floats(3 * layers * (n1 + n2) * where * width, "x", f"ensemble forward 3 x {layers} layers x "
                              f"{n1 + n2} inputs x {where} positions x {width}")])
    else:
        phases += [[floats(3 * nets * (n1 + n2) * width, "n_init", f"ensemble forward 3 x {nets} x {n1 + n2} x "
                           f"{width}")],
                   [floats(6 * signal_layers(arch) * n1 * width, "x",
                           f"Jacobians 6 x {signal_layers(arch)} x {n1} x {width}")]]
    inputs = int(np.size(r.x)) + (0 if r.x2 is None else int(np.size(r.x2)))
    memory = [worker_base(), input_numbers(inputs), ensemble, *peak_phase(*phases)]
    remedy = "lower n_init, the width, the depth or the number of points"
    compute = [Term(nets * p * INIT_SECONDS_PER_PARAMETER, "width", f"drawing {nets} x {p} weights", remedy)]
    if ntk:
        compute.append(flops(nets * pass_flops, "n_init", f"n_init {nets} NTKs x {pass_flops:.3g} flops", remedy))
    passes = nets * (((n1 + n2) * forward_flops(arch, p, where) if nngp else 0)
                     + (6 * n1 * p if r.jacobian_norms else 0))
    compute.append(flops(passes, "n_init", f"{passes:.3g} forward / backward flops", remedy))
    compute.append(Term(nets * 3 * p * SECONDS_PER_PARAMETER_STEP, "width", "weight traffic", remedy))
    return Cost(output, memory, compute)


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Cancelled, ensemble_member

    if params["architecture"]["kind"] in CONV_KINDS:
        from engine.conv import empirical as conv
        from engine.conv.networks import init_params as conv_init

        arch = ConvArchitecture.from_dict(params["architecture"])
        x, x2 = inputs["x"], inputs.get("x2")
        ensemble = conv_init(arch, params["width"], x.shape[1:], params["seed"], n_init=params["n_init"])
        ntk, nngp = partial(conv.empirical_ntk, arch), partial(conv.empirical_nngp, arch)
        jacobian_norms = None  # refused at validation
    else:
        from engine import Architecture, empirical_nngp, empirical_ntk, init_params, input_jacobian_norms

        dense, x, x2 = Architecture.from_dict(params["architecture"]), inputs["x"], inputs.get("x2")
        how = params["parametrization"]
        ensemble = init_params(dense, params["width"], x.shape[1], params["seed"], n_init=params["n_init"],
                               parametrization=how)
        ntk, nngp = partial(empirical_ntk, dense, parametrization=how), partial(empirical_nngp, dense,
                                                                                parametrization=how)
        jacobian_norms = partial(input_jacobian_norms, dense, parametrization=how)
    n_init, shape = params["n_init"], (len(x), len(x if x2 is None else x2))
    arrays: Arrays = {}
    if "ntk" in params["kernels"]:
        out = open_memmaps(folder, ["ntk"], (n_init, *shape))["ntk"]
        for i in range(n_init):
            out[i] = ntk(ensemble_member(ensemble, i), x, x2)
            report((i + 1) / n_init, f"{i + 1}/{n_init} networks")
            if report.should_stop():
                raise Cancelled("empirical_kernels was cancelled")
        arrays["ntk_mean"] = out.mean(axis=0)
    if "nngp" in params["kernels"]:
        arrays["nngp"] = nngp(ensemble, x, x2)
    if params["jacobian_norms"] and jacobian_norms is not None:
        arrays["jacobian_norms"] = np.stack([jacobian_norms(ensemble_member(ensemble, i), x) for i in range(n_init)])
    return {"shape": list(shape)}, arrays
