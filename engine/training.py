"""Training finite networks as the paper does: full-batch gradient descent (the NTK regime),
SGD with a batch size, or Adam, on the loss 1/2 ||f(X) - y||^2 (a sum over the batch, no
1/n), for an ensemble of initialisations: vmapped on an accelerator, network by network on
the CPU, where that measured faster (see `_each`).

Steps run in chunks of `record_every` steps, each chunk one `lax.fori_loop` under `jit`; between
chunks the run records the loss, test predictions and (optionally) the empirical NTK's
drift, reports progress and may be cancelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from numpy.typing import ArrayLike

from engine.analytic import analytic_kernels, check_points
from engine.architectures import Architecture
from engine.conv import empirical as conv_empirical
from engine.conv import networks as conv_networks
from engine.conv import training as conv_training
from engine.conv.architecture import ConvArchitecture, check_conv_points
from engine.empirical import bias_signals, pair_gram, signals, structured_ntk
from engine.networks import Params, Scales, check_network, ensemble_keys, forward, init_ensemble, scales
from engine.tiling import Cancelled

OPTIMIZERS = ("gd", "sgd", "adam")
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8
T = TypeVar("T")


class State(NamedTuple):
    params: Params
    m: Params | None  # Adam's moments (None for gd and sgd)
    v: Params | None
    movement: jnp.ndarray  # sum_j ||theta_j - theta_{j-1}||_2
    step: jnp.ndarray
    best: Params | None = None  # keep_best: the parameters of the lowest full training loss so far
    best_loss: jnp.ndarray | None = None


# what the compiled chunks are specialised on: a dense Architecture's structure, or a conv net's family
Static = Architecture | conv_networks.ConvFamily


def _forward(arch: Static, parametrization: str, c: Scales, params: Params, x: Array) -> Array:
    if isinstance(arch, conv_networks.ConvFamily):
        return conv_networks.forward(arch, params, x, c)[0]
    return forward(arch, params, x, parametrization, c=c)[0]


def _loss_gradient(arch: Static, parametrization: str, c: Scales, params: Params, x: Array,
                   y: Array) -> tuple[dict[str, Array], Array]:
    """Gradient of 1/2 ||f(x) - y||^2 and its squared norm, from the layers' signals:
    dL/dM = c D^T H for y = c M h, and ||grad||^2 = r^T Theta r costs O(B^2 width) (no
    extra pass over the weights). Conv nets: autodiff (`engine.conv.training`)."""
    if isinstance(arch, conv_networks.ConvFamily):
        return conv_training.loss_gradient(arch, c, params, x, y)
    c, h, d, r = signals(arch, params, x, parametrization, y, c)
    grads = {name: c[name] * jnp.einsum("...bo,...bi->...oi", d[name], h[name]) for name in d}
    grads["w"] = c["w"] * h["w"].T @ r
    if "b" in params:
        grads["b"] = c["b"] * bias_signals(arch, d).sum(1)
        grads["b_out"] = c["b_out"] * r.sum()
    if "bU" in params:
        grads["bU"], grads["bV"] = c["bU"] * d["U"].sum(0), c["bV"] * d["V"].sum(1)
    norm2 = jnp.sum(pair_gram(arch, "b" in params, c, (h, d, r), (h, d, r)))
    return grads, norm2


def _each(fn: Callable[..., T], *stacked: Any) -> T:
    """fn over the leading (network) axis of `stacked`: vmap, or a plain call for a single
    network (XLA:CPU runs vmap's batched products slower than plain ones, even for one)."""
    if jax.tree.leaves(stacked)[0].shape[0] == 1:
        return jax.tree.map(lambda a: a[None], fn(*jax.tree.map(lambda a: a[0], stacked)))
    return jax.vmap(fn)(*stacked)


def _keep_best(arch: Static, parametrization: str, c: Scales, s: State, x: Array, y: Array) -> State:
    """s with s.best / s.best_loss updated by the current parameters' full training loss."""
    assert s.best_loss is not None  # a keep_best state carries both best and best_loss
    loss = 0.5 * jnp.sum((_forward(arch, parametrization, c, s.params, x) - y) ** 2)
    better = loss < s.best_loss
    best = jax.tree.map(lambda p, b: jnp.where(better, p, b), s.params, s.best)
    return s._replace(best=best, best_loss=jnp.where(better, loss, s.best_loss))


@partial(jax.jit, static_argnames=("arch", "parametrization", "optimizer", "batch_size"))
def _chunk(state: State, keys: Array, x: Array, y: Array, lr: Array, length: Array, c: Scales, *, arch: Static,
           parametrization: str, optimizer: str, batch_size: int | None) -> State:
    """`length` steps for a group of networks (leading axis of state and keys). lr, length and
    the scales c are values: a new lr, step count or alpha reuses the compiled chunk."""
    gradient = partial(_loss_gradient, arch, parametrization, c)

    def network(state: State, key: Array) -> State:
        def step(_: Array, s: State) -> State:
            if s.best is not None:
                s = _keep_best(arch, parametrization, c, s, x, y)
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
                g = jax.tree.map(lambda a, b: (a / (1 - ADAM_B1**t)) / (jnp.sqrt(b / (1 - ADAM_B2**t)) + ADAM_EPS),
                                 m, v)
                size = jnp.sqrt(sum(jnp.sum(u * u) for u in jax.tree.leaves(g)))
            params = jax.tree.map(lambda p, u: p - lr * u, s.params, g)
            return State(params, m, v, s.movement + lr * size, s.step + 1, s.best, s.best_loss)

        return lax.fori_loop(0, length, step, state)

    return _each(network, state, keys)


@partial(jax.jit, static_argnames=("arch", "parametrization", "track_ntk"))
def _outputs(params: Params, x: Array, y: Array, x_test: Array | None, c: Scales, *, arch: Static,
             parametrization: str, track_ntk: bool) -> tuple[Array, Array | None, Array | None]:
    """For a group of networks: the loss on (x, y), predictions on x_test (or None) and the
    empirical NTK on x (or None)."""

    def network(p: Params) -> tuple[Array, Array | None, Array | None]:
        f = _forward(arch, parametrization, c, p, x)
        test = _forward(arch, parametrization, c, p, x_test) if x_test is not None else None
        ntk = None
        if track_ntk:
            conv = isinstance(arch, conv_networks.ConvFamily)
            ntk = (conv_empirical.structured_ntk(arch, p, x, None, c) if conv
                   else structured_ntk(arch, p, x, None, parametrization, c))
        return 0.5 * jnp.sum((f - y) ** 2), test, ntk

    return _each(network, params)


def _gather(groups: list[State]) -> dict[str, np.ndarray]:
    """The groups' parameters as host arrays with a leading n_init axis, freeing each group
    as it is copied (so the ensemble is never held twice)."""
    n_init = sum(g.movement.shape[0] for g in groups)
    out = {name: np.empty((n_init, *a.shape[1:]), a.dtype) for name, a in groups[0].params.items()}
    start = 0
    while groups:
        params = groups.pop(0).params
        size = next(iter(params.values())).shape[0]
        for name, a in params.items():
            out[name][start:start + size] = np.asarray(a)
        start += size
        del params
    return out


def _points(arch: Architecture | ConvArchitecture, value: ArrayLike, name: str) -> np.ndarray:
    if isinstance(arch, ConvArchitecture):
        return check_conv_points(value, arch, name)
    return check_points(value, name)


def _network(arch: Architecture | ConvArchitecture, width: int, x: np.ndarray, seed: int, n_init: int,
             parametrization: str) -> tuple[float, Static, dict[str, np.float64], Callable[[Array], Params]]:
    """(the lr bound, the static structure, the scales as values, a draw of the networks of
    some keys) of `arch` on x; ValueError for a network that cannot be built."""
    if isinstance(arch, ConvArchitecture):
        conv_networks.check_network(arch, width, x.shape[1:], parametrization)
        fam, c = conv_networks.family(arch), conv_empirical.multipliers(arch, width, x.shape[1:])
        first = conv_networks.init_ensemble(arch, width, x.shape[1:], ensemble_keys(seed, n_init)[:1])
        bound = conv_training.lr_bound(fam, {k: v[0] for k, v in first.items()}, x, c)
        return bound, fam, c, partial(conv_networks.init_ensemble, arch, width, x.shape[1:])
    check_network(arch, width, x.shape[1], parametrization)
    c = {k: np.float64(v) for k, v in scales(arch, width, x.shape[1], parametrization).items()}
    draw = partial(init_ensemble, arch, width, x.shape[1], parametrization=parametrization)
    return lr_bound(arch, x), arch.structure(), c, draw


def lr_bound(arch: Architecture, x_train: ArrayLike) -> float:
    """The paper's step bound 2 / (lambda_min + lambda_max) of the analytic NTK on x_train."""
    eig = np.linalg.eigvalsh(analytic_kernels(x_train, arch=arch, kernels=("ntk",))["ntk"])
    return float(2.0 / (max(eig[0], 0.0) + eig[-1]))


def train(
    arch: Architecture | ConvArchitecture, x_train: ArrayLike, y_train: ArrayLike, *, width: int, seed: int = 0,
    n_init: int = 1, optimizer: str = "gd", lr: float | str = "auto", steps: int = 1000,
    batch_size: int | None = None, parametrization: str = "ntk", x_test: ArrayLike | None = None,
    record_every: int | None = None, predict_every_record: bool = True, track_ntk: bool = False,
    keep_best: bool = False, progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train n_init networks of `arch` (width `width`) on (x_train (n, d), y_train (n,)).

    A ConvArchitecture trains its conv net (width channels) on x_train (n, *S, C) alike (NTK
    parametrisation only); its lr bound is that of the first network's empirical NTK at
    initialisation (`engine.conv.training`).

    lr: a step size > 0, or "auto": half the bound 2 / (lambda_min + lambda_max) of the
    analytic NTK on x_train (NTK parametrisation only). batch_size: None = full batch;
    with "sgd" the default is 1, as in the paper. record_every: steps between records
    (default steps / 20). predict_every_record: False predicts on x_test after the last step
    only ("predictions" (1, n_init, m)), saving a forward pass over x_test per record when
    only the trained function is wanted. progress(step, steps, mean loss) after each chunk;
    should_stop() between chunks, true -> `Cancelled`. keep_best: keep each network's parameters at its
    lowest full training loss over all steps (evaluated before every step and after the
    last), as the paper's Figs. 4-5 do: "params" are those, and the result adds "best_loss"
    (n_init,) and "best_prediction" (n_init, m) on x_test (or None).

    Returns {"steps": (R,), "loss": (n_init, R), "predictions": (R, n_init, m) (R = 1 without
    predict_every_record) or None, "mean_prediction": (R, m) or None, "weight_movement": (n_init,), "ntk_drift":
    (n_init, R) or None (||Theta_t - Theta_0||_F / ||Theta_0||_F on x_train), "lr", "lr_bound",
    "params": the final parameters as numpy arrays (leading axis n_init; network i starts
    as `init_params(arch, width, d, seed, n_init=n_init)` network i)}.
    """
    x = _points(arch, x_train, "x_train")
    try:
        y = np.asarray(y_train, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y_train must be an array of numbers: {exc}") from exc
    if y.shape != (x.shape[0],) or not np.all(np.isfinite(y)):
        raise ValueError(f"y_train must be a finite array of shape ({x.shape[0]},), got shape {y.shape}")
    if x_test is not None:
        x_test = _points(arch, x_test, "x_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"x_test must have the shape of x_train per point {x.shape[1:]}, got {x_test.shape}")
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
    bound, structure, c, draw = _network(arch, width, x, seed, n_init, parametrization)
    if lr == "auto":
        if parametrization != "ntk":
            raise ValueError("lr='auto' uses the analytic NTK, so it needs parametrization='ntk'; give lr")
        lr = 0.5 * bound
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a number > 0 or 'auto', got {lr!r}")

    # Networks advance in groups: the whole ensemble under vmap on an accelerator, one by one
    # on the CPU (see `_each`).
    group = n_init if jax.default_backend() != "cpu" else 1
    all_keys = ensemble_keys(seed, n_init)
    # the architecture's numbers enter as values (c), its structure as the static key
    static = {"arch": structure, "parametrization": parametrization}
    with jax.enable_x64(True):
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        xt = None if x_test is None else jnp.asarray(x_test)
        groups, batch_keys = [], []
        for start in range(0, n_init, group):
            keys = all_keys[start:start + group]
            params = draw(keys)
            moments = jax.tree.map(jnp.zeros_like, params) if optimizer == "adam" else None
            # float64 explicitly: a weakly typed inf would compile the chunk a second time
            initial_best = (params, jnp.full(len(keys), jnp.inf, jnp.float64)) if keep_best else (None, None)
            groups.append(State(params, moments, moments, jnp.zeros(len(keys)), jnp.zeros(len(keys), jnp.int32),
                                *initial_best))
            batch_keys.append(jax.vmap(lambda key: jax.random.fold_in(key, 1))(keys))  # per network
        records: dict[str, list[Any]] = {"steps": [], "loss": [], "predictions": [], "ntk_drift": []}
        ntk0: np.ndarray | None = None

        def record(step: int) -> float:
            nonlocal ntk0
            test = xt if predict_every_record or step == steps else None
            outputs = [_outputs(g.params, xj, yj, test, c, track_ntk=track_ntk, **static) for g in groups]
            records["steps"].append(step)
            records["loss"].append(np.concatenate([np.asarray(loss) for loss, _, _ in outputs]))
            if test is not None:
                records["predictions"].append(np.concatenate([np.asarray(pred) for _, pred, _ in outputs]))
            if track_ntk:
                ntk = np.concatenate([np.asarray(k) for _, _, k in outputs])
                ntk0 = ntk if ntk0 is None else ntk0
                drift = np.linalg.norm(ntk - ntk0, axis=(1, 2)) / np.linalg.norm(ntk0, axis=(1, 2))
                records["ntk_drift"].append(drift)
            return float(np.mean(records["loss"][-1]))

        record(0)
        done = 0
        while done < steps:
            length = min(record_every, steps - done)
            groups = [_chunk(g, k, xj, yj, np.float64(lr), np.int32(length), c, optimizer=optimizer,
                             batch_size=batch_size, **static)
                      for g, k in zip(groups, batch_keys, strict=True)]
            done += length
            loss = record(done)
            if not math.isfinite(loss):
                raise ValueError(f"training diverged at step {done} (loss {loss}); lower lr (bound {bound:.3g})")
            if progress is not None:
                progress(done, steps, loss)
            if should_stop is not None and done < steps and should_stop():
                raise Cancelled(f"training was cancelled at step {done} of {steps}")
        predictions = np.stack(records["predictions"]) if records["predictions"] else None
        movement = np.concatenate([np.asarray(g.movement) for g in groups])
        best: dict[str, np.ndarray | None] = {}
        if keep_best:  # the last step's parameters may be the best: their loss is the last record's
            final, start = records["loss"][-1], 0
            for i, g in enumerate(groups):
                assert g.best_loss is not None  # keep_best: every group carries its best
                size = g.best_loss.shape[0]
                better = jnp.asarray(final[start:start + size] < np.asarray(g.best_loss))
                start += size
                pick = lambda p, b, better=better: jnp.where(better.reshape((-1,) + (1,) * (p.ndim - 1)), p, b)  # noqa: E731
                groups[i] = g._replace(params=jax.tree.map(pick, g.params, g.best))
            outputs = [_outputs(g.params, xj, yj, xt, c, track_ntk=False, **static) for g in groups]
            best = {"best_loss": np.concatenate([np.asarray(loss) for loss, _, _ in outputs]),
                    "best_prediction": None if xt is None else np.concatenate([np.asarray(p) for _, p, _ in outputs])}
        return best | {
            "steps": np.asarray(records["steps"]), "loss": np.stack(records["loss"], axis=1),
            "predictions": predictions, "mean_prediction": None if predictions is None else predictions.mean(1),
            "weight_movement": movement, "lr": float(lr), "lr_bound": bound,
            "ntk_drift": np.stack(records["ntk_drift"], axis=1) if track_ntk else None, "params": _gather(groups),
        }
