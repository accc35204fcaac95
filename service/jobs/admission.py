"""Admission control: requests beyond the configured `Limits`, or whose estimated cost (each
operation's `cost`, `service.operations`) is over a budget, are refused before any work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from service.errors import LimitExceeded
from service.operations import experiment
from service.operations.cost import POINT_ARRAYS, Cost, quadrature_activations
from service.operations.fields import ConvArchitectureSpec, Model
from service.operations.registry import estimate
from service.operations.tiles import Tiling
from service.settings import Limits


def _rows(request: Model, name: str) -> int:
    value = getattr(request, name, None)
    return len(value) if value is not None else 0


def _length(value: Any) -> int:
    """Rows of a JSON array or a numpy array; 0 for anything else (validation says what is wrong)."""
    return len(value) if isinstance(value, (list, np.ndarray)) else 0


def check_sizes(get: Callable[[str], Any], limits: Limits) -> None:
    """413 naming the first size over its limit: points, dimension, architectures, sampled values.
    `get(name)` reads a field of the raw JSON body (counted before any number is read, by
    `service.http.bodies`) or of the validated request (the same checks, one place)."""
    points = sum(_length(get(name)) for name in POINT_ARRAYS)
    if points > limits.points:
        raise LimitExceeded(413, "points", f"{points} points in one request exceed the limit of {limits.points}")
    for name in ("x", "x_train", "points"):
        rows = get(name)
        if _length(rows) and _length(rows[0]) > limits.dimension:
            raise LimitExceeded(413, name, f"dimension {len(rows[0])} exceeds the limit of {limits.dimension}")
    for name, limit in (("samples", limits.grid), ("train_angles", limits.points), ("targets", limits.points),
                        ("architectures", limits.architectures)):
        if _length(get(name)) > limit:
            raise LimitExceeded(413, name, f"{_length(get(name))} {name} exceed the limit of {limit}")


def check_limits(request: Model, limits: Limits, cache_bytes: int, edge: int = Tiling.edge) -> Cost:
    """Raise LimitExceeded (413 for sizes, 422 for parameters) naming the first limit crossed:
    the request's sizes, then its estimated cost (`service.operations`) against the budgets and the
    result cache (`cache_bytes`: a larger result would be evicted as it is served). The cost is that of
    what the worker runs under the memory budget (an exact regression beyond it: out of core, in blocks
    of `edge`, RESKERNEL_TILE_EDGE). Returns the cost."""
    check_sizes(lambda name: getattr(request, name, None), limits)
    points = sum(_rows(request, name) for name in POINT_ARRAYS)
    archs = getattr(request, "architectures", None) or [getattr(request, "architecture", None)]
    width = getattr(request, "width", None) if hasattr(request, "n_init") else None  # finite networks only
    for i, arch in enumerate(a for a in archs if a is not None):
        where = "architecture" if hasattr(request, "architecture") else f"architectures.{i}"
        _at_most(f"{where}.depth", "depth", arch.depth, limits.depth)
        if width is not None:
            _at_most("width", "width x depth", width * arch.depth, limits.width_depth)
    checks = (("n_init", limits.n_init), ("steps", limits.steps), ("n_grid", limits.grid), ("n_train", limits.points))
    for name, limit in checks:
        value = getattr(request, name, None)
        if value is not None:
            _at_most(name, name, value if isinstance(value, int) else len(value), limit)
    # finite networks take no analytic kernel, except a dense net's lr "auto" (a conv net's is an empirical NTK)
    dense_bound = getattr(request, "lr", None) == "auto"
    analytic = [a for a in archs if a is not None
                and (width is None or (dense_bound and not isinstance(a, ConvArchitectureSpec)))]
    slow = quadrature_activations(analytic, request)
    if slow and points > limits.quadrature_points:
        raise LimitExceeded(413, "points", f"{points} points exceed the limit of {limits.quadrature_points} for "
                            f"{', '.join(slow)} on these points, whose kernels then take the quadrature (about "
                            "14,000x slower than relu: images and signals, or points of different norms whose "
                            "variances outgrow Mehler's series; points of one norm have no such limit)")
    cost = estimate(request, limits.memory_bytes, edge)
    check_budgets(cost, limits, cache_bytes)
    return cost


def check_budgets(cost: Cost, limits: Limits, cache_bytes: int) -> None:
    """413 when the output or the peak memory is over its budget (or the output over the cache),
    422 when the compute time is; the message names the largest part of the cost and its field."""
    output = cost.total("output")
    for budget, name in ((limits.output_bytes, "the output budget of {} (RESKERNEL_MAX_OUTPUT_BYTES)"),
                         (cache_bytes, "the result cache of {} (RESKERNEL_CACHE_BYTES), which would evict it as "
                                       "it is served")):
        if output > budget:
            _refuse(413, cost, "output", f"the result would hold {size(output)}", name.format(size(budget)))
    memory = cost.total("memory")
    if memory > limits.memory_bytes:
        _refuse(413, cost, "memory", f"the worker would hold about {size(memory)} at its peak",
                f"the memory budget of {size(limits.memory_bytes)} (RESKERNEL_MAX_MEMORY_BYTES)")
    seconds = cost.total("compute")
    if seconds > limits.compute_seconds:
        _refuse(422, cost, "compute", f"the job would compute for about {duration(seconds)} on this machine",
                f"the compute budget of {duration(limits.compute_seconds)} (RESKERNEL_MAX_COMPUTE_SECONDS)")


def _refuse(status: int, cost: Cost, kind: str, what: str, budget: str) -> None:
    driver, parts = cost.driver(kind), len(getattr(cost, kind))
    largest = driver.formula + (f", the largest of {parts} parts" if parts > 1 else "")
    remedy = f"; {driver.remedy}" if driver.remedy else ""
    raise LimitExceeded(status, driver.field, f"{what} ({largest}), over {budget}{remedy}")


def _number(value: float) -> str:
    """3 significant digits, whole numbers from 100 up (no exponents)."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def size(n: float) -> str:
    """Bytes in binary units: '4 GiB', '194 GiB', '496 MiB', '1023 MiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{_number(n / scale)} {unit}"
    return f"{n:.0f} bytes"


def duration(seconds: float) -> str:
    """'1 hour', '33.2 hours', '12 min', '40 s', '1500 days'."""
    for unit, scale in (("day", 86400), ("hour", 3600), ("min", 60)):
        if seconds >= scale:
            value = _number(seconds / scale)
            return f"{value} {unit}" + ("s" if value != "1" and unit != "min" else "")
    return f"{_number(seconds)} s"


def check_experiment(name: str, parameters: dict[str, Any], limits: Limits, cache_bytes: int) -> Cost:
    """The same limits for an experiment's parameters (all filled in), then its estimated cost
    (the sum of the operations it runs, `service.operations.experiment`) against the budgets.
    Returns the cost."""
    depths = [v for key in ("depth", "depths", "train_depth", "condition_depths") if key in parameters
              for v in (parameters[key] if isinstance(parameters[key], list) else [parameters[key]])]
    depth = max(depths, default=0)
    _at_most("parameters.depths", "depth", depth, limits.depth)
    if "width" in parameters:
        _at_most("parameters.width", "width x depth", parameters["width"] * max(depth, 1), limits.width_depth)
    for key, limit in (("n_init", limits.n_init), ("steps", limits.steps), ("n_grid", limits.grid),
                       ("n_angles", limits.grid)):
        if key in parameters:
            _at_most(f"parameters.{key}", key, parameters[key], limit)
    cost = experiment.cost(name, parameters)
    check_budgets(cost, limits, cache_bytes)
    return cost


def _at_most(field: str, what: str, value: int, limit: int) -> None:
    """422 naming `field` when value > limit."""
    if value > limit:
        raise LimitExceeded(422, field, f"{what} = {value} exceeds the limit of {limit}")
