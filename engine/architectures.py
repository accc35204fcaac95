"""The network families of the paper as one frozen, hashable spec.

ResNet (Tirer, Bruna & Giryes, eq. 6) and MLP (eq. 1), NTK parametrisation:

    resnet: x0 = U x / sqrt(d);  x_l = x_{l-1} + alpha sigma_v / sqrt(n) V_l phi(g_l),
            g_l = sigma_w / sqrt(n) W_l x_{l-1} + sigma_b b_l;  f = sigma_w / sqrt(n) w.x_L + sigma_b b
    mlp:    g_1 = sigma_w / sqrt(d) W_1 x + sigma_b b_1;  g_l = sigma_w / sqrt(n) W_l phi(g_{l-1}) + ...
            f = sigma_w / sqrt(n) w.phi(g_L) + sigma_b b

The dict form (`to_dict` / `from_dict`) is the JSON contract of the service.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

KINDS = ("resnet", "mlp")
MAX_DEPTH = 10_000  # the service's configurable limit (RESKERNEL_MAX_DEPTH) is lower
MAX_SCALE = 100.0  # sigma_w, sigma_v, alpha, sigma_b
ACTIVATIONS = ("relu", "erf", "linear", "tanh", "gelu", "softplus", "sigmoid")
CLOSED_FORM_ACTIVATIONS = ("relu", "erf", "linear", "gelu")
QUADRATURE_ACTIVATIONS = ("tanh", "softplus", "sigmoid")
NUMBERS = ("sigma_w", "sigma_v", "alpha", "sigma_b", "depth")


class Family(NamedTuple):
    """What compiled code is specialised on: the kind and the activation. The rest of an
    Architecture (`NUMBERS`) enters compiled code as values, so a new alpha or depth reuses it."""

    kind: str
    activation: str


@dataclass(frozen=True)
class Architecture:
    """An infinitely wide (or finite, with a width) ResNet or MLP.

    kind: "resnet" | "mlp"; depth: residual blocks L, or hidden layers of the MLP (>= 1);
    activation: one of ACTIVATIONS; sigma_w, sigma_v > 0: weight scales; alpha >= 0:
    residual-branch scale (ignored by the MLP); sigma_b >= 0: bias scale (0 = no biases).
    Bounds: depth <= MAX_DEPTH, every scale <= MAX_SCALE, and the kernels of a unit input
    (x.x/d = 1) within [1e-300, 1e300] at every layer (ValueError naming the layer).
    """

    kind: str
    depth: int
    activation: str = "relu"
    sigma_w: float = 1.0
    sigma_v: float = 1.0
    alpha: float = 1.0
    sigma_b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        check_layers(self)
        from engine.kernel_scale import out_of_range_depth

        crossed = out_of_range_depth(self.kind, self.depth, self.activation, self.sigma_w, self.sigma_v,
                                     self.alpha, self.sigma_b)
        if crossed is not None:
            layer, value = crossed
            where = "overflow" if value > 1 else "underflow"
            raise ValueError(
                f"depth {self.depth} is too deep for this architecture: its kernel would {where} float64 at layer "
                f"{layer} (kernel of a unit input {value:.3g}); use depth <= {layer - 1} or "
                f"{'smaller sigma_w, sigma_v or alpha' if value > 1 else 'a larger sigma_w or sigma_b'}")

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Architecture:
        """Build from the JSON form; unknown keys raise ValueError naming them."""
        if not isinstance(spec, dict):
            raise ValueError(f"architecture must be a dict, got {type(spec).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"unknown architecture keys {unknown}; expected a subset of {sorted(known)}")
        missing = [k for k in ("kind", "depth") if k not in spec]
        if missing:
            raise ValueError(f"architecture is missing required keys {missing}")
        return cls(**spec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> Architecture:
        return Architecture(**{**self.to_dict(), **changes})

    @property
    def family(self) -> Family:
        """The static part (see `Family`)."""
        return Family(self.kind, self.activation)

    def structure(self) -> Architecture:
        """This architecture with its weight scales set to 1 (sigma_b to 1 where there are
        biases): all a finite network's compiled code depends on besides shapes, when the scales
        enter it as values (see `engine.networks.forward`)."""
        return self.replace(sigma_w=1.0, sigma_v=1.0, alpha=1.0, sigma_b=1.0 if self.sigma_b > 0 else 0.0)

    def numbers(self) -> dict[str, float | int]:
        """The numeric part: {name: value} for each of `NUMBERS`."""
        return {name: getattr(self, name) for name in NUMBERS}


def check_architecture(arch: Any) -> Architecture:
    """arch itself, or ValueError when it is not an Architecture (use from_dict for dicts)."""
    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be an Architecture (see Architecture.from_dict), got {type(arch).__name__}")
    return arch


def check_layers(spec: Any) -> None:
    """Check the fields a dense and a convolutional spec share (depth, activation, the scales),
    raising ValueError naming the field; the scales are set to floats on the frozen `spec`."""
    if isinstance(spec.depth, bool) or not isinstance(spec.depth, int) or not 1 <= spec.depth <= MAX_DEPTH:
        raise ValueError(f"depth must be an integer in [1, {MAX_DEPTH}], got {spec.depth!r}")
    if spec.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {spec.activation!r}")
    for name, positive in (("sigma_w", True), ("sigma_v", True), ("alpha", False), ("sigma_b", False)):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if value < 0 or (positive and value == 0) or value > MAX_SCALE:
            bound = "> 0" if positive else ">= 0"
            raise ValueError(f"{name} must be {bound} and <= {MAX_SCALE:g}, got {value!r}")
        object.__setattr__(spec, name, float(value))
