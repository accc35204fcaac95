"""POST /v1/kernels: analytic NNGP / NTK Gram matrices K(x, x2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.conv.architecture import CONV_KINDS, ConvArchitecture
from service.operations.cost import (
    POINTS,
    Cost,
    conv_kernel_seconds,
    conv_kernel_tiles,
    count_rows,
    floats,
    input_numbers,
    kernel_seconds,
    kernel_tiles,
    largest_q,
    norm_q,
    worker_base,
)
from service.operations.fields import (
    POINT_SCALE,
    AnyArchitecture,
    Arrays,
    ConvArchitectureSpec,
    Inputs,
    Kernels,
    Matrix,
    Model,
    Progress,
    check_inputs,
)
from service.operations.tiles import Tiling, cluster_workers, distributed_kernels
from service.store.files import open_memmaps

SMALL_RESULT_BYTES = 8 * 2**20  # kernels up to this size are computed in memory, larger ones into memmaps


CIRCLE: list[Any] = [[1.0, 0.0], [0.5, 0.8660254037844386], [-0.5, 0.8660254037844386], [-1.0, 0.0]]


class KernelsRequest(Model):
    """Analytic NNGP / NTK Gram matrices K(x, x2)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"x": CIRCLE, "architecture": {"kind": "resnet", "depth": 5, "alpha": 0.1}, "kernels": ["nngp", "ntk"]}]})
    x: Inputs = Field(description="Points (N1, d) for kinds resnet and mlp; signals (N1, P, C) or images "
                      "(N1, H, W, C), channels last, for conv-resnet and cnn (rank = len(filter_size) + 2)."
                      + POINT_SCALE)
    x2: Inputs | None = Field(None, description="Second set (N2, ...), shaped as x but for N; null means x "
                              "(symmetric)." + POINT_SCALE)
    architecture: AnyArchitecture
    kernels: Kernels = Field(["nngp", "ntk"])

    @model_validator(mode="after")
    def _dimensions(self) -> KernelsRequest:
        check_inputs(self.architecture, ("x", self.x), ("x2", self.x2))
        return self


class KernelsResult(BaseModel):
    nngp: Matrix | None = None
    ntk: Matrix | None = None
    shape: list[int]
    tiles: int | None = Field(None, description="A matrix filled across the workers: its tile tasks (their "
                              "regions, tile_shape, are the chunks of its Zarr arrays)")
    tile_shape: list[int] | None = None


def cost(r: KernelsRequest) -> Cost:
    if isinstance(r.architecture, ConvArchitectureSpec):
        return conv_cost(r)
    n1, n2, d, arch = len(r.x), count_rows(r.x2) or len(r.x), len(r.x[0]), r.architecture
    field = "x2" if r.x2 is not None and n2 > n1 else "x"
    output = [floats(len(r.kernels) * n1 * n2, field, f"{len(r.kernels)} kernel(s) x {n1} x {n2} points",
                     f"{POINTS} (x, x2) or ask for one kernel")]
    # the Gram matrices go to disk
    memory = [worker_base(), input_numbers((n1 + count_rows(r.x2)) * d), kernel_tiles([arch])]
    q1 = norm_q(r.x)
    compute = [kernel_seconds(n1, None if r.x2 is None else n2, arch, field,
                              q=(q1, q1 if r.x2 is None else norm_q(r.x2)), q_max=largest_q(r.x, r.x2))]
    return Cost(output, memory, compute)


def conv_cost(r: KernelsRequest) -> Cost:
    """Tiles of image pairs, each with its P^2 ("pool") or P ("flatten") pixel pairs, through depth layers."""
    arch = r.architecture
    assert isinstance(arch, ConvArchitectureSpec)
    n1, n2 = len(r.x), count_rows(r.x2) or len(r.x)
    field = "x2" if r.x2 is not None and n2 > n1 else "x"
    output = [floats(len(r.kernels) * n1 * n2, field, f"{len(r.kernels)} kernel(s) x {n1} x {n2} inputs",
                     f"{POINTS} (x, x2) or ask for one kernel")]
    memory = [worker_base(), input_numbers(int(np.size(r.x)) + (0 if r.x2 is None else int(np.size(r.x2)))),
              conv_kernel_tiles(arch)]
    compute = [conv_kernel_seconds(n1, None if r.x2 is None else n2, arch, tuple(np.shape(r.x)[1:-1]), field)]
    return Cost(output, memory, compute)


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, analytic_kernels

    if params["architecture"]["kind"] in CONV_KINDS:
        return _run_conv(params, inputs, folder, report)
    x, x2 = inputs["x"], inputs.get("x2")
    shape = (len(x), len(x if x2 is None else x2))
    tiling: Tiling | None = getattr(report, "tiling", None)  # a job's reporter carries the service's setting
    if tiling is not None and tiling.splits(shape, cluster_workers()):
        return distributed_kernels(params, inputs, folder, report, tiling.edge), {}
    small = 8 * shape[0] * shape[1] <= SMALL_RESULT_BYTES  # in memory, saved by _finish: no file to map
    out = ({name: np.empty(shape) for name in params["kernels"]} if small
           else open_memmaps(folder, params["kernels"], shape))
    analytic_kernels(x, x2, arch=Architecture.from_dict(params["architecture"]), kernels=params["kernels"], out=out,
                     progress=lambda done, total: report(done / total, f"{done}/{total} tiles"),
                     should_stop=report.should_stop)
    return {"shape": list(shape)}, out if small else {}


def _run_conv(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine.conv.analytic import conv_kernels

    x, x2 = inputs["x"], inputs.get("x2")
    shape = (len(x), len(x if x2 is None else x2))
    small = 8 * shape[0] * shape[1] <= SMALL_RESULT_BYTES
    out = ({name: np.empty(shape) for name in params["kernels"]} if small
           else open_memmaps(folder, params["kernels"], shape))
    conv_kernels(x, x2, arch=ConvArchitecture.from_dict(params["architecture"]), kernels=params["kernels"], out=out,
                 progress=lambda done, total: report(done / total, f"{done}/{total} tiles"),
                 should_stop=report.should_stop)
    return {"shape": list(shape)}, out if small else {}
