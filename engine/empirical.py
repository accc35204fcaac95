"""Empirical (finite-width) kernels: the NTK of a given network, the NNGP of an ensemble,
and input-Jacobian norms.

The structured NTK uses that each dense layer y = c M h contributes
c^2 (delta . delta')(h . h') to Theta(x, x'), delta = df/dy (shared/docs/kernels.md
section 3): O(N^2 n L) work, exact, and the Jacobian is never formed. The deltas come
from one backward pass through zero "probes" added to every layer's output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from engine.analytic import _check_points
from engine.architectures import Architecture
from engine.networks import Params, forward, probe_shapes, scales

METHODS = ("structured", "jacobian")


def _features(arch: Architecture, params: Params, x, parametrization: str):
    """Per layer: the scale c, the inputs h (.., N, fan_in) and the deltas (.., N, fan_out)."""
    width = params["w"].shape[-1]
    zeros = {k: jnp.zeros(s, x.dtype) for k, s in probe_shapes(arch, x.shape[0], width).items()}

    def total(probes):
        f, inputs = forward(arch, params, x, parametrization, probes)
        return f.sum(), inputs

    deltas, inputs = jax.grad(total, has_aux=True)(zeros)
    return scales(arch, width, x.shape[1], parametrization), inputs, deltas


@jax.jit
def _gram(a, b):
    return a @ b.T


def _structured(arch, params, x1, x2, parametrization):
    c, h1, d1 = _features(arch, params, x1, parametrization)
    if x2 is None:
        h2, d2 = h1, d1
    else:
        _, h2, d2 = _features(arch, params, x2, parametrization)
    gram = lambda a, b: jnp.einsum("...id,...jd->...ij", a, b)  # noqa: E731
    theta = c["w"] ** 2 * gram(h1["w"], h2["w"])
    for name in d1:  # the matrices: U/W1 (unstacked), W and V (stacked over layers)
        term = gram(d1[name], d2[name]) * gram(h1[name], h2[name])
        theta = theta + c[name] ** 2 * (term if term.ndim == 2 else term.sum(0))
    if "b" in params:
        bias_deltas = d1["W"] if arch.kind == "resnet" else jnp.concatenate([d1["W1"][None], d1["W"]])
        bias_deltas2 = d2["W"] if arch.kind == "resnet" else jnp.concatenate([d2["W1"][None], d2["W"]])
        theta = theta + c["b"] ** 2 * gram(bias_deltas, bias_deltas2).sum(0) + c["b_out"] ** 2
    return theta


def _jacobian(arch, params, x1, x2, parametrization):
    def jac(x):
        j = jax.jacrev(lambda p: forward(arch, p, x, parametrization)[0])(params)
        return jnp.concatenate([v.reshape(x.shape[0], -1) for v in jax.tree_util.tree_leaves(j)], axis=1)

    j1 = jac(x1)
    return j1 @ (j1 if x2 is None else jac(x2)).T


def empirical_ntk(arch: Architecture, params: Params, x1, x2=None, *, parametrization: str = "ntk",
                  method: str = "structured") -> np.ndarray:
    """Theta_hat(x1, x2) = sum_p df(x1)/dp df(x2)/dp of one network. x1 (N1, d), x2 (N2, d)
    or None (= x1) -> (N1, N2). method "jacobian" contracts full autodiff Jacobians (the
    reference; O(N P) memory)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x1 = _check_points(x1, "x1")
    x2 = None if x2 is None else _check_points(x2, "x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ValueError(f"x1 and x2 must have the same dimension d; got x1 {x1.shape}, x2 {x2.shape}")
    fn = _structured if method == "structured" else _jacobian
    with jax.enable_x64(True):
        return np.asarray(fn(arch, params, jnp.asarray(x1), None if x2 is None else jnp.asarray(x2), parametrization))


def empirical_nngp(arch: Architecture, ensemble: Params, x1, x2=None, *, parametrization: str = "ntk") -> np.ndarray:
    """E[f(x1) f(x2)] over an ensemble (params with a leading n_init axis): the Monte Carlo
    NNGP (the mean of f is zero at initialisation, so no centring). -> (N1, N2)."""
    x1 = _check_points(x1, "x1")
    x2 = x1 if x2 is None else _check_points(x2, "x2")
    with jax.enable_x64(True):
        run = jax.vmap(lambda p, x: forward(arch, p, x, parametrization)[0], in_axes=(0, None))
        f1, f2 = run(ensemble, jnp.asarray(x1)), run(ensemble, jnp.asarray(x2))
        return np.asarray(f1.T @ f2 / f1.shape[0])


def input_jacobian_norms(arch: Architecture, params: Params, x, *, parametrization: str = "ntk") -> np.ndarray:
    """||df/dx||_2 at each point of x (N, d) -> (N,): Lipschitz estimates to set beside
    `jacobian_bounds`."""
    x = _check_points(x, "x")
    with jax.enable_x64(True):
        grad = jax.vmap(jax.grad(lambda xi: forward(arch, params, xi[None], parametrization)[0][0]))
        return np.asarray(jnp.linalg.norm(grad(jnp.asarray(x)), axis=1))
