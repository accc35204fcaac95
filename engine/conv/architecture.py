"""Convolutional ResNets and CNNs as one frozen, hashable spec, and the checks of their inputs and
finite networks (plain Python: no JAX, so the service validates requests with them).

Layer by layer, as neural-tangents' stax builds them (NTK parametrisation, circular
padding, stride 1, `q` the filter's window, channels last):

    conv-resnet: stem Conv(q, W_std=1) without bias; L blocks
                 x <- x + Conv(q, W_std=alpha sigma_v)(phi(Conv(q, W_std=sigma_w, b_std=sigma_b)(x)));
                 readout GlobalAvgPool ("pool") or Flatten ("flatten"), then Dense(1, W_std=sigma_w,
                 b_std=sigma_b)
    cnn:         L times [Conv(q, W_std=sigma_w, b_std=sigma_b), phi]; the same readout

A Conv's weights are N(0, W_std^2 / (|window| C_in)) in effect (fan-in: window x channels).
The dict form (`to_dict` / `from_dict`) is the JSON contract of the service.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from engine.architectures import check_layers

CONV_KINDS = ("conv-resnet", "cnn")
READOUTS = ("pool", "flatten")
MAX_FILTER = 64  # per spatial axis
MAX_PARAMETERS = 2**31  # |window| x width^2 x depth beyond this is refused (tens of GB of float64)
PARAMETRIZATIONS = ("ntk",)  # of the finite conv nets (engine.conv.networks)


class ConvFamily(NamedTuple):
    """What compiled code is specialised on (besides the input's shape): the numbers of a
    ConvArchitecture (sigma_w, sigma_v, alpha, sigma_b, depth) enter it as values."""

    kind: str
    activation: str
    filter_size: tuple[int, ...]
    readout: str


@dataclass(frozen=True)
class ConvArchitecture:
    """An infinitely wide (or finite, with channels as the width) convolutional ResNet or CNN.

    kind: "conv-resnet" | "cnn"; depth: residual blocks L, or conv layers of the CNN (>= 1);
    activation: one of ACTIVATIONS; sigma_w, sigma_v > 0; alpha >= 0 (ignored by the CNN);
    sigma_b >= 0 (0 = no biases); filter_size: (q,) for signals or (q1, q2) for images, each
    in [1, MAX_FILTER]; readout: "pool" (global average pooling) or "flatten".
    """

    kind: str
    depth: int
    activation: str = "relu"
    sigma_w: float = 1.0
    sigma_v: float = 1.0
    alpha: float = 1.0
    sigma_b: float = 0.0
    filter_size: tuple[int, ...] = (3, 3)
    readout: str = "pool"

    def __post_init__(self) -> None:
        if self.kind not in CONV_KINDS:
            raise ValueError(f"kind must be one of {CONV_KINDS}, got {self.kind!r}")
        check_layers(self)
        size = self.filter_size
        if isinstance(size, (list, tuple)) and 1 <= len(size) <= 2 and all(
                isinstance(q, int) and not isinstance(q, bool) and 1 <= q <= MAX_FILTER for q in size):
            object.__setattr__(self, "filter_size", tuple(size))
        else:
            raise ValueError(f"filter_size must be [q] (signals) or [q1, q2] (images), each an integer in "
                             f"[1, {MAX_FILTER}], got {size!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ConvArchitecture:
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
        spec = asdict(self)
        spec["filter_size"] = list(self.filter_size)
        return spec

    def replace(self, **changes: Any) -> ConvArchitecture:
        return ConvArchitecture(**{**asdict(self), **changes})

    @property
    def family(self) -> ConvFamily:
        """The static part (see `ConvFamily`)."""
        return ConvFamily(self.kind, self.activation, self.filter_size, self.readout)

    @property
    def spatial_dims(self) -> int:
        """1 for signals (N, P, C), 2 for images (N, H, W, C)."""
        return len(self.filter_size)


def check_conv_points(x: ArrayLike, arch: ConvArchitecture, name: str = "x") -> np.ndarray:
    """x as a float64 array of shape (N, P, C) or (N, H, W, C) matching arch's filter_size,
    or ValueError naming `name` (wrong rank, empty axes, NaN/Inf, a filter larger than the
    input along an axis)."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    rank = arch.spatial_dims + 2
    layout = "(N, P, C)" if arch.spatial_dims == 1 else "(N, H, W, C)"
    if x.ndim != rank or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty {rank}-D array {layout} for filter_size "
                         f"{list(arch.filter_size)}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf")
    for axis, q in enumerate(arch.filter_size, start=1):
        if q > x.shape[axis]:
            raise ValueError(f"filter_size {list(arch.filter_size)} is larger than {name}'s spatial shape "
                             f"{x.shape[1:-1]}")
    return x


def check_network(arch: ConvArchitecture, width: int, input_shape: tuple[int, ...], parametrization: str) -> None:
    """ValueError naming the argument unless a network of `width` channels fits inputs of one
    input's shape (*spatial, C)."""
    if not isinstance(arch, ConvArchitecture):
        raise ValueError(f"arch must be a ConvArchitecture, got {type(arch).__name__}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an integer >= 1 (channels), got {width!r}")
    if len(input_shape) != arch.spatial_dims + 1 or min(input_shape, default=0) < 1:
        raise ValueError(f"input shape must be (*spatial, C) with {arch.spatial_dims} spatial axes for filter_size "
                         f"{list(arch.filter_size)}, got {input_shape}")
    weights = math.prod(arch.filter_size) * width * width * 2 * arch.depth
    if weights > MAX_PARAMETERS:
        raise ValueError(f"|window| x width^2 x 2 depth = {weights:.3g} exceeds {MAX_PARAMETERS:.3g} weights; "
                         "reduce width or depth")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS} for conv networks, got "
                         f"{parametrization!r}")
