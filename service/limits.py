"""Admission control: requests beyond the configured `Limits` are refused before any work."""

from __future__ import annotations

import numpy as np

from engine.architectures import QUADRATURE_ACTIVATIONS
from engine.norms import one_norm
from service.errors import LimitExceeded
from service.schemas import Model
from service.settings import Limits


def _rows(request: Model, name: str) -> int:
    value = getattr(request, name, None)
    return len(value) if value is not None else 0


def _one_norm_each(request: Model) -> bool:
    """Whether each point set of the request lies on one sphere: then tanh, softplus and sigmoid
    are interpolated in the correlation and cost about what ReLU costs (the circle experiment's
    points are on the unit circle)."""
    for name in ("x", "x2", "x_train", "x_test"):
        rows = getattr(request, name, None)
        if rows is not None and not one_norm(np.einsum("ij,ij->i", np.asarray(rows), np.asarray(rows))):
            return False
    return True


def check_limits(request: Model, limits: Limits) -> None:
    """Raise LimitExceeded (413 for sizes, 422 for parameters) naming the first limit crossed."""
    points = sum(_rows(request, name) for name in ("x", "x2", "x_train", "x_test"))
    if points > limits.points:
        raise LimitExceeded(413, "points", f"{points} points in one request exceed the limit of {limits.points}")
    archs = getattr(request, "architectures", None) or [getattr(request, "architecture", None)]
    slow = sorted({a.activation for a in archs if a is not None and a.activation in QUADRATURE_ACTIVATIONS})
    if slow and points > limits.quadrature_points and not _one_norm_each(request):
        raise LimitExceeded(413, "points", f"{points} points exceed the limit of {limits.quadrature_points} for "
                            f"{', '.join(slow)} on points of different norms, whose kernels are then computed "
                            "by quadrature (about 1000x slower than relu; points of one norm have no such limit)")
    for name in ("x", "x_train"):
        rows = getattr(request, name, None)
        if rows is not None and len(rows[0]) > limits.dimension:
            raise LimitExceeded(413, name, f"dimension {len(rows[0])} exceeds the limit of {limits.dimension}")
    if len(archs) > limits.architectures:
        raise LimitExceeded(413, "architectures", f"{len(archs)} architectures exceed the limit of "
                            f"{limits.architectures}")
    width = getattr(request, "width", None) if hasattr(request, "n_init") else None  # finite networks only
    for i, arch in enumerate(a for a in archs if a is not None):
        where = "architecture" if hasattr(request, "architecture") else f"architectures.{i}"
        _at_most(f"{where}.depth", "depth", arch.depth, limits.depth)
        if width is not None:
            _at_most("width", "width x depth", width * arch.depth, limits.width_depth)
    checks = (("n_init", limits.n_init), ("steps", limits.steps), ("n_grid", limits.grid),
              ("samples", limits.grid), ("train_angles", limits.points), ("n_train", limits.points))
    for name, limit in checks:
        value = getattr(request, name, None)
        if value is not None:
            _at_most(name, name, len(value) if isinstance(value, list) else value, limit)


def check_experiment(parameters: dict, limits: Limits) -> None:
    """The same limits for an experiment's parameters (all filled in)."""
    depths = [v for key in ("depth", "depths", "train_depth", "condition_depths") if key in parameters
              for v in (parameters[key] if isinstance(parameters[key], list) else [parameters[key]])]
    depth = max(depths, default=0)
    _at_most("parameters.depths", "depth", depth, limits.depth)
    if "width" in parameters:
        _at_most("parameters.width", "width x depth", parameters["width"] * max(depth, 1), limits.width_depth)
    for name, limit in (("n_init", limits.n_init), ("steps", limits.steps), ("n_grid", limits.grid),
                        ("n_angles", limits.grid)):
        if name in parameters:
            _at_most(f"parameters.{name}", name, parameters[name], limit)


def _at_most(field: str, what: str, value: int, limit: int) -> None:
    """422 naming `field` when value > limit."""
    if value > limit:
        raise LimitExceeded(422, field, f"{what} = {value} exceeds the limit of {limit}")
