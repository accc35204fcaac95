"""Finite-width ResNets and MLPs (the networks of `engine.architectures`), in JAX.

Parameters are a dict of arrays; the hidden layers are stacked on a leading axis.
Every weight enters the forward pass as `scale * M`:

- "ntk" (the paper's NTK regime): M ~ N(0, 1), scale = sigma / sqrt(fan_in);
- "standard" (LeCun): M ~ N(0, sigma^2 / fan_in), scale = 1;
- "xavier" (Glorot, the paper's runs outside the NTK regime, Figs. 3-4):
  M ~ N(0, sigma^2 2 / (fan_in + fan_out)), scale = 1;
- "pytorch" (torch.nn.Linear's default, the paper's Fig. 5): M ~ U(-sigma / sqrt(fan_in),
  sigma / sqrt(fan_in)), scale = 1, and a bias in every layer (U and V of the ResNet too),
  b ~ U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)), whatever sigma_b.

sigma is sigma_w (sigma_v for V, 1 for the ResNet's U). The residual branch carries alpha in
all four. Biases (when sigma_b > 0) are N(0, 1) scaled by sigma_b ("ntk"), or N(0, sigma_b^2)
("standard", "xavier"). `init_params(..., n_init=k)` draws k independent networks at once,
with a leading axis of size k on every array (an ensemble, for `vmap`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.architectures import Architecture, check_architecture
from engine.dual import ACTIVATION_FUNCTIONS

PARAMETRIZATIONS = ("ntk", "standard", "xavier", "pytorch")
MAX_PARAMETERS = 2**31  # width^2 x depth beyond this is refused (tens of GB of float64)

# the parameter arrays by name: on the device, or host copies (`ensemble_members`)
Params = dict[str, Array | np.ndarray]
# the multiplier of each parameter array (`scales`): numbers, or traced values inside jitted code
Scales = Mapping[str, float | Array]


def _layer_specs(arch: Architecture, width: int, input_dim: int, parametrization: str = "ntk"
                 ) -> dict[str, tuple[tuple[int, ...], float, int, int]]:
    """name -> (shape, sigma, fan_in, fan_out) of each array (sigma_b, 1 for the biases)."""
    n, d, depth = width, input_dim, arch.depth
    sw, sv, sb = arch.sigma_w, arch.sigma_v, arch.sigma_b
    if arch.kind == "resnet":
        specs = {"U": ((n, d), 1.0, d, n), "W": ((depth, n, n), sw, n, n), "V": ((depth, n, n), sv, n, n),
                 "w": ((n,), sw, n, 1)}
    else:
        specs = {"W1": ((n, d), sw, d, n), "W": ((depth - 1, n, n), sw, n, n), "w": ((n,), sw, n, 1)}
    if parametrization == "pytorch":  # torch.nn.Linear: a bias in every layer, on 1 / sqrt(fan_in)
        specs |= {"b": ((depth, n), 1.0, n, n), "b_out": ((), 1.0, n, 1)}
        if arch.kind == "resnet":
            specs |= {"bU": ((n,), 1.0, d, n), "bV": ((depth, n), 1.0, n, n)}
    elif sb > 0:
        specs |= {"b": ((depth, n), sb, 1, 1), "b_out": ((), sb, 1, 1)}
    return specs


def _draw_scale(name: str, sigma: float, fan_in: int, fan_out: int, parametrization: str) -> float:
    """The std (the half-width for "pytorch") of array `name` at initialisation."""
    if parametrization == "ntk" or (name.startswith("b") and parametrization != "pytorch"):
        return 1.0 if parametrization == "ntk" else sigma
    if parametrization == "xavier":
        return sigma * math.sqrt(2 / (fan_in + fan_out))
    return sigma / math.sqrt(fan_in)  # "standard" and "pytorch"


def check_network(arch: Architecture, width: int, input_dim: int, parametrization: str) -> None:
    check_architecture(arch)
    for name, value in (("width", width), ("input_dim", input_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if width * width * arch.depth > MAX_PARAMETERS:
        raise ValueError(f"width^2 x depth = {width * width * arch.depth:.3g} exceeds {MAX_PARAMETERS:.3g} "
                         f"weights; reduce width or depth")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")


def check_params(arch: Architecture, params: Params, input_dim: int, ensemble: bool = False) -> None:
    """ValueError unless params fit `arch` and inputs of dimension input_dim (with a leading
    ensemble axis when `ensemble`)."""
    check_architecture(arch)
    if not isinstance(params, dict) or "w" not in params:
        raise ValueError("params must be a dict of arrays as made by init_params")
    lead = 1 if ensemble else 0
    width = params["w"].shape[-1] if params["w"].ndim == 1 + lead else None
    if width is None:
        raise ValueError(f"params['w'] has shape {params['w'].shape}: expected "
                         f"{'(n_init, width) for an ensemble' if ensemble else '(width,) for one network'}")
    got = {name: tuple(a.shape[lead:]) for name, a in params.items()}
    pytorch = "bV" in params or ("b" in params and arch.sigma_b == 0)  # biases everywhere
    specs = _layer_specs(arch, width, input_dim, "pytorch" if pytorch else "ntk")
    expected = {name: spec[0] for name, spec in specs.items()}
    if got != expected:
        raise ValueError(f"params do not fit this architecture and input dimension {input_dim}: expected shapes "
                         f"{expected}, got {got}")


def scales(arch: Architecture, width: int, input_dim: int, parametrization: str = "ntk") -> dict[str, float]:
    """The multiplier of each parameter array in the forward pass (alpha of "V" included)."""
    specs = _layer_specs(arch, width, input_dim, parametrization)
    if parametrization == "ntk":
        out = {name: sigma if name.startswith("b") else sigma / math.sqrt(fan_in)
               for name, (_, sigma, fan_in, _) in specs.items()}
    else:
        out = dict.fromkeys(specs, 1.0)
    for name in ("V", "bV"):  # the residual branch, its bias included
        if name in out:
            out[name] *= arch.alpha
    return out


def init_params(arch: Architecture, width: int, input_dim: int, seed: int, parametrization: str = "ntk",
                n_init: int | None = None) -> Params:
    """Random parameters, deterministic per seed. n_init: an ensemble of that many networks
    (leading axis n_init on every array; network i is drawn from `ensemble_keys(seed, n_init)[i]`);
    None: a single network."""
    check_network(arch, width, input_dim, parametrization)
    if n_init is None:
        with jax.enable_x64(True):
            return _draw(arch, width, input_dim, parametrization, jax.random.PRNGKey(seed))
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"n_init must be an integer >= 1, got {n_init!r}")
    return init_ensemble(arch, width, input_dim, ensemble_keys(seed, n_init), parametrization)


def ensemble_keys(seed: int, n_init: int) -> Array:
    """The PRNG keys of an ensemble's networks, (n_init, 2)."""
    return jax.random.split(jax.random.PRNGKey(seed), n_init)


def ensemble_member(ensemble: Params, index: int) -> Params:
    """Network `index` of an ensemble (every array without its leading n_init axis)."""
    return {name: value[index] for name, value in ensemble.items()}


def ensemble_members(arch: Architecture, width: int, input_dim: int, seed: int, n_init: int,
                     parametrization: str = "ntk") -> Iterator[Params]:
    """The networks of `init_params(..., n_init=n_init)` one at a time (host arrays, no leading
    axis), each drawn as `engine.training.train` draws it on the CPU (a group of one key), so
    the two share their compiled draws and one network is held at a time."""
    for key in np.asarray(ensemble_keys(seed, n_init)):
        yield {name: np.asarray(a[0]) for name, a in init_ensemble(arch, width, input_dim, key[None],
                                                                   parametrization).items()}


def init_ensemble(arch: Architecture, width: int, input_dim: int, keys: Array, parametrization: str = "ntk") -> Params:
    """One network per key (keys from `ensemble_keys`), stacked on a leading axis."""
    check_network(arch, width, input_dim, parametrization)
    with jax.enable_x64(True):
        return jax.vmap(partial(_draw, arch, width, input_dim, parametrization))(keys)


def _draw(arch: Architecture, width: int, input_dim: int, parametrization: str, key: Array) -> Params:
    specs = _layer_specs(arch, width, input_dim, parametrization)
    keys = jax.random.split(key, len(specs))
    out: Params = {}
    for k, (name, (shape, sigma, fan_in, fan_out)) in zip(keys, specs.items(), strict=True):
        scale = _draw_scale(name, sigma, fan_in, fan_out, parametrization)
        if parametrization == "pytorch":
            drawn = jax.random.uniform(k, shape, jnp.float64, -scale, scale)
            if name == "b" and arch.kind == "mlp":  # the first layer's fan-in is the input's
                drawn = drawn.at[0].multiply(math.sqrt(width / input_dim))
            out[name] = drawn
        else:
            out[name] = jax.random.normal(k, shape, dtype=jnp.float64) * scale
    return out


def apply(arch: Architecture, params: Params, x: Array, parametrization: str = "ntk") -> Array:
    """f(x) for one network: params as from `init_params` (no ensemble axis); x (N, d) -> (N,)."""
    return forward(arch, params, x, parametrization)[0]


def forward(arch: Architecture, params: Params, x: Array, parametrization: str = "ntk", probes: Params | None = None,
            c: Scales | None = None) -> tuple[Array, dict[str, Array]]:
    """The forward pass, with what the empirical NTK needs.

    c: the multipliers `scales(arch, ...)`, computed here when None; jitted callers pass them
    as arguments (values), with `arch.structure()` static, so a new alpha or sigma compiles nothing.

    Returns (f (N,), inputs): inputs[name] is the input h of each matrix (N, fan_in), stacked
    over layers for "W" and "V". `probes` (zeros shaped like the matrices' outputs, see
    `probe_shapes`) are added to those outputs, so d(sum f)/d(probes) is the back-propagated
    signal delta of each matrix.
    """
    phi = ACTIVATION_FUNCTIONS[arch.activation][0]
    width = params["w"].shape[-1]
    c = scales(arch, width, x.shape[1], parametrization) if c is None else c
    p = probes or {}
    has_bias = "b" in params

    def bias(index: int) -> Array | float:
        return c["b"] * params["b"][index] if has_bias else 0.0

    def probe(name: str, index: int) -> Array | np.ndarray | float:
        return p[name][index] if name in p else 0.0

    # Python loops over layers (unrolled under jit): XLA runs them faster than a scan over
    # the stacked weights, whose slices and gradient updates it copies.
    if arch.kind == "resnet":
        h = c["U"] * x @ params["U"].T + (c["bU"] * params["bU"] if "bU" in params else 0.0) + p.get("U", 0.0)
        h_w, h_v = [], []
        for layer in range(arch.depth):
            g = c["W"] * h @ params["W"][layer].T + bias(layer) + probe("W", layer)
            a = phi(g)
            h_w.append(h)
            h_v.append(a)
            branch = c["V"] * a @ params["V"][layer].T + (c["bV"] * params["bV"][layer] if "bV" in params else 0.0)
            h = h + branch + probe("V", layer)
        inputs = {"U": x, "W": jnp.stack(h_w), "V": jnp.stack(h_v), "w": h}
    else:
        g = c["W1"] * x @ params["W1"].T + bias(0) + p.get("W1", 0.0)
        h, h_w = phi(g), []
        for layer in range(arch.depth - 1):
            h_w.append(h)
            h = phi(c["W"] * h @ params["W"][layer].T + bias(layer + 1) + probe("W", layer))
        inputs = {"W1": x, "W": jnp.stack(h_w) if h_w else jnp.zeros((0, *h.shape), h.dtype), "w": h}
    f = c["w"] * h @ params["w"] + (c["b_out"] * params["b_out"] if has_bias else 0.0)
    return f, inputs


def probe_shapes(arch: Architecture, n_points: int, width: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the matrices' outputs for N points (the `probes` of `forward`)."""
    if arch.kind == "resnet":
        return {"U": (n_points, width), "W": (arch.depth, n_points, width), "V": (arch.depth, n_points, width)}
    return {"W1": (n_points, width), "W": (arch.depth - 1, n_points, width)}
