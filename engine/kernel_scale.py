"""How the kernels' scale evolves with depth, in plain numpy (no JAX: the service's API
process uses it to refuse an architecture whose kernel would leave float64's range).

The diagonal recursions of shared/docs/kernels.md section 2 at one input with
q = x.x/d = 1: T(S) = E[phi(u)^2] and Tdot(S) = E[phi'(u)^2] for u ~ N(0, S), in closed
form for relu, erf and linear, by Gauss-Hermite quadrature for the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy.special import erf, expit

LARGEST = 1e300  # kernel values beyond this (or below 1 / LARGEST) are refused
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(96)
_WEIGHTS = _WEIGHTS / math.sqrt(2 * math.pi)

Elementwise = Callable[[np.ndarray], np.ndarray]
_PHI: dict[str, tuple[Elementwise, Elementwise]] = {  # name -> (phi, phi') in numpy, for the quadrature activations
    "tanh": (np.tanh, lambda u: 1 - np.tanh(u) ** 2),
    "gelu": (lambda u: 0.5 * u * (1 + erf(u / math.sqrt(2))),
             lambda u: 0.5 * (1 + erf(u / math.sqrt(2))) + u * np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)),
    "softplus": (lambda u: np.logaddexp(u, 0.0), expit),
    "sigmoid": (expit, lambda u: expit(u) * (1 - expit(u))),
}


def diagonal_moments(activation: str, s: float) -> tuple[float, float]:
    """(T(S), Tdot(S)) on the diagonal, S = s: E[phi(u)^2] and E[phi'(u)^2] for u ~ N(0, s)."""
    return _moments(activation, s)


def _moments(activation: str, s: float) -> tuple[float, float]:
    """(T(S), Tdot(S)) on the diagonal, S = s."""
    if activation == "relu":
        return s / 2, 0.5
    if activation == "linear":
        return s, 1.0
    if activation == "erf":
        return 2 / math.pi * math.asin(2 * s / (1 + 2 * s)), 4 / math.pi / math.sqrt(1 + 4 * s)
    phi, dphi = _PHI[activation]
    u = math.sqrt(s) * _NODES
    return float(_WEIGHTS @ phi(u) ** 2), float(_WEIGHTS @ dphi(u) ** 2)


@lru_cache(maxsize=1024)
def out_of_range_depth(kind: str, depth: int, activation: str, sigma_w: float, sigma_v: float, alpha: float,
                       sigma_b: float, q: float = 1.0) -> tuple[int, float] | None:
    """(first layer, the value) at which the NNGP or NTK of an input with x.x/d = q (default: a
    unit input) leaves [1 / LARGEST, LARGEST] (the NTK overflows first, the NNGP underflows first),
    or None when both stay inside for all `depth` layers."""
    sw2, sb2, c = sigma_w**2, sigma_b**2, (alpha * sigma_v) ** 2
    if kind == "resnet":
        k = th = q
        for layer in range(1, depth + 1):
            s = sw2 * k + sb2
            t, tdot = _moments(activation, s)
            th, k = th + c * (t + tdot * (s + sw2 * th)), k + c * t
            ntk, nngp = sw2 * (k + th) + sb2, sw2 * k + sb2
            if not (nngp >= 1 / LARGEST and ntk <= LARGEST):
                return layer, ntk if ntk > LARGEST else nngp
        return None
    s = sw2 * q + sb2
    th = s
    for layer in range(1, depth + 1):
        t, tdot = _moments(activation, s)
        s, th = sw2 * t + sb2, sw2 * t + sb2 + sw2 * tdot * th
        if not (s >= 1 / LARGEST and th <= LARGEST):
            return layer, th if th > LARGEST else s
    return None
