"""The paper's upper bounds on the input-Jacobian norm ||df/dx||_2 at initialisation
(eqs. 18, 20, 21), for a width-n network on d-dimensional inputs."""

from __future__ import annotations

import math
from typing import Any

from engine.architectures import Architecture

_LOG_MAX = math.log(1e300)


def jacobian_bounds(arch: Architecture, width: int, input_dim: int, c_phi: float = 1.0) -> dict[str, Any]:
    """B for `arch`, B for the MLP of the same depth, their ratio, and the alpha threshold.

    B_resnet = 2 sigma_w (1 + 2 sqrt(n/d)) (1 + 9 alpha c_phi sigma_v sigma_w)^L
    B_mlp    = 2 c_phi sigma_w^2 (1 + 2 sqrt(n/d)) (3 c_phi sigma_w)^(L-1)
    c_phi: the activation's Lipschitz-type constant (1 for ReLU). alpha_threshold is the
    largest alpha with B_resnet <= B_mlp (None when no alpha >= 0 achieves it).
    """
    for name, value in (("width", width), ("input_dim", input_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not math.isfinite(c_phi) or c_phi <= 0:
        raise ValueError(f"c_phi must be > 0, got {c_phi!r}")
    depth, sw, sv = arch.depth, arch.sigma_w, arch.sigma_v
    front = 1 + 2 * math.sqrt(width / input_dim)
    # in logs: the bounds grow geometrically with depth and leave float64 long before the kernels do
    per_layer = {"mlp": math.log(3 * c_phi * sw), "resnet": math.log1p(9 * arch.alpha * c_phi * sv * sw)}
    log_b = {"mlp": math.log(2 * c_phi * sw**2 * front) + (depth - 1) * per_layer["mlp"],
             "resnet": math.log(2 * sw * front) + depth * per_layer["resnet"]}
    for kind, log_value in log_b.items():
        if log_value > _LOG_MAX:
            first = log_b[kind] - (depth - 1 if kind == "mlp" else depth) * per_layer[kind]
            limit = math.floor((_LOG_MAX - first) / per_layer[kind]) + (kind == "mlp")
            raise ValueError(f"the bound B_{kind} = 10^{log_value / math.log(10):.1f} at depth {depth} overflows "
                             f"float64 (from depth {limit + 1} on); use depth <= {limit}")
    b_mlp, b_resnet = math.exp(log_b["mlp"]), math.exp(log_b["resnet"])
    root = math.exp((math.log(c_phi * sw) + (depth - 1) * per_layer["mlp"]) / depth)
    threshold = (root - 1) / (9 * c_phi * sv * sw) if root >= 1 else None
    b_arch = b_resnet if arch.kind == "resnet" else b_mlp
    return {"bound": b_arch, "bound_mlp": b_mlp, "bound_resnet": b_resnet,
            "ratio_to_mlp": b_arch / b_mlp, "alpha_threshold": threshold}
