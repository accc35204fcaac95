"""Training with keep_best: the kept networks are those of the lowest full training loss,
against the loss recorded at every step by the ordinary path (a separate computation)."""

import numpy as np

from engine import Architecture, circle_points, paper_target, paper_train_angles
from engine.empirical import empirical_ntk
from engine.training import train


def test_keep_best_keeps_the_lowest_recorded_loss():
    b = paper_train_angles(8)
    x, y = circle_points(b), paper_target(b)
    arch = Architecture("resnet", 1, alpha=0.5)
    run = train(arch, x, y, width=8, n_init=2, optimizer="adam", lr=0.2, steps=30, batch_size=1,
                parametrization="xavier", x_test=x, record_every=1, keep_best=True)
    lowest = run["loss"].min(axis=1)
    np.testing.assert_allclose(run["best_loss"], lowest, rtol=1e-12)
    assert np.all(lowest < run["loss"][:, -1])  # a large step: the last network is not the best one here
    kept = 0.5 * np.sum((run["best_prediction"] - y) ** 2, axis=1)  # predictions on x_test = x
    np.testing.assert_allclose(kept, lowest, rtol=1e-12)
    ntk = empirical_ntk(arch, {k: v[0] for k, v in run["params"].items()}, x, parametrization="xavier")
    assert ntk.shape == (8, 8)  # "params" are the kept networks, usable as any


def test_keep_best_can_keep_the_last_step():
    """Full-batch GD at a small step lowers the loss at every step: the kept networks are the final ones."""
    b = paper_train_angles(6)
    x, y = circle_points(b), paper_target(b)
    arch = Architecture("mlp", 1)
    kept = train(arch, x, y, width=8, n_init=2, lr=0.01, steps=12, x_test=x, keep_best=True)
    plain = train(arch, x, y, width=8, n_init=2, lr=0.01, steps=12, x_test=x)
    assert np.all(np.diff(plain["loss"], axis=1) < 0)
    np.testing.assert_allclose(kept["best_loss"], plain["loss"][:, -1], rtol=1e-12)
    for name, value in plain["params"].items():
        np.testing.assert_array_equal(kept["params"][name], value)
