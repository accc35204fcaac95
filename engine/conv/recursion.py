"""The layer recursions of a convolutional ResNet or CNN on one tile of image pairs (JAX).

A tile holds b1 x b2 image pairs. For the "pool" readout each pair carries its full pixel-pair
covariance, shape (b1, b2, *S, *S) (S the spatial shape: (P,) or (H, W)); for "flatten" only
its pixel diagonal (b1, b2, *S) is needed, since a circular convolution shifts both pixels of a
pair together and so never mixes different offsets p' - p. Each image's per-pixel variances
(b, *S) follow their own recursion beside the pairs. Layer by layer (neural-tangents' stax,
NTK parametrisation, shared/docs/kernels.md's duals T, Tdot):

    Conv(W_std, b_std):  K <- W_std^2 mean_window K + b_std^2;  Theta <- K + W_std^2 mean_window Theta
    phi:                 K <- T(v1, K, v2);  Theta <- Tdot(v1, K, v2) Theta
    mean_window C[p, p'] = (1/|window|) sum_{delta in window} C[p + delta, p' + delta]  (circular)

The hyperparameters and the depth are traced values: a new alpha or depth reuses the compiled code.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array, lax

from engine.conv.architecture import ConvFamily
from engine.dual import ACTIVATION_FUNCTIONS, CLOSED_FORMS, gaussian_dual, quadrature_dual

QUADRATURE_CHUNK = 128  # entries per step of the quadrature path (each holds thousands of nodes)


def window_offsets(q: int) -> range:
    """The shifts delta of a filter of size q under "SAME" (hence circular) padding, as
    lax.padtype_to_pads places it: [-(q - 1) // 2, q // 2]."""
    low = (q - 1) // 2
    return range(-low, q - low)


def window_mean(a: Array, axis_groups: tuple[tuple[int, ...], ...], filter_size: tuple[int, ...]) -> Array:
    """Circular mean over the filter window: for each spatial axis k, the axes in
    axis_groups[k] are shifted together by each delta of `window_offsets(q_k)`, summed, / q_k."""
    for axes, q in zip(axis_groups, filter_size, strict=True):
        total = None
        for delta in window_offsets(q):
            shifted = a if delta == 0 else jnp.roll(a, (-delta,) * len(axes), axis=axes)
            total = shifted if total is None else total + shifted
        assert total is not None
        a = total * (1.0 / q)
    return a


def _chunked(fn: partial, s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """fn(s11, s12, s22) -> (T, Tdot) entrywise, QUADRATURE_CHUNK entries at a time (bounded memory)."""
    s11, s12, s22 = jnp.broadcast_arrays(s11, s12, s22)
    shape, size = s12.shape, s12.size
    padded = -(-size // QUADRATURE_CHUNK) * QUADRATURE_CHUNK

    def flat(a: Array, fill: float) -> Array:
        return jnp.pad(a.reshape(-1), (0, padded - size), constant_values=fill).reshape(-1, QUADRATURE_CHUNK)

    t, tdot = lax.map(lambda c: fn(*c), (flat(s11, 1.0), flat(s12, 0.0), flat(s22, 1.0)))
    return t.reshape(-1)[:size].reshape(shape), tdot.reshape(-1)[:size].reshape(shape)


def pair_dual(activation: str, s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """(T, Tdot) entrywise: the closed form, or the quadrature in chunks."""
    if activation in CLOSED_FORMS:
        return CLOSED_FORMS[activation](s11, s12, s22)
    return _chunked(partial(quadrature_dual, activation), s11, s12, s22)


def variance_dual(activation: str, v: Array) -> Array:
    """T(v, v, v) entrywise."""
    if activation in CLOSED_FORMS:
        return CLOSED_FORMS[activation](v, v, v)[0]
    phi = ACTIVATION_FUNCTIONS[activation][0]
    return _chunked(lambda a, b, c: (gaussian_dual([phi], a, b, c)[0],) * 2, v, v, v)[0]


def _layouts(family: ConvFamily, ns: int) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...], int]:
    """(axis groups of a pair state, axis groups of a variance array, where image 2's pixels start)."""
    if family.readout == "pool":  # (b1, b2, *S, *S)
        return tuple((2 + k, 2 + ns + k) for k in range(ns)), tuple((1 + k,) for k in range(ns)), 2 + ns
    return tuple((2 + k,) for k in range(ns)), tuple((1 + k,) for k in range(ns)), 2  # (b1, b2, *S)


def recursion(family: ConvFamily, kernels: tuple[str, ...], hyper: Array, depth: Array, c0: Array, v1: Array,
              v2: Array) -> dict[str, Array]:
    """NNGP / NTK of a tile. c0: the input covariances x1[p].x2[p'] / C of the pairs, (b1, b2, *S, *S)
    ("pool") or (b1, b2, *S) ("flatten"); v1 (b1, *S), v2 (b2, *S): each image's x[p].x[p] / C.
    hyper = [sigma_w^2, sigma_b^2, (alpha sigma_v)^2]; depth: L. Returns {name: (b1, b2)}."""
    ns = v1.ndim - 1
    pair_axes, var_axes, second = _layouts(family, ns)
    sw2, sb2, c = hyper[0], hyper[1], hyper[2]
    act, fs = family.activation, family.filter_size

    def conv(a: Array) -> Array:
        return window_mean(a, pair_axes, fs)

    def conv_v(v: Array) -> Array:
        return window_mean(v, var_axes, fs)

    def expand(u1: Array, u2: Array) -> tuple[Array, Array]:
        """Variances broadcast against a pair state."""
        e1 = u1.reshape(u1.shape[:1] + (1,) + u1.shape[1:] + (1,) * (second - 2))
        e2 = u2.reshape((1,) + u2.shape[:1] + (1,) * (second - 2) + u2.shape[1:])
        return e1, e2

    # A layer runs as three stages, one `lax.switch` branch each, so that each stage's output is
    # materialised: fused into one loop, XLA recomputes the dual inside every shifted copy of the next
    # window mean (10-50x slower). K and Theta travel as two real arrays (a complex K + i Theta, as the
    # dense tiles carry, makes the shifted copies ~10x slower too). The state: K, Theta, two scratch pair
    # arrays a, b, the two images' variances u1, u2 and two scratch variances w1, w2.
    State = tuple[Array, Array, Array, Array, Array, Array, Array, Array]

    def into(state: State) -> State:
        """Conv(sigma_w, sigma_b): a = S, b = Theta of the pre-activations, w = their variances."""
        k, th, _, _, u1, u2, _, _ = state
        s12 = sw2 * conv(k) + sb2
        return k, th, s12, s12 + sw2 * conv(th), u1, u2, sw2 * conv_v(u1) + sb2, sw2 * conv_v(u2) + sb2

    def activation(state: State) -> State:
        """phi: a = T, b = Tdot Theta, w = T of the variances."""
        k, th, s12, ths, u1, u2, s1, s2 = state
        e1, e2 = expand(s1, s2)
        t, tdot = pair_dual(act, e1, s12, e2)
        return k, th, t, tdot * ths, u1, u2, variance_dual(act, s1), variance_dual(act, s2)

    def out(state: State) -> State:
        """conv-resnet: the branch's Conv(alpha sigma_v) added to the skip; cnn: the activation is the state."""
        k, th, t, tdot_th, u1, u2, t1, t2 = state
        if family.kind == "cnn":
            return t, tdot_th, t, tdot_th, t1, t2, t1, t2
        kb = c * conv(t)
        return (k + kb, th + kb + c * conv(tdot_th), t, tdot_th, u1 + c * conv_v(t1), u2 + c * conv_v(t2), t1, t2)

    if family.kind == "conv-resnet":
        k0, u1, u2 = conv(c0), conv_v(v1), conv_v(v2)  # stem Conv(q, W_std=1), no bias: K = Theta
        state = (k0, k0, k0, k0, u1, u2, u1, u2)
    else:
        zero = jnp.zeros_like(c0)
        state = (c0, zero, c0, zero, v1, v2, v1, v2)
    state = lax.fori_loop(0, 3 * depth, lambda i, st: lax.switch(i % 3, (into, activation, out), st), state)
    k, th = state[0], state[1]
    axes = tuple(range(2, k.ndim))
    nngp = sw2 * jnp.mean(k, axis=axes) + sb2
    out = {"nngp": nngp, "ntk": nngp + sw2 * jnp.mean(th, axis=axes)}
    return {name: out[name] for name in kernels}


@partial(jax.jit, static_argnames=("family", "kernels"))
def tile(x1: Array, x2: Array, hyper: Array, depth: Array, *, family: ConvFamily,
         kernels: tuple[str, ...]) -> dict[str, Array]:
    """One tile of image pairs: x1 (b1, *S, C), x2 (b2, *S, C) -> {name: (b1, b2)}."""
    channels = x1.shape[-1]
    v1 = jnp.einsum("a...c,a...c->a...", x1, x1) / channels
    v2 = jnp.einsum("a...c,a...c->a...", x2, x2) / channels
    if family.readout == "pool":
        f1 = x1.reshape(x1.shape[0], -1, channels)
        f2 = x2.reshape(x2.shape[0], -1, channels)
        c0 = jnp.einsum("apc,bqc->abpq", f1, f2, precision=lax.Precision.HIGHEST) / channels
        spatial = x1.shape[1:-1]
        c0 = c0.reshape(c0.shape[:2] + spatial + spatial)
    else:
        c0 = jnp.einsum("a...c,b...c->ab...", x1, x2, precision=lax.Precision.HIGHEST) / channels
    return recursion(family, kernels, hyper, depth, c0, v1, v2)
