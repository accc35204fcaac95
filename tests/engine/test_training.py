"""Training: the NTK regime against the analytic interpolant, and the bookkeeping (weight
movement against a plain autodiff loop, lr bound, cancel). SGD and Adam: test_update_loops.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine import (
    Architecture,
    Cancelled,
    analytic_kernels,
    circle_grid,
    circle_points,
    kernel_regression,
    paper_target,
    paper_train_angles,
)
from engine.networks import forward, init_params
from engine.training import train

SIX = paper_train_angles(6)
TEN = paper_train_angles(10)


def test_ntk_regime_matches_the_interpolant():
    # The paper's Fig. 1 setting at width 512: L = 5, alpha = 0.1, GD with step 0.5 on the six
    # samples, four initialisations. Measured: mean prediction within 1.3% of the analytic NTK
    # interpolant (max over a 512-point grid; 1.4% at width 1024), kernel drift 0.001-0.012,
    # loss down by 2e-6.
    arch = Architecture("resnet", 5, alpha=0.1)
    x, y, grid = circle_points(SIX), paper_target(SIX), circle_points(circle_grid(512))
    interpolant = kernel_regression(x, y, grid, arch=arch).mean
    run = train(arch, x, y, width=512, seed=0, n_init=4, lr=0.5, steps=300, record_every=300, x_test=grid,
                track_ntk=True)
    assert np.all(run["loss"][:, -1] < 1e-4 * run["loss"][:, 0])
    error = np.max(np.abs(run["mean_prediction"][-1] - interpolant)) / np.max(np.abs(interpolant))
    assert error < 0.03, error
    assert np.all(run["ntk_drift"][:, -1] < 0.02), run["ntk_drift"]


@pytest.mark.parametrize("arch", [Architecture("resnet", 2, alpha=0.5), Architecture("mlp", 2)], ids=str)
def test_kernel_drift_falls_with_width(arch):
    # width 64 -> 1024 should shrink the drift about 4x (n^-1/2); measured 14x (ResNet), 9x (MLP)
    x, y = circle_points(TEN), paper_target(TEN)
    drift = {width: float(np.mean(train(arch, x, y, width=width, seed=0, n_init=4, steps=100, record_every=100,
                                        track_ntk=True)["ntk_drift"][:, -1])) for width in (64, 1024)}
    assert drift[1024] < drift[64] / 3, drift


def test_weight_movement_and_loss_against_a_plain_autodiff_loop():
    arch = Architecture("mlp", 2, sigma_b=0.3)
    x, y = circle_points(TEN), paper_target(TEN)
    run = train(arch, x, y, width=32, seed=4, lr=0.1, steps=7, record_every=7)
    params = jax.tree.map(lambda a: a[0], init_params(arch, 32, 2, seed=4, n_init=1))
    with jax.enable_x64(True):
        loss = lambda p: 0.5 * jnp.sum((forward(arch, p, jnp.asarray(x))[0] - y) ** 2)  # noqa: E731
        moved = 0.0
        for _ in range(7):
            grad = jax.grad(loss)(params)
            moved += 0.1 * float(jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grad))))
            params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grad)
        final = float(loss(params))
    assert run["weight_movement"][0] == pytest.approx(moved, rel=1e-10)
    assert run["loss"][0, -1] == pytest.approx(final, rel=1e-10)


def test_auto_lr_is_below_the_papers_bound():
    arch = Architecture("resnet", 3, alpha=0.5)
    x, y = circle_points(TEN), paper_target(TEN)
    eig = np.linalg.eigvalsh(analytic_kernels(x, arch=arch)["ntk"])
    run = train(arch, x, y, width=64, steps=2)
    assert run["lr_bound"] == pytest.approx(2 / (max(eig[0], 0) + eig[-1]), rel=1e-12)
    assert 0 < run["lr"] < run["lr_bound"]


def test_progress_cancel_and_determinism():
    arch = Architecture("resnet", 2)
    x, y = circle_points(SIX), paper_target(SIX)
    calls = []
    first = train(arch, x, y, width=16, seed=3, steps=10, record_every=4, lr=0.1,
                  progress=lambda step, total, loss: calls.append((step, total)))
    assert calls == [(4, 10), (8, 10), (10, 10)]
    np.testing.assert_array_equal(first["steps"], [0, 4, 8, 10])
    again = train(arch, x, y, width=16, seed=3, steps=10, record_every=4, lr=0.1)
    np.testing.assert_array_equal(first["loss"], again["loss"])
    with pytest.raises(Cancelled):
        train(arch, x, y, width=16, steps=10, record_every=2, lr=0.1, should_stop=lambda: True)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"width": 0}, "width"),
    ({"width": 100_000}, "width"),
    ({"steps": 0}, "steps"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -1.0}, "lr"),
    ({"batch_size": 7}, "batch_size"),
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"y_train": [0.0] * 5 + [float("nan")]}, "y_train"),
    ({"x_train": [[0.0, 1.0]] * 5 + [[float("inf"), 0.0]]}, "x_train"),
    ({"parametrization": "standard", "lr": "auto"}, "parametrization"),
])
def test_bad_training_arguments(kwargs, match):
    args = {"arch": Architecture("resnet", 5), "x_train": circle_points(SIX), "y_train": paper_target(SIX),
            "width": 8, "steps": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        train(args.pop("arch"), args.pop("x_train"), args.pop("y_train"), **args)


def test_new_lr_steps_seed_or_alpha_compile_nothing():
    """Those are values in the compiled chunk; the second run still agrees with plain autodiff."""
    from engine import training

    x, y = circle_points(SIX), paper_target(SIX)
    train(Architecture("resnet", 2, alpha=0.3, sigma_b=0.2), x, y, width=16, seed=1, lr=0.1, steps=6, record_every=3)
    sizes = training._chunk._cache_size(), training._outputs._cache_size()
    arch = Architecture("resnet", 2, alpha=0.7, sigma_w=1.3, sigma_v=0.9, sigma_b=0.5)
    run = train(arch, x, y, width=16, seed=5, lr=0.05, steps=4, record_every=4)
    assert (training._chunk._cache_size(), training._outputs._cache_size()) == sizes
    params = jax.tree.map(lambda a: a[0], init_params(arch, 16, 2, seed=5, n_init=1))
    with jax.enable_x64(True):
        loss = lambda p: 0.5 * jnp.sum((forward(arch, p, jnp.asarray(x))[0] - y) ** 2)  # noqa: E731
        for _ in range(4):
            params = jax.tree.map(lambda p, g: p - 0.05 * g, params, jax.grad(loss)(params))
        assert run["loss"][0, -1] == pytest.approx(float(loss(params)), rel=1e-10)


def test_predictions_after_the_last_step_only_and_keep_best_compiles_one_chunk():
    """predict_every_record=False: one prediction, the same numbers as the last of every record's;
    keep_best compiles its chunk once (a weakly typed best loss compiled it a second time)."""
    from engine import training

    x, y, grid = circle_points(SIX), paper_target(SIX), circle_points(circle_grid(16))
    args = {"width": 8, "n_init": 2, "optimizer": "adam", "lr": 1e-3, "steps": 6, "record_every": 2, "batch_size": 1,
            "parametrization": "xavier", "x_test": grid, "keep_best": True}
    chunks = training._chunk._cache_size()
    every = train(Architecture("resnet", 3, alpha=0.2), x, y, **args)
    assert training._chunk._cache_size() == chunks + 1
    last = train(Architecture("resnet", 3, alpha=0.2), x, y, predict_every_record=False, **args)
    assert every["predictions"].shape == (4, 2, 16) and last["predictions"].shape == (1, 2, 16)
    np.testing.assert_array_equal(last["predictions"][0], every["predictions"][-1])
    np.testing.assert_array_equal(last["best_prediction"], every["best_prediction"])
    np.testing.assert_array_equal(last["loss"], every["loss"])
