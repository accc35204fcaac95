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
from engine.empirical import _structured
from engine.networks import Params, forward, init_params

OPTIMIZERS = ("gd", "sgd", "adam")
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


class State(NamedTuple):
    params: Params
    m: Params  # Adam's moments (zeros, unused, for gd and sgd)
    v: Params
    movement: jnp.ndarray  # sum_j ||theta_j - theta_{j-1}||_2
    step: jnp.ndarray


def _loss(arch, parametrization, params, x, y):
    f = forward(arch, params, x, parametrization)[0]
    return 0.5 * jnp.sum((f - y) ** 2)


@partial(jax.jit, static_argnames=("arch", "parametrization", "optimizer", "batch_size", "length"))
def _chunk(state: State, keys, x, y, lr, *, arch, parametrization, optimizer, batch_size, length):
    """`length` steps for every network of the ensemble (leading axis of state and keys)."""
    grad = jax.grad(partial(_loss, arch, parametrization))

    def one_network(state, key):
        def step(s: State, _):
            if batch_size is None:
                xb, yb = x, y
            else:
                idx = jax.random.choice(jax.random.fold_in(key, s.step), x.shape[0], (batch_size,), replace=False)
                xb, yb = x[idx], y[idx]
            g = grad(s.params, xb, yb)
            m, v = s.m, s.v
            if optimizer == "adam":
                t = s.step + 1
                m = jax.tree.map(lambda a, b: ADAM_B1 * a + (1 - ADAM_B1) * b, m, g)
                v = jax.tree.map(lambda a, b: ADAM_B2 * a + (1 - ADAM_B2) * b * b, v, g)
                update = jax.tree.map(
                    lambda a, b: (a / (1 - ADAM_B1**t)) / (jnp.sqrt(b / (1 - ADAM_B2**t)) + ADAM_EPS), m, v)
            else:
                update = g
            params = jax.tree.map(lambda p, u: p - lr * u, s.params, update)
            size = jnp.sqrt(sum(jnp.sum(u * u) for u in jax.tree.leaves(update)))
            return State(params, m, v, s.movement + lr * size, s.step + 1), None

        return lax.scan(step, state, None, length=length)[0]

    return jax.vmap(one_network)(state, keys)


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def _record(params, x, y, x_test, *, arch, parametrization):
    run = jax.vmap(lambda p, x: forward(arch, p, x, parametrization)[0], in_axes=(0, None))
    f = run(params, x)
    return 0.5 * jnp.sum((f - y) ** 2, axis=1), (run(params, x_test) if x_test is not None else None)


@partial(jax.jit, static_argnames=("arch", "parametrization"))
def _ntks(params, x, *, arch, parametrization):
    return jax.vmap(lambda p: _structured(arch, p, x, None, parametrization))(params)


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

    params = init_params(arch, width, x.shape[1], seed, parametrization, n_init=n_init)
    static = {"arch": arch, "parametrization": parametrization}
    with jax.enable_x64(True):
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        xt = None if x_test is None else jnp.asarray(x_test)
        zeros = jax.tree.map(jnp.zeros_like, params)
        state = State(params, zeros, zeros, jnp.zeros(n_init), jnp.zeros(n_init, jnp.int32))
        keys = jax.random.split(jax.random.PRNGKey(seed + 1), n_init)
        ntk0 = _ntks(params, xj, **static) if track_ntk else None
        records = {"steps": [], "loss": [], "predictions": [], "ntk_drift": []}

        def record(step, state):
            loss, pred = _record(state.params, xj, yj, xt, **static)
            records["steps"].append(step)
            records["loss"].append(np.asarray(loss))
            if pred is not None:
                records["predictions"].append(np.asarray(pred))
            if track_ntk:
                diff = _ntks(state.params, xj, **static) - ntk0
                records["ntk_drift"].append(np.asarray(
                    jnp.linalg.norm(diff, axis=(1, 2)) / jnp.linalg.norm(ntk0, axis=(1, 2))))
            return float(np.mean(records["loss"][-1]))

        record(0, state)
        done = 0
        while done < steps:
            length = min(record_every, steps - done)
            state = _chunk(state, keys, xj, yj, lr, optimizer=optimizer, batch_size=batch_size, length=length,
                           **static)
            done += length
            loss = record(done, state)
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
            "weight_movement": np.asarray(state.movement), "lr": float(lr), "lr_bound": bound,
            "ntk_drift": np.stack(records["ntk_drift"], axis=1) if track_ntk else None, "params": state.params,
        }
