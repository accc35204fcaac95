"""Empirical kernels of finite conv nets: the NTK of one network, the NNGP of an ensemble.

The structured NTK: a conv y[p] = c sum_k M_k h[p + s_k] (circular) has the gradient
dF/dM_k = c sum_p delta[p] h[p + s_k]^T, so it contributes

    c^2 sum_{p, p'} (delta1[p] . delta2[p']) (patch1[p] . patch2[p'])

to Theta(x1, x2), with patch[p] = (h[p + s_k])_k the window at p (|window| C_in numbers) and
delta = df/dy from one backward pass through zero probes added to every conv's output (as
`engine.empirical` does for dense layers). Exact; memory O(N1 N2 P^2) per layer (P positions),
the Jacobian is never formed. method="jacobian" contracts full autodiff Jacobians (the reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from numpy.typing import ArrayLike

from engine.conv.architecture import ConvArchitecture, check_conv_points
from engine.conv.networks import ConvFamily, Params, Scales, check_params, family, forward, probe_shapes, scales

METHODS = ("structured", "jacobian")
# of one `signals` call: the convs' inputs and back-propagated signals by name, and the readout's signal
Signals = tuple[Mapping[str, Array], Mapping[str, Array], Array]


def multipliers(arch: ConvArchitecture, width: int, input_shape: tuple[int, ...]) -> dict[str, np.float64]:
    """`scales` as float64 values, to pass into jitted code beside `family(arch)`."""
    return {k: np.float64(v) for k, v in scales(arch, width, input_shape).items()}


def signals(fam: ConvFamily, params: Params, x: Array, c: Scales, y: Array | None = None) -> Signals:
    """Per conv: its input h (.., N, *S, C_in) and its back-propagated signal (.., N, *S, C_out);
    "w": the readout's features (N, F). y None: signals of f (readout signal 1 per point); y
    given: of the loss 1/2 ||f - y||^2 (readout signal f - y). Returns (inputs, deltas, readout)."""
    zeros = {k: jnp.zeros(s, x.dtype) for k, s in probe_shapes(fam, params, x.shape).items()}

    def objective(probes: Params) -> tuple[Array, tuple[Array, dict[str, Array]]]:
        f, inputs = forward(fam, params, x, c, probes)
        if y is None:
            return f.sum(), (jnp.ones_like(f), inputs)
        return 0.5 * jnp.sum((f - y) ** 2), (f - y, inputs)

    deltas, (readout, inputs) = jax.grad(objective, has_aux=True)(zeros)
    return inputs, deltas, readout


def patches(h: Array, filter_size: tuple[int, ...]) -> Array:
    """The circular windows of h (N, *S, C): (N, P, |window| C), in the conv's offsets."""
    shifted = []
    for offset in np.ndindex(*filter_size):
        shift = tuple(-(k - (q - 1) // 2) for k, q in zip(offset, filter_size, strict=True))
        shifted.append(jnp.roll(h, shift, axis=tuple(range(1, h.ndim - 1))))
    stacked = jnp.stack(shifted, axis=-2)  # (N, *S, |window|, C)
    return stacked.reshape(h.shape[0], -1, stacked.shape[-2] * stacked.shape[-1])


def _positions(a: Array) -> Array:
    """(N, *S, C) -> (N, P, C)."""
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _conv_term(q: tuple[int, ...], h1: Array, d1: Array, h2: Array, d2: Array) -> Array:
    """sum_{p, p'} (d1[p] . d2[p']) (patch1[p] . patch2[p']) -> (N1, N2)."""
    deltas = jnp.einsum("ipo,jqo->ijpq", _positions(d1), _positions(d2))
    windows = jnp.einsum("ipk,jqk->ijpq", patches(h1, q), patches(h2, q))
    return jnp.sum(deltas * windows, axis=(2, 3))


def bias_signals(fam: ConvFamily, deltas: Mapping[str, Array]) -> Array:
    """The hidden biases' signals summed over positions, stacked over layers (L, N, width)."""
    stacked = deltas["W"] if fam.kind == "conv-resnet" else jnp.concatenate([deltas["W1"][None], deltas["W"]])
    return stacked.sum(axis=tuple(range(2, stacked.ndim - 1)))


def pair_gram(fam: ConvFamily, c: Scales, first: Signals, second: Signals) -> Array:
    """sum over parameters of grad_1 . grad_2, from two `signals` results -> (N1, N2)."""
    (h1, d1, r1), (h2, d2, r2) = first, second
    theta = c["w"] ** 2 * jnp.outer(r1, r2) * (h1["w"] @ h2["w"].T)
    for name in d1:  # the stem (unstacked), then the stacked layers one at a time (memory N1 N2 P^2)
        if d1[name].ndim == h1[name].ndim == len(fam.filter_size) + 2:
            theta = theta + c[name] ** 2 * _conv_term(fam.filter_size, h1[name], d1[name], h2[name], d2[name])
            continue
        for layer in range(d1[name].shape[0]):
            theta = theta + c[name] ** 2 * _conv_term(fam.filter_size, h1[name][layer], d1[name][layer],
                                                      h2[name][layer], d2[name][layer])
    if "b" in c:
        b1, b2 = bias_signals(fam, d1), bias_signals(fam, d2)
        theta = theta + c["b"] ** 2 * jnp.einsum("lio,ljo->ij", b1, b2) + c["b_out"] ** 2 * jnp.outer(r1, r2)
    return theta


@partial(jax.jit, static_argnames=("fam",))
def structured_ntk(fam: ConvFamily, params: Params, x1: Array, x2: Array | None, c: Scales) -> Array:
    """The structured empirical NTK (jitted); x2 None means x1."""
    first = signals(fam, params, x1, c)
    second = first if x2 is None else signals(fam, params, x2, c)
    return pair_gram(fam, c, first, second)


@partial(jax.jit, static_argnames=("fam",))
def _jacobian(fam: ConvFamily, params: Params, x1: Array, x2: Array | None, c: Scales) -> Array:
    def jac(x: Array) -> Array:
        j = jax.jacrev(lambda p: forward(fam, p, x, c)[0])(params)
        return jnp.concatenate([v.reshape(x.shape[0], -1) for v in jax.tree_util.tree_leaves(j)], axis=1)

    j1 = jac(x1)
    return j1 @ (j1 if x2 is None else jac(x2)).T


def check_conv_pair(arch: ConvArchitecture, x1: ArrayLike, x2: ArrayLike | None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """x1, x2 as float64 arrays of one input shape, or ValueError naming the argument."""
    a = check_conv_points(x1, arch, "x1")
    if x2 is None:
        return a, None
    b = check_conv_points(x2, arch, "x2")
    if b.shape[1:] != a.shape[1:]:
        raise ValueError(f"x1 and x2 must have the same shape per input; got x1 {a.shape}, x2 {b.shape}")
    return a, b


def empirical_ntk(arch: ConvArchitecture, params: Params, x1: ArrayLike, x2: ArrayLike | None = None, *,
                  method: str = "structured") -> np.ndarray:
    """Theta_hat(x1, x2) = sum_p df(x1)/dp df(x2)/dp of one network (no ensemble axis).
    x1 (N1, *S, C), x2 (N2, *S, C) or None (= x1) -> (N1, N2)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    a, b = check_conv_pair(arch, x1, x2)
    width = check_params(arch, params, a.shape[1:])
    fn = structured_ntk if method == "structured" else _jacobian
    with jax.enable_x64(True):
        return np.asarray(fn(family(arch), params, jnp.asarray(a), None if b is None else jnp.asarray(b),
                             multipliers(arch, width, a.shape[1:])))


def empirical_ntks(arch: ConvArchitecture, ensemble: Params, x1: ArrayLike, x2: ArrayLike | None = None
                   ) -> np.ndarray:
    """The structured empirical NTK of every network of an ensemble (a leading n_init axis on
    every array), one network at a time (one compilation) -> (n_init, N1, N2)."""
    a, b = check_conv_pair(arch, x1, x2)
    width = check_params(arch, ensemble, a.shape[1:], ensemble=True)
    fam, c = family(arch), multipliers(arch, width, a.shape[1:])
    with jax.enable_x64(True):
        xa, xb = jnp.asarray(a), None if b is None else jnp.asarray(b)
        return np.stack([np.asarray(structured_ntk(fam, {k: v[i] for k, v in ensemble.items()}, xa, xb, c))
                         for i in range(ensemble["W"].shape[0])])


def empirical_nngp(arch: ConvArchitecture, ensemble: Params, x1: ArrayLike, x2: ArrayLike | None = None
                   ) -> np.ndarray:
    """E[f(x1) f(x2)] over an ensemble (params with a leading n_init axis): the Monte Carlo
    NNGP (f has mean zero at initialisation, so no centring). -> (N1, N2)."""
    a, b = check_conv_pair(arch, x1, x2)
    width = check_params(arch, ensemble, a.shape[1:], ensemble=True)
    with jax.enable_x64(True):
        f1 = ensemble_outputs(arch, ensemble, a, width)
        f2 = f1 if b is None else ensemble_outputs(arch, ensemble, b, width)
        return np.asarray(f1.T @ f2 / f1.shape[0])


def ensemble_outputs(arch: ConvArchitecture, ensemble: Params, x: np.ndarray, width: int) -> Array:
    """f of every network of an ensemble at x (N, *S, C) -> (n_init, N)."""
    return _outputs(family(arch), ensemble, jnp.asarray(x), multipliers(arch, width, x.shape[1:]))


@partial(jax.jit, static_argnames=("fam",))
def _outputs(fam: ConvFamily, ensemble: Params, x: Array, c: Scales) -> Array:
    return jax.lax.map(lambda p: forward(fam, p, x, c)[0], ensemble)

