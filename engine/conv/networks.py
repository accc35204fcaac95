"""Finite convolutional ResNets and CNNs (the networks of `engine.conv.architecture`), in JAX.

`width` is the number of channels of every hidden layer. NTK parametrisation, as
neural-tangents' stax: every weight is N(0, 1) and enters as `scale * M`, with
scale = W_std / sqrt(|window| C_in) for a Conv, W_std / sqrt(fan_in) for the readout Dense,
b_std for a bias. Circular padding ("SAME" split: (q - 1) // 2 before, the rest after) and
stride 1; the convolution is a cross-correlation, as `lax.conv_general_dilated`.

Parameters are a dict of arrays, the conv layers stacked on a leading axis, filters as
(*filter_size, C_in, C_out) (neural-tangents' "HWIO"):

    conv-resnet: "U" (*q, C, n) the stem; "W", "V" (L, *q, n, n); "b" (L, n) when sigma_b > 0
    cnn:         "W1" (*q, C, n); "W" (L - 1, *q, n, n); "b" (L, n) when sigma_b > 0
    both:        "w" (F,) the readout, F = n ("pool") or prod(spatial) n ("flatten", in the row-major
                 order of (*spatial, n)); "b_out" () when sigma_b > 0

`init_params(..., n_init=k)` draws k networks at once (a leading axis k on every array).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from engine.conv.architecture import ConvArchitecture, check_network
from engine.dual import ACTIVATION_FUNCTIONS

Params = dict[str, Array | np.ndarray]
Scales = Mapping[str, float | Array]


class ConvFamily(NamedTuple):
    """What compiled code is specialised on besides shapes (the scales enter as values; depth,
    width and the biases' presence follow from the parameters' shapes)."""

    kind: str
    activation: str
    filter_size: tuple[int, ...]
    readout: str


def family(arch: ConvArchitecture) -> ConvFamily:
    return ConvFamily(arch.kind, arch.activation, arch.filter_size, arch.readout)


def _layer_specs(arch: ConvArchitecture, width: int, input_shape: tuple[int, ...]
                 ) -> dict[str, tuple[tuple[int, ...], float]]:
    """name -> (shape, scale) of each array. input_shape: one input's (*spatial, C)."""
    q, n, depth, channels = arch.filter_size, width, arch.depth, input_shape[-1]
    window = math.prod(q)
    readout = n if arch.readout == "pool" else n * math.prod(input_shape[:-1])
    sw, sv = arch.sigma_w, arch.sigma_v
    if arch.kind == "conv-resnet":
        specs = {"U": ((*q, channels, n), 1.0 / math.sqrt(window * channels)),
                 "W": ((depth, *q, n, n), sw / math.sqrt(window * n)),
                 "V": ((depth, *q, n, n), arch.alpha * sv / math.sqrt(window * n))}
    else:
        specs = {"W1": ((*q, channels, n), sw / math.sqrt(window * channels)),
                 "W": ((depth - 1, *q, n, n), sw / math.sqrt(window * n))}
    specs["w"] = ((readout,), sw / math.sqrt(readout))
    if arch.sigma_b > 0:
        specs |= {"b": ((depth, n), arch.sigma_b), "b_out": ((), arch.sigma_b)}
    return specs


def scales(arch: ConvArchitecture, width: int, input_shape: tuple[int, ...]) -> dict[str, float]:
    """The multiplier of each parameter array in the forward pass (alpha of "V" included)."""
    return {name: scale for name, (_, scale) in _layer_specs(arch, width, input_shape).items()}


def check_params(arch: ConvArchitecture, params: Params, input_shape: tuple[int, ...], ensemble: bool = False
                 ) -> int:
    """The width of params, or ValueError unless they fit `arch` and inputs of one input's
    shape (*spatial, C) (with a leading ensemble axis when `ensemble`)."""
    lead = 1 if ensemble else 0
    if not isinstance(params, dict) or "W" not in params:
        raise ValueError("params must be a dict of arrays as made by engine.conv.networks.init_params")
    width = int(params["W"].shape[-1])
    check_network(arch, width, input_shape, "ntk")
    got = {name: tuple(a.shape[lead:]) for name, a in params.items()}
    expected = {name: spec[0] for name, spec in _layer_specs(arch, width, input_shape).items()}
    if got != expected:
        raise ValueError(f"params do not fit this architecture and input shape {input_shape}: expected shapes "
                         f"{expected}, got {got}")
    return width


def init_params(arch: ConvArchitecture, width: int, input_shape: tuple[int, ...], seed: int,
                parametrization: str = "ntk", n_init: int | None = None) -> Params:
    """Random parameters (every entry N(0, 1)), deterministic per seed. input_shape: one
    input's (*spatial, C). n_init: an ensemble of that many networks (network i drawn from
    `jax.random.split(PRNGKey(seed), n_init)[i]`); None: one network."""
    input_shape = tuple(input_shape)
    check_network(arch, width, input_shape, parametrization)
    if n_init is None:
        with jax.enable_x64(True):
            return _draw(arch, width, input_shape, jax.random.PRNGKey(seed))
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"n_init must be an integer >= 1, got {n_init!r}")
    return init_ensemble(arch, width, input_shape, jax.random.split(jax.random.PRNGKey(seed), n_init))


def init_ensemble(arch: ConvArchitecture, width: int, input_shape: tuple[int, ...], keys: Array) -> Params:
    """One network per key, stacked on a leading axis."""
    input_shape = tuple(input_shape)
    check_network(arch, width, input_shape, "ntk")
    with jax.enable_x64(True):
        return jax.vmap(partial(_draw, arch, width, input_shape))(keys)


def _draw(arch: ConvArchitecture, width: int, input_shape: tuple[int, ...], key: Array) -> Params:
    specs = _layer_specs(arch, width, input_shape)
    keys = jax.random.split(key, len(specs))
    return {name: jax.random.normal(k, shape, dtype=jnp.float64)
            for k, (name, (shape, _)) in zip(keys, specs.items(), strict=True)}


def circular_conv(h: Array, filters: Array | np.ndarray) -> Array:
    """Circular ("SAME"-split) stride-1 cross-correlation: h (N, *S, C_in), filters
    (*q, C_in, C_out) -> (N, *S, C_out), as neural-tangents' Conv(padding="CIRCULAR")."""
    q = filters.shape[:-2]
    pads = [(0, 0)] + [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in q] + [(0, 0)]
    padded = jnp.pad(h, pads, mode="wrap")
    spec = ("NWC", "WIO", "NWC") if len(q) == 1 else ("NHWC", "HWIO", "NHWC")
    return lax.conv_general_dilated(padded, jnp.asarray(filters), (1,) * len(q), "VALID", dimension_numbers=spec,
                                    precision=lax.Precision.HIGHEST)


def readout_features(readout: str, h: Array) -> Array:
    """The readout's input: h (N, *S, n) -> (N, n) ("pool": the mean over positions) or
    (N, prod(S) n) ("flatten")."""
    if readout == "pool":
        return h.mean(axis=tuple(range(1, h.ndim - 1)))
    return h.reshape(h.shape[0], -1)


def apply(arch: ConvArchitecture, params: Params, x: Array) -> Array:
    """f(x) for one network (no ensemble axis): x (N, *S, C) -> (N,)."""
    c = scales(arch, int(params["W"].shape[-1]), tuple(x.shape[1:]))
    return forward(family(arch), params, x, c)[0]


def forward(fam: ConvFamily, params: Params, x: Array, c: Scales, probes: Params | None = None
            ) -> tuple[Array, dict[str, Array]]:
    """The forward pass, with what the empirical NTK needs.

    c: the multipliers (`scales`), as values under jit. Returns (f (N,), inputs): inputs[name]
    is the input h of each conv (N, *S, C_in), stacked over layers for "W" and "V", and "w":
    the readout's features. `probes` (zeros shaped like the convs' outputs, `probe_shapes`)
    are added to those outputs, so d(sum f)/d(probes) is each conv's back-propagated signal.
    """
    phi = ACTIVATION_FUNCTIONS[fam.activation][0]
    p = probes or {}

    def bias(layer: int) -> Array | float:
        return c["b"] * params["b"][layer] if "b" in params else 0.0

    def probe(name: str, layer: int) -> Array | float:
        return p[name][layer] if name in p else 0.0

    if fam.kind == "conv-resnet":
        h = c["U"] * circular_conv(x, params["U"]) + p.get("U", 0.0)
        h_w, h_v = [], []
        for layer in range(params["W"].shape[0]):
            a = phi(c["W"] * circular_conv(h, params["W"][layer]) + bias(layer) + probe("W", layer))
            h_w.append(h)
            h_v.append(a)
            h = h + c["V"] * circular_conv(a, params["V"][layer]) + probe("V", layer)
        inputs = {"U": x, "W": jnp.stack(h_w), "V": jnp.stack(h_v)}
    else:
        h = phi(c["W1"] * circular_conv(x, params["W1"]) + bias(0) + p.get("W1", 0.0))
        h_w = []
        for layer in range(params["W"].shape[0]):
            h_w.append(h)
            h = phi(c["W"] * circular_conv(h, params["W"][layer]) + bias(layer + 1) + probe("W", layer))
        inputs = {"W1": x, "W": jnp.stack(h_w) if h_w else jnp.zeros((0, *h.shape), h.dtype)}
    z = readout_features(fam.readout, h)
    inputs["w"] = z
    f = c["w"] * z @ params["w"] + (c["b_out"] * params["b_out"] if "b_out" in params else 0.0)
    return f, inputs


def probe_shapes(fam: ConvFamily, params: Params, x_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Shapes of the convs' outputs for inputs x of shape (N, *S, C) (the `probes` of `forward`)."""
    width, layers = int(params["W"].shape[-1]), int(params["W"].shape[0])
    out = (*x_shape[:-1], width)
    if fam.kind == "conv-resnet":
        return {"U": out, "W": (layers, *out), "V": (layers, *out)}
    return {"W1": out, "W": (layers, *out)}
