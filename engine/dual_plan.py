"""Which path each layer's dual activation takes in `engine.analytic`, decided in plain numpy (no
JAX: the service's API process asks it before admitting a request, issue 19 item 3).

A closed form (relu, erf, linear, gelu) is "closed". On points of several norms, tanh, softplus and sigmoid
take Mehler's series (`engine.mehler`) to the degree `series_degree` finds for the largest variance, or the
quadrature when no degree is accurate. Another activation on points of one norm per
side is a Chebyshev interpolant in the correlation (`engine.chebyshev`): degree 32 when that is
accurate, else degree 128 (about 4x the work per entry), else the layer falls back to the
quadrature entry by entry (hundreds of times slower). Whether a degree is accurate depends only on
the activation and the layer's two variances S11, S22: the interpolated T(rho) steepens near
rho = +-1 as they grow. `CHEBYSHEV_LIMITS` holds, per activation and degree, the largest S with
S11 = S22 = S at which the engine's accuracy test passes (found by bisection on the engine's own
test; `tests/engine/test_dual_plan.py` checks each limit against it, either side, and that every
pair with max(S11, S22) under the limit passes); a layer is planned at the first degree whose
limit is at least max(S11, S22), else "quadrature". The variances S entering each layer follow
the diagonal recursion (`engine.kernel_scale`'s moments), for a point with x.x/d = q.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np

from engine.architectures import Architecture
from engine.hermite import degree_needed
from engine.kernel_scale import diagonal_moments
from engine.norms import one_norm

CLOSED = ("relu", "erf", "linear", "gelu")  # engine.dual.CLOSED_FORMS (a test checks they agree)
DEGREES = (32, 128)  # engine.chebyshev.DEGREES (a test checks they agree)
# activation -> the largest S (= S11 = S22) at which the degree-32 and the degree-128 interpolants
# are accurate (engine.chebyshev.TOLERANCE), a little under the bisection's bound
# (bisection bounds, 2026-12-04: tanh 0.758 / 15.19, softplus 4.77 / 122.2, sigmoid 3.03 / 60.8)
CHEBYSHEV_LIMITS: dict[str, tuple[float, float]] = {
    "tanh": (0.72, 14.5),
    "softplus": (4.5, 115.0),
    "sigmoid": (2.9, 57.0),
}


def layer_variances(arch: Architecture, q: float) -> list[float]:
    """The variance S that each layer's dual sees for a point with x.x/d = q (depth values)."""
    sw2, sb2, c = arch.sigma_w**2, arch.sigma_b**2, (arch.alpha * arch.sigma_v) ** 2
    out = []
    if arch.kind == "resnet":
        k = q
        for _ in range(arch.depth):
            s = sw2 * k + sb2
            out.append(s)
            k = k + c * diagonal_moments(arch.activation, s)[0]
        return out
    s = sw2 * q + sb2
    for _ in range(arch.depth):
        out.append(s)
        s = sw2 * diagonal_moments(arch.activation, s)[0] + sb2
    return out


def method(activation: str, q1: list[float], q2: list[float]) -> str:
    """`engine.analytic.method_for` without JAX: "closed", "chebyshev" or "series"."""
    if activation in CLOSED:
        return "closed"
    return "chebyshev" if one_norm(q1) and one_norm(q2) else "series"


SERIES_MARGIN = 1.02  # the variances are raised by 2% before the series' test (the engine's own arithmetic
                      # differs from `layer_variances` by rounding)


@lru_cache(maxsize=4096)
def series_degree(arch: Architecture, q_max: float) -> int | None:
    """The degree of the Mehler series (`engine.mehler`) that every layer of `arch` takes on points of several
    norms whose largest x.x/d is q_max, or None: the variances outgrow the series (`engine.hermite.DEGREES`),
    and the layers take the quadrature. The variances grow with q at every layer and the series' tail with the
    variance, so the largest variance of the largest q decides."""
    return degree_needed(arch.activation, np.array([SERIES_MARGIN * max(layer_variances(arch, q_max))]))


@lru_cache(maxsize=4096)
def _layers(arch: Architecture, q1: float, q2: float) -> tuple[str, ...]:
    limits = CHEBYSHEV_LIMITS[arch.activation]
    plan = []
    for s11, s22 in zip(layer_variances(arch, q1), layer_variances(arch, q2), strict=True):
        largest = max(s11, s22)
        degree = next((d for d, limit in zip(DEGREES, limits, strict=True) if largest <= limit), None)
        plan.append(f"chebyshev {degree}" if degree is not None else "quadrature")
    return tuple(plan)


def layer_methods(arch: Architecture, q1: float | None, q2: float | None,
                  q_max: float | None = None) -> Counter[str]:
    """How many layers take each path for two point sets of x.x/d = q1 and q2 (None: of several
    norms, the largest x.x/d over both sets being q_max): {"closed": L}, {"series K": L} or {"quadrature": L}
    (several norms; unknown q_max: "quadrature"), or a mix of "chebyshev 32", "chebyshev 128" and
    "quadrature" (the Chebyshev path's fallback, per layer)."""
    if arch.activation in CLOSED:
        return Counter({"closed": arch.depth})
    if q1 is None or q2 is None:
        degree = None if q_max is None else series_degree(arch, float(q_max))
        return Counter({"quadrature" if degree is None else f"series {degree}": arch.depth})
    return Counter(_layers(arch, float(q1), float(q2)))
