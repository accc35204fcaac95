"""Input Jacobians df/dx of kernel predictors and of stacks of trained networks, by autodiff.

A kernel predictor is f(x) = K(x, X) A: X (n, ...) the training points, A (n, C) its weights
(`predictor_weights`), C outputs (one per class of a one-hot regression). Its Jacobian at x is
(C, D), D the entries of one input, computed by forward-mode autodiff (`jax.jvp`, `jax.jacfwd`)
through the kernel's own recursions: `engine.analytic`'s for the dense kinds (activations with a
closed-form dual only), `engine.conv.recursion`'s for the conv kinds. A class stack of scalar
networks, F(x) = (f_1(x), ..., f_C(x)), has the Jacobian of rows grad f_c(x) (reverse mode).

||df/dx|| is the operator 2-norm of the Jacobian (`operator_norms`): for C = 1 the Euclidean norm
of the gradient. Inputs are taken in R^D, the radial direction included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from numpy.typing import ArrayLike

from engine.analytic import hyperparameters, recursion_finish, recursion_start, recursion_step
from engine.architectures import Architecture, Family
from engine.dual import CLOSED_FORMS
from engine.networks import Params, forward, scales
from engine.regression import gram_regression

TANGENT_ENTRIES = 1 << 22  # conv kinds: tangents per pass x training images x pixel pairs at most


def predictor_weights(k_train: ArrayLike, y_train: ArrayLike, *, ridge: float) -> np.ndarray:
    """A (n, C) with k(x)^T A the kernel-regression mean of `engine.regression.gram_regression`
    (ridge relative to the mean diagonal): k_train (n, n), y_train (n,) or (n, C) -> the shape of y."""
    k = np.asarray(k_train, dtype=np.float64)
    scale = float(np.mean(np.diag(k)))
    # the mean at "test points" whose kernel row is scale e_i is the i-th weight times scale
    return gram_regression(k, scale * np.eye(len(k)), y_train, ridge=ridge).mean / scale


def dense_predictor(x: Array, centres: Array, weights: tuple[Array, ...], hyper: Array, depth: Array, *,
                    family: Family, kernels: tuple[str, ...]) -> tuple[Array, ...]:
    """f(x) = K(x, centres) weights for one point x (d,) of a dense kind, per kernel (one recursion for all):
    weights[i] (n, C) or (n,) of kernels[i] -> (C,) or () each."""
    d = x.shape[0]
    q12, q11, q22 = centres @ x / d, x @ x / d, jnp.sum(centres * centres, axis=1) / d
    carry = recursion_start(family, hyper, q12, q11, q22)
    carry = lax.fori_loop(0, depth, recursion_step(family, "closed", hyper, False), carry)
    k = recursion_finish(family, hyper, carry, kernels)
    return tuple(k[name] @ w for name, w in zip(kernels, weights, strict=True))


@partial(jax.jit, static_argnames=("family", "kernels"))
def _dense_jacobians(x: Array, centres: Array, weights: tuple[Array, ...], hyper: Array, depth: Array, *,
                     family: Family, kernels: tuple[str, ...]) -> tuple[Array, ...]:
    one = partial(dense_predictor, family=family, kernels=kernels)
    return jax.vmap(jax.jacfwd(one), in_axes=(0, None, None, None, None))(x, centres, weights, hyper, depth)


def dense_kernel_jacobians(x: ArrayLike, centres: ArrayLike, weights: Mapping[str, ArrayLike], *, arch: Architecture,
                           chunk: int = 64) -> dict[str, np.ndarray]:
    """Jacobians of f(x) = K(x, centres) weights[kernel] at each point of x, for each kernel ("ntk", "nngp")
    named in `weights`: x (m, d), centres (n, d), weights[kernel] (n, C) -> {kernel: (m, C, d)}. Forward-mode
    autodiff through the analytic recursions (one for all the kernels), `chunk` points a call. The
    activation must have a closed-form dual (relu, erf, linear, gelu)."""
    from engine.analytic import check_kernels

    if arch.activation not in CLOSED_FORMS:
        raise ValueError(f"the kernel predictor's Jacobian needs an activation with a closed-form dual "
                         f"{sorted(CLOSED_FORMS)}, got {arch.activation!r}")
    kernels = check_kernels(list(weights))
    x, centres = _checked(x, centres)
    w = tuple(_weights(weights[k], centres) for k in kernels)
    with jax.enable_x64(True):
        hyper, depth = hyperparameters(arch, np.float64)
        parts = [[np.asarray(j)[: len(x[i:i + chunk])] for j in _dense_jacobians(
            _pad(x[i:i + chunk], chunk), centres, w, hyper, depth, family=arch.family, kernels=kernels)]
            for i in range(0, len(x), chunk)]
    return {k: np.concatenate([part[i] for part in parts]) for i, k in enumerate(kernels)}


def conv_kernel_jacobians(x: ArrayLike, centres: ArrayLike, weights: Mapping[str, ArrayLike], *,
                          arch: object) -> dict[str, np.ndarray]:
    """Jacobians of f(x) = K(x, centres) weights[kernel] for the conv kinds (`engine.conv`), each kernel named
    in `weights`: x (m, *S, ch), centres (n, *S, ch), weights[kernel] (n, C) -> {kernel: (m, C, *S, ch)}. One
    forward-mode pass (`jax.jvp` through `engine.conv.recursion.tile`, all the kernels at once) per batch of
    input directions, as many as keep a pass within TANGENT_ENTRIES pixel-pair states."""
    from engine.analytic import check_kernels
    from engine.conv.analytic import hyperparameters as conv_hyperparameters
    from engine.conv.architecture import ConvArchitecture, check_conv_points
    from engine.conv.tiles import pixel_pairs

    if not isinstance(arch, ConvArchitecture):
        raise ValueError(f"arch must be a ConvArchitecture, got {type(arch).__name__}")
    x, centres = check_conv_points(x, arch, "x"), check_conv_points(centres, arch, "centres")
    if x.shape[1:] != centres.shape[1:]:
        raise ValueError(f"x and centres must share one input's shape, got {x.shape}, {centres.shape}")
    kernels = check_kernels(list(weights))
    w = tuple(_weights(weights[k], centres) for k in kernels)
    shape, size = x.shape[1:], math.prod(x.shape[1:])
    per_pass = max(1, min(size, TANGENT_ENTRIES // (len(centres) * pixel_pairs(arch.readout, shape[:-1]))))
    basis = np.eye(size).reshape(size, *shape)
    out = {k: np.empty((len(x), *wk.shape[1:], size)) for k, wk in zip(kernels, w, strict=True)}
    with jax.enable_x64(True):
        hyper, depth = conv_hyperparameters(arch)
        for i, point in enumerate(x):
            for start in range(0, size, per_pass):
                directions = _pad(basis[start:start + per_pass], per_pass)
                tangents = _conv_directional(point, directions, centres, w, hyper, depth, family=arch.family,
                                             kernels=kernels)
                count = min(per_pass, size - start)
                for k, t in zip(kernels, tangents, strict=True):
                    out[k][i, ..., start:start + count] = np.moveaxis(np.asarray(t)[:count], 0, -1)
    return {k: v.reshape(len(x), *v.shape[1:-1], *shape) for k, v in out.items()}


@partial(jax.jit, static_argnames=("family", "kernels"))
def _conv_directional(point: Array, directions: Array, centres: Array, weights: tuple[Array, ...], hyper: Array,
                      depth: Array, *, family: object, kernels: tuple[str, ...]) -> tuple[Array, ...]:
    """The derivatives of each kernel's f at `point` along each of `directions` (k, *S, ch) -> (k, C) each."""
    from engine.conv.recursion import tile

    def f(p: Array) -> tuple[Array, ...]:
        k = tile(p[None], centres, hyper, depth, family=family, kernels=kernels)
        return tuple(k[name][0] @ w for name, w in zip(kernels, weights, strict=True))

    return jax.vmap(lambda v: jax.jvp(f, (point,), (v,))[1])(directions)


def stack_jacobians(arch: Architecture, members: list[Params], x: ArrayLike, *,
                    parametrization: str = "ntk") -> np.ndarray:
    """Jacobians of F(x) = (f_1(x), ..., f_C(x)), f_c the scalar network of `members[c]` (params as from
    `engine.networks.init_params`, no ensemble axis): x (m, d) -> (m, C, d)."""
    x = np.asarray(x, dtype=np.float64)
    width = int(members[0]["w"].shape[-1])
    c = {k: np.float64(v) for k, v in scales(arch, width, x.shape[1], parametrization).items()}
    with jax.enable_x64(True):
        rows = [np.asarray(_gradients(arch.structure(), params, jnp.asarray(x), parametrization, c))
                for params in members]
    return np.stack(rows, axis=1)


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def _gradients(arch: Architecture, params: Params, x: Array, parametrization: str, c: dict[str, Array]) -> Array:
    return jax.vmap(jax.grad(lambda xi: forward(arch, params, xi[None], parametrization, c=c)[0][0]))(x)


def operator_norms(jacobians: ArrayLike) -> np.ndarray:
    """The operator 2-norm (largest singular value) of each Jacobian: (m, C, *D) -> (m,)."""
    j = np.asarray(jacobians, dtype=np.float64)
    flat = j.reshape(j.shape[0], j.shape[1], -1)
    return np.linalg.norm(flat, ord=2, axis=(1, 2))


def _checked(x: ArrayLike, centres: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, centres = np.asarray(x, dtype=np.float64), np.asarray(centres, dtype=np.float64)
    if x.ndim != 2 or centres.ndim != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"shapes disagree: x {x.shape}, centres {centres.shape}; expected (m, d) and (n, d)")
    for name, a in (("x", x), ("centres", centres)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or Inf")
    return x, centres


def _weights(weights: ArrayLike, centres: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim not in (1, 2) or w.shape[0] != centres.shape[0] or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite, (n,) or (n, C) for {centres.shape[0]} centres, got {w.shape}")
    return w


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    """a with its first row repeated up to `size` rows (one compiled shape per chunk size)."""
    return a if len(a) == size else np.concatenate([a, np.repeat(a[:1], size - len(a), axis=0)])

