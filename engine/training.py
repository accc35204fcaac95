"""Training finite networks as the paper does: full-batch gradient descent (the NTK regime),
SGD with a batch size, or Adam, on the loss 1/2 ||f(X) - y||^2 (a sum over the batch, no
1/n), for an ensemble of initialisations at once (vmap).

Steps run in chunks of `record_every` steps, each chunk one `lax.scan` under `jit`; between
chunks the run records the loss, test predictions and (optionally) the empirical NTK's
drift, reports progress and may be cancelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from engine.analytic import Cancelled, _check_points, analytic_kernels
from engine.architectures import Architecture
from engine.empirical import _structured, bias_signals, pair_gram, signals
from engine.networks import Params, forward, init_params

OPTIMIZERS = ("gd", "sgd", "adam")
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


class State(NamedTuple):
    params: Params
    m: Params | None  # Adam's moments (None for gd and sgd)
    v: Params | None
    movement: jnp.ndarray  # sum_j ||theta_j - theta_{j-1}||_2
    step: jnp.ndarray


def _loss_gradient(arch, parametrization, params, x, y):
    """Gradient of 1/2 ||f(x) - y||^2 and its squared norm, from the layers' signals:
    dL/dM = c D^T H for y = c M h, and ||grad||^2 = r^T Theta r costs O(B^2 width) (no
    extra pass over the weights)."""
    c, h, d, r = signals(arch, params, x, parametrization, y)
    grads = {name: c[name] * jnp.einsum("...bo,...bi->...oi", d[name], h[name]) for name in d}
    grads["w"] = c["w"] * h["w"].T @ r
    if "b" in params:
        grads["b"] = c["b"] * bias_signals(arch, d).sum(1)
        grads["b_out"] = c["b_out"] * r.sum()
    norm2 = jnp.sum(pair_gram(arch, "b" in params, c, (h, d, r), (h, d, r)))
    return grads, norm2


@partial(jax.jit, static_argnames=("arch", "parametrization", "optimizer", "batch_size", "length"))
def _chunk(state: State, key, x, y, lr, *, arch, parametrization, optimizer, batch_size, length) -> State:
    """`length` steps of one network. (The ensemble runs network by network: XLA's batched
    matrix products under vmap are slower on CPU than a loop of plain ones.)"""
    gradient = partial(_loss_gradient, arch, parametrization)

    def step(s: State, _):
        if batch_size is None:
            xb, yb = x, y
        else:
            idx = jax.random.choice(jax.random.fold_in(key, s.step), x.shape[0], (batch_size,), replace=False)
            xb, yb = x[idx], y[idx]
        g, norm2 = gradient(s.params, xb, yb)
        m, v, size = s.m, s.v, jnp.sqrt(jnp.maximum(norm2, 0.0))
        if optimizer == "adam":
            t = s.step + 1
            m = jax.tree.map(lambda a, b: ADAM_B1 * a + (1 - ADAM_B1) * b, m, g)
            v = jax.tree.map(lambda a, b: ADAM_B2 * a + (1 - ADAM_B2) * b * b, v, g)
            g = jax.tree.map(lambda a, b: (a / (1 - ADAM_B1**t)) / (jnp.sqrt(b / (1 - ADAM_B2**t)) + ADAM_EPS), m, v)
            size = jnp.sqrt(sum(jnp.sum(u * u) for u in jax.tree.leaves(g)))
        params = jax.tree.map(lambda p, u: p - lr * u, s.params, g)
        return State(params, m, v, s.movement + lr * size, s.step + 1), None

    return lax.scan(step, state, None, length=length)[0]


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def _outputs(params, x, y, x_test, *, arch, parametrization):
    """One network's loss on (x, y) and predictions on x_test (or None)."""
    f = forward(arch, params, x, parametrization)[0]
    test = forward(arch, params, x_test, parametrization)[0] if x_test is not None else None
    return 0.5 * jnp.sum((f - y) ** 2), test


_ntk = jax.jit(_structured, static_argnames=("arch", "parametrization"))


def lr_bound(arch: Architecture, x_train) -> float:
    """The paper's step bound 2 / (lambda_min + lambda_max) of the analytic NTK on x_train."""
    eig = np.linalg.eigvalsh(analytic_kernels(x_train, arch=arch, kernels=("ntk",))["ntk"])
    return float(2.0 / (max(eig[0], 0.0) + eig[-1]))


def train(
    arch: Architecture, x_train, y_train, *, width: int, seed: int = 0, n_init: int = 1, optimizer: str = "gd",
    lr: float | str = "auto", steps: int = 1000, batch_size: int | None = None, parametrization: str = "ntk",
    x_test=None, record_every: int | None = None, track_ntk: bool = False,
    progress: Callable[[int, int, float], None] | None = None, should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train n_init networks of `arch` (width `width`) on (x_train (n, d), y_train (n,)).

    lr: a step size > 0, or "auto": half the bound 2 / (lambda_min + lambda_max) of the
    analytic NTK on x_train (NTK parametrisation only). batch_size: None = full batch;
    with "sgd" the default is 1, as in the paper. record_every: steps between records
    (default steps / 20). progress(step, steps, mean loss) after each chunk; should_stop()
    between chunks, true -> `Cancelled`.

    Returns {"steps": (R,), "loss": (n_init, R), "predictions": (R, n_init, m) or None,
    "mean_prediction": (R, m) or None, "weight_movement": (n_init,), "ntk_drift":
    (n_init, R) or None (||Theta_t - Theta_0||_F / ||Theta_0||_F on x_train), "lr", "lr_bound",
    "params": the final parameters (leading axis n_init)}.
    """
    x = _check_points(x_train, "x_train")
    y = np.asarray(y_train, dtype=np.float64)
    if y.shape != (x.shape[0],) or not np.all(np.isfinite(y)):
        raise ValueError(f"y_train must be a finite array of shape ({x.shape[0]},), got shape {y.shape}")
    x_test = None if x_test is None else _check_points(x_test, "x_test")
    if x_test is not None and x_test.shape[1] != x.shape[1]:
        raise ValueError(f"x_test must have dimension {x.shape[1]}, got {x_test.shape}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    for name, value in (("steps", steps), ("n_init", n_init)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if optimizer == "sgd" and batch_size is None:
        batch_size = 1
    if batch_size is not None and (not isinstance(batch_size, int) or not 1 <= batch_size <= x.shape[0]):
        raise ValueError(f"batch_size must be an integer in [1, {x.shape[0]}] (the training set), got {batch_size!r}")
    if batch_size == x.shape[0]:
        batch_size = None
    record_every = record_every or max(1, steps // 20)
    if not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be an integer >= 1, got {record_every!r}")
    bound = lr_bound(arch, x)
    if lr == "auto":
        if parametrization != "ntk":
            raise ValueError("lr='auto' uses the analytic NTK, so it needs parametrization='ntk'; give lr")
        lr = 0.5 * bound
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a number > 0 or 'auto', got {lr!r}")

    ensemble = init_params(arch, width, x.shape[1], seed, parametrization, n_init=n_init)
    static = {"arch": arch, "parametrization": parametrization}
    with jax.enable_x64(True):
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        xt = None if x_test is None else jnp.asarray(x_test)
        keys = jax.random.split(jax.random.PRNGKey(seed + 1), n_init)
        states = []
        for i in range(n_init):
            params = jax.tree.map(lambda a, i=i: a[i], ensemble)
            moments = jax.tree.map(jnp.zeros_like, params) if optimizer == "adam" else None
            states.append(State(params, moments, moments, jnp.zeros(()), jnp.zeros((), jnp.int32)))
        del ensemble
        ntk0 = [_ntk(arch, s.params, xj, None, parametrization) for s in states] if track_ntk else None
        records = {"steps": [], "loss": [], "predictions": [], "ntk_drift": []}

        def record(step):
            outputs = [_outputs(s.params, xj, yj, xt, **static) for s in states]
            records["steps"].append(step)
            records["loss"].append(np.array([float(loss) for loss, _ in outputs]))
            if xt is not None:
                records["predictions"].append(np.stack([np.asarray(pred) for _, pred in outputs]))
            if track_ntk:
                records["ntk_drift"].append(np.array([
                    float(jnp.linalg.norm(_ntk(arch, s.params, xj, None, parametrization) - k0) / jnp.linalg.norm(k0))
                    for s, k0 in zip(states, ntk0, strict=True)]))
            return float(np.mean(records["loss"][-1]))

        record(0)
        done = 0
        while done < steps:
            length = min(record_every, steps - done)
            states = [_chunk(s, k, xj, yj, lr, optimizer=optimizer, batch_size=batch_size, length=length, **static)
                      for s, k in zip(states, keys, strict=True)]
            done += length
            loss = record(done)
            if not math.isfinite(loss):
                raise ValueError(f"training diverged at step {done} (loss {loss}); lower lr (bound {bound:.3g})")
            if progress is not None:
                progress(done, steps, loss)
            if should_stop is not None and done < steps and should_stop():
                raise Cancelled(f"training was cancelled at step {done} of {steps}")
        predictions = np.stack(records["predictions"]) if records["predictions"] else None
        return {
            "steps": np.asarray(records["steps"]), "loss": np.stack(records["loss"], axis=1),
            "predictions": predictions, "mean_prediction": None if predictions is None else predictions.mean(1),
            "weight_movement": np.array([float(s.movement) for s in states]), "lr": float(lr), "lr_bound": bound,
            "ntk_drift": np.stack(records["ntk_drift"], axis=1) if track_ntk else None,
            "params": jax.tree.map(lambda *leaves: jnp.stack(leaves), *[s.params for s in states]),
        }
