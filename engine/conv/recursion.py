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

    def nonlinear(z: Array, u1: Array, u2: Array) -> tuple[Array, Array, Array]:
        """Conv(sigma_w, sigma_b) then phi: the new (T, Tdot Theta) as one complex array, and T of the variances."""
        zc = conv(z)
        s12 = sw2 * zc.real + sb2
        th = s12 + sw2 * zc.imag
        s1, s2 = sw2 * conv_v(u1) + sb2, sw2 * conv_v(u2) + sb2
        e1, e2 = expand(s1, s2)
        t, tdot = pair_dual(act, e1, s12, e2)
        return lax.complex(t, tdot * th), variance_dual(act, s1), variance_dual(act, s2)

    # The pair state K + i Theta travels as one complex array (one pass per layer over the tile).
    if family.kind == "conv-resnet":
        k0 = conv(c0)  # stem Conv(q, W_std=1), no bias: K = Theta
        u1, u2 = conv_v(v1), conv_v(v2)

        def block(_: Array, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
            z, u1, u2 = carry
            w, t1, t2 = nonlinear(z, u1, u2)
            w = conv(w)
            z = z + c * lax.complex(w.real, w.real + w.imag)
            return z, u1 + c * conv_v(t1), u2 + c * conv_v(t2)

        z, _, _ = lax.fori_loop(0, depth, block, (lax.complex(k0, k0), u1, u2))
    else:

        def layer(_: Array, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
            return nonlinear(*carry)

        z, _, _ = lax.fori_loop(0, depth, layer, (lax.complex(c0, jnp.zeros_like(c0)), v1, v2))
    pooled = jnp.mean(z, axis=tuple(range(2, z.ndim)))
    nngp = sw2 * pooled.real + sb2
    out = {"nngp": nngp, "ntk": nngp + sw2 * pooled.imag}
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
