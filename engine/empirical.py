"""Empirical (finite-width) kernels: the NTK of a given network, the NNGP of an ensemble,
and input-Jacobian norms.

The structured NTK uses that each dense layer y = c M h contributes
c^2 (delta . delta')(h . h') to Theta(x, x'), delta = df/dy (shared/docs/kernels.md
section 3): O(N^2 n L) work, exact, and the Jacobian is never formed. The deltas come
from one backward pass through zero "probes" added to every layer's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from numpy.typing import ArrayLike

from engine.analytic import check_pair, check_points
from engine.architectures import Architecture
from engine.networks import Params, Scales, check_params, forward, probe_shapes, scales

METHODS = ("structured", "jacobian")
# of one `signals` call: the matrices' inputs h and back-propagated signals delta by name, and the readout's signal
Signals = tuple[Mapping[str, Array], Mapping[str, Array], Array]


def multipliers(arch: Architecture, params: Params, input_dim: int, parametrization: str) -> dict[str, np.float64]:
    """`scales` as float64 values, to pass into jitted code beside `arch.structure()`."""
    width = params["w"].shape[-1]
    return {k: np.float64(v) for k, v in scales(arch, width, input_dim, parametrization).items()}


def signals(arch: Architecture, params: Params, x: Array, parametrization: str, y: Array | None = None,
            c: Scales | None = None) -> tuple[Scales, dict[str, Array], dict[str, Array], Array]:
    """Per matrix: its input h (.., N, fan_in) and the back-propagated signal (.., N, fan_out).

    y None: signals of f itself (delta = df/dy; the readout's signal is 1 per point).
    y given: signals of the loss 1/2 ||f - y||^2 (r_i delta_i with r = f - y; readout r).
    c: the scales (see `networks.forward`), None to compute them from arch.
    Returns (scales, inputs, deltas, readout signal (N,)).
    """
    width = params["w"].shape[-1]
    c = scales(arch, width, x.shape[1], parametrization) if c is None else c
    zeros = {k: jnp.zeros(s, x.dtype) for k, s in probe_shapes(arch, x.shape[0], width).items()}

    def objective(probes: Params) -> tuple[Array, tuple[Array, dict[str, Array]]]:
        f, inputs = forward(arch, params, x, parametrization, probes, c)
        if y is None:
            return f.sum(), (jnp.ones_like(f), inputs)
        return 0.5 * jnp.sum((f - y) ** 2), (f - y, inputs)

    deltas, (readout, inputs) = jax.grad(objective, has_aux=True)(zeros)
    return c, inputs, deltas, readout


def bias_signals(arch: Architecture, deltas: Mapping[str, Array]) -> Array:
    """The signals of the hidden biases, stacked over layers (L, N, width)."""
    return deltas["W"] if arch.kind == "resnet" else jnp.concatenate([deltas["W1"][None], deltas["W"]])


def pair_gram(arch: Architecture, has_bias: bool, c: Scales, first: Signals, second: Signals) -> Array:
    """sum over parameters of grad_1 . grad_2, from two `signals` results (minus the scales):
    each matrix y = c M h gives c^2 (delta1 . delta2)(h1 . h2)."""
    (h1, d1, r1), (h2, d2, r2) = first, second
    gram = lambda a, b: jnp.einsum("...id,...jd->...ij", a, b)  # noqa: E731
    theta = c["w"] ** 2 * jnp.outer(r1, r2) * gram(h1["w"], h2["w"])
    for name in d1:  # the matrices: U/W1 (unstacked), W and V (stacked over layers)
        term = gram(d1[name], d2[name]) * gram(h1[name], h2[name])
        theta = theta + c[name] ** 2 * (term if term.ndim == 2 else term.sum(0))
    if has_bias:
        theta = theta + c["b"] ** 2 * gram(bias_signals(arch, d1), bias_signals(arch, d2)).sum(0)
        theta = theta + c["b_out"] ** 2 * jnp.outer(r1, r2)
    if "bU" in c:  # the "pytorch" ResNet's biases of U and V
        theta = theta + c["bU"] ** 2 * gram(d1["U"], d2["U"]) + c["bV"] ** 2 * gram(d1["V"], d2["V"]).sum(0)
    return theta


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def structured_ntk(arch: Architecture, params: Params, x1: Array, x2: Array | None, parametrization: str,
                   c: Scales | None = None) -> Array:
    """The structured empirical NTK (jitted); x2 None means x1; c: see `signals`."""
    c, h1, d1, r1 = signals(arch, params, x1, parametrization, c=c)
    second = (h1, d1, r1) if x2 is None else signals(arch, params, x2, parametrization, c=c)[1:]
    return pair_gram(arch, "b" in params, c, (h1, d1, r1), second)


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def _jacobian(arch: Architecture, params: Params, x1: Array, x2: Array | None, parametrization: str,
              c: Scales) -> Array:
    def jac(x: Array) -> Array:
        j = jax.jacrev(lambda p: forward(arch, p, x, parametrization, c=c)[0])(params)
        return jnp.concatenate([v.reshape(x.shape[0], -1) for v in jax.tree_util.tree_leaves(j)], axis=1)

    j1 = jac(x1)
    return j1 @ (j1 if x2 is None else jac(x2)).T


def empirical_ntk(arch: Architecture, params: Params, x1: ArrayLike, x2: ArrayLike | None = None, *,
                  parametrization: str = "ntk", method: str = "structured") -> np.ndarray:
    """Theta_hat(x1, x2) = sum_p df(x1)/dp df(x2)/dp of one network. x1 (N1, d), x2 (N2, d)
    or None (= x1) -> (N1, N2). method "jacobian" contracts full autodiff Jacobians (the
    reference; O(N P) memory)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x1, x2 = check_pair(x1, x2)
    check_params(arch, params, x1.shape[1])
    fn = structured_ntk if method == "structured" else _jacobian
    c = multipliers(arch, params, x1.shape[1], parametrization)
    with jax.enable_x64(True):
        return np.asarray(fn(arch.structure(), params, jnp.asarray(x1), None if x2 is None else jnp.asarray(x2),
                             parametrization, c))


def empirical_nngp(arch: Architecture, ensemble: Params, x1: ArrayLike, x2: ArrayLike | None = None, *,
                   parametrization: str = "ntk") -> np.ndarray:
    """E[f(x1) f(x2)] over an ensemble (params with a leading n_init axis): the Monte Carlo
    NNGP (the mean of f is zero at initialisation, so no centring). -> (N1, N2)."""
    x1, x2 = check_pair(x1, x2)
    x2 = x1 if x2 is None else x2
    check_params(arch, ensemble, x1.shape[1], ensemble=True)
    with jax.enable_x64(True):
        c = multipliers(arch, ensemble, x1.shape[1], parametrization)
        return np.asarray(_second_moment(arch.structure(), ensemble, jnp.asarray(x1), jnp.asarray(x2),
                                         parametrization, c))


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def _second_moment(arch: Architecture, ensemble: Params, x1: Array, x2: Array, parametrization: str,
                   c: Scales) -> Array:
    run = jax.vmap(lambda p, x: forward(arch, p, x, parametrization, c=c)[0], in_axes=(0, None))
    f1, f2 = run(ensemble, x1), run(ensemble, x2)
    return f1.T @ f2 / f1.shape[0]


def input_jacobian_norms(arch: Architecture, params: Params, x: ArrayLike, *,
                         parametrization: str = "ntk") -> np.ndarray:
    """||df/dx||_2 at each point of x (N, d) -> (N,): Lipschitz estimates to set beside
    `jacobian_bounds`."""
    x = check_points(x, "x")
    check_params(arch, params, x.shape[1])
    with jax.enable_x64(True):
        c = multipliers(arch, params, x.shape[1], parametrization)
        return np.asarray(_jacobian_norms(arch.structure(), params, jnp.asarray(x), parametrization, c))


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def _jacobian_norms(arch: Architecture, params: Params, x: Array, parametrization: str, c: Scales) -> Array:
    grad = jax.vmap(jax.grad(lambda xi: forward(arch, params, xi[None], parametrization, c=c)[0][0]))
    return jnp.linalg.norm(grad(x), axis=1)
