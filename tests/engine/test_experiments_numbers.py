"""Every experiment at tiny scale, number by number: its arrays and tables equal direct
engine calls (or eigenvalues / kernels computed here), accuracies and errors under bounds.
Experiments are called through `engine.experiments.run(name, scale, overrides)` only."""

import math

import numpy as np
import pytest

from engine import (
    Architecture,
    analytic_kernels,
    circle_grid,
    circle_interpolation,
    circle_points,
    empirical_ntk,
    ensemble_member,
    init_params,
    input_jacobian_norms,
    jacobian_bounds,
    kernel_regression,
    mu_curvature,
    mu_rkhs,
    paper_target,
    paper_train_angles,
    train,
)
from engine.experiments import run

MLP2, RESNET2 = Architecture("mlp", 2), Architecture("resnet", 2, alpha=0.1)


def profile(arch, angles, kernel="ntk"):
    """K((1, 0), (cos a, sin a)) / K((1, 0), (1, 0)), from the Gram matrix directly."""
    anchor = np.array([[1.0, 0.0]])
    row = analytic_kernels(anchor, np.vstack([anchor, circle_points(angles)]), arch=arch, kernels=(kernel,))[kernel][0]
    return row[1:] / row[0]


def test_kernel_shapes():
    data = run("kernel-shapes", "quick", {"depths": [2], "alphas": [0.1], "n_angles": 33, "kernels": ["ntk", "nngp"]})
    angles = data["angles"]
    np.testing.assert_allclose(angles, np.linspace(-np.pi, np.pi, 33))
    for kernel in ("ntk", "nngp"):
        for curve, arch in zip(data[kernel][0], (MLP2, RESNET2), strict=True):
            np.testing.assert_allclose(curve, profile(arch, angles, kernel), rtol=1e-12, atol=1e-15)
    for row in data["tables"]["profile"]:  # kernels.md section 6: 1.0508, 0.0081, -1.0010 (4 decimals)
        assert abs(row["measured"] - row["published"]) < 5e-5, row


def test_interpolation():
    data = run("interpolation", "quick", {"depths": [2], "n_trains": [6], "alphas": [0.1], "n_grid": 256})
    (row,) = data["tables"]["mu"]
    for c, (label, arch) in enumerate((("MLP", MLP2), ("ResNet alpha=0.1", RESNET2))):
        fit = circle_interpolation(arch, 6, n_grid=256)
        np.testing.assert_allclose(data["interpolants"][0, 0, c], fit["interpolant"], rtol=1e-12, atol=1e-14)
        assert row[label] == pytest.approx(mu_curvature(fit["interpolant"]), rel=1e-12)
    np.testing.assert_allclose(data["train_values_6"], paper_target(paper_train_angles(6)))


def test_finite_vs_infinite():
    width, n_init, steps, lr = 128, 2, 40, 0.5
    data = run("finite-vs-infinite", "quick", {"width": width, "n_init": n_init, "n_trains": [6], "steps": steps,
                                               "lrs": [lr], "n_angles": 17, "n_grid": 64})
    arch = Architecture("resnet", 5, alpha=0.1)
    b = paper_train_angles(6)
    x, y, grid = circle_points(b), paper_target(b), circle_points(circle_grid(64))
    # the NTK regression mean at time t = lr x steps (gradient flow on 1/2 ||f - y||^2)
    np.testing.assert_allclose(data["ntk_mean_6"], kernel_regression(x, y, grid, arch=arch, t=lr * steps).mean,
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(data["interpolant_6"], kernel_regression(x, y, grid, arch=arch).mean, rtol=1e-8,
                               atol=1e-12)
    anchor = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(data["analytic_ntk"], analytic_kernels(anchor, circle_points(data["angles"]),
                                                                      arch=arch)["ntk"][0], rtol=1e-12)
    ensemble = init_params(arch, width, 2, 0, n_init=n_init)
    for i in range(n_init):
        direct = empirical_ntk(arch, ensemble_member(ensemble, i), anchor, circle_points(data["angles"]))[0]
        np.testing.assert_allclose(data["empirical_ntk"][i], direct, rtol=1e-10)
    (row,) = data["tables"]["training"]
    error = np.max(np.abs(data["predictions_6"].mean(0) - data["ntk_mean_6"])) / np.max(np.abs(data["ntk_mean_6"]))
    assert row["ensemble mean vs NTK at t (relative max error)"] == pytest.approx(error, rel=1e-12)
    assert error < 0.15, error  # width 128, two networks: measured 0.05
    assert row["final loss (mean)"] == pytest.approx(data["loss_6"][:, -1].mean(), rel=1e-12)
    assert data["loss_6"][:, -1].mean() < 0.2 * data["loss_6"][:, 0].mean()


def test_beyond_ntk():
    params = {"width": 16, "n_init": 2, "alphas": [0.1], "n_trains": [6], "steps": 20, "optimizers": ["adam"],
              "lrs": [0.01], "n_grid": 64}
    data = run("beyond-ntk", "quick", params)
    b = paper_train_angles(6)
    x, y, grid = circle_points(b), paper_target(b), circle_points(circle_grid(64))
    for row, arch in zip(data["tables"]["mu"], (Architecture("mlp", 5), Architecture("resnet", 5, alpha=0.1)),
                         strict=True):
        direct = train(arch, x, y, width=16, seed=0, n_init=2, optimizer="adam", lr=0.01, steps=20, batch_size=1,
                       parametrization="xavier", x_test=grid)
        mus = [mu_curvature(f) for f in direct["predictions"][-1]]
        assert row["mu mean"] == pytest.approx(np.mean(mus), rel=1e-9)
        assert row["mu std"] == pytest.approx(np.std(mus), rel=1e-9, abs=1e-12)
        assert row["final loss (mean)"] == pytest.approx(direct["loss"][:, -1].mean(), rel=1e-9)


def test_bounds():
    params = {"depths": [1, 2, 3], "alphas": [1.0, 0.1], "width": 16, "n_init": 1, "train_alphas": [0.1],
              "steps": 10, "lr_fraction": 0.1, "n_grid": 32}
    data = run("bounds", "quick", params)
    for a, alpha in enumerate((1.0, 0.1)):
        for d, depth in enumerate((1, 2, 3)):
            resnet = jacobian_bounds(Architecture("resnet", depth, alpha=alpha), 16, 2)["bound"]
            mlp = jacobian_bounds(Architecture("mlp", depth), 16, 2)["bound"]
            assert data["ratio"][a, d] == pytest.approx(resnet / mlp, rel=1e-12)
    np.testing.assert_allclose(data["threshold"], [(3 ** (1 - 1 / depth) - 1) / 9 for depth in (1, 2, 3)],
                               rtol=1e-12, atol=1e-15)
    points = circle_points(circle_grid(32))
    for row, arch in zip(data["tables"]["measured"], (Architecture("mlp", 5), Architecture("resnet", 5, alpha=0.1)),
                         strict=True):
        initial = input_jacobian_norms(arch, ensemble_member(init_params(arch, 16, 2, 0, n_init=1), 0), points).max()
        assert row["max ||df/dx|| at init (mean)"] == pytest.approx(initial, rel=1e-10)
        assert row["bound B"] == jacobian_bounds(arch, 16, 2)["bound"]
        assert 0 < row["max ||df/dx|| trained (mean)"] < row["bound B"]


def test_spectra():
    data = run("spectra", "quick", {"depths": [2], "alphas": [0.1], "n_grid": 64, "condition_depths": [2, 3],
                                    "n_points": 8})
    angles = circle_grid(64)
    for curve, arch in zip(data["magnitudes"][0], (MLP2, RESNET2), strict=True):
        expected = np.abs(np.fft.rfft(profile(arch, angles))) / 64
        np.testing.assert_allclose(curve, expected, rtol=1e-10, atol=1e-14)
    x = circle_points(circle_grid(8))
    for j, depth in enumerate((2, 3)):
        for c, arch in enumerate((Architecture("mlp", depth), Architecture("resnet", depth, alpha=0.1))):
            eig = np.linalg.eigvalsh(analytic_kernels(x, arch=arch, kernels=("ntk",))["ntk"])
            assert data["inverse_condition"][c, j] == pytest.approx(eig[0] / eig[-1], rel=1e-8)
            assert data["tables"]["condition"][j][("MLP", "ResNet alpha=0.1")[c]] == pytest.approx(eig[-1] / eig[0],
                                                                                                  rel=1e-8)


def test_digits():
    data = run("digits", "quick", {"n_trains": [20], "depths": [2], "alphas": [0.1], "draws": 2})
    accuracy = data["accuracy"]
    assert accuracy.shape == (1, 1, 2, 2)
    # 0 against 8 from 20 training images: measured 0.96-0.99; an error rate would be below 0.1
    assert np.all(accuracy > 0.85), accuracy
    (row,) = data["tables"]["accuracy"]
    assert row["MLP mean"] == pytest.approx(accuracy[0, 0, 0].mean(), rel=1e-12)
    assert row["ResNet alpha=0.1 std"] == pytest.approx(accuracy[0, 0, 1].std(), rel=1e-12, abs=1e-15)
    # accuracies are fractions of a test set of whole images
    test_size = data["labels"]["test_size"]
    np.testing.assert_allclose(accuracy * test_size, np.round(accuracy * test_size), atol=1e-9)


def test_rkhs_vs_curvature():
    data = run("rkhs-vs-curvature", "quick", {"n_trains": [6], "alphas": [0.1], "n_grid": 256})
    for c, (row, arch) in enumerate(zip(data["tables"]["mu"], (Architecture("mlp", 5),
                                                               Architecture("resnet", 5, alpha=0.1)), strict=True)):
        fit = circle_interpolation(arch, 6, n_grid=256)
        ratio = mu_rkhs(fit["interpolant"], fit["train_angles"], fit["train_values"], bandwidth=0.5)
        assert row["mu_rkhs (larger = smoother)"] == pytest.approx(ratio["mu"], rel=1e-10)
        assert data["mu_curvature"][0, c] == pytest.approx(fit["mu"], rel=1e-12)
        assert row["bandwidth"] == 0.5 and row["cutoff"] == ratio["cutoff"]
    assert data["mu_rkhs"][0, 1] > data["mu_rkhs"][0, 0]  # the damped ResNet is the smoother
    assert math.isclose(data["mu_rkhs"][0, 1], data["tables"]["mu"][1]["mu_rkhs (larger = smoother)"])
