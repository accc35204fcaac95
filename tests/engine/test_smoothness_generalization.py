"""smoothness-generalization at tiny scale: its numbers against direct engine calls (kernel_regression,
conv_kernels, the sphere smoothness measures, jacobian_bounds, train), max ||df/dx|| against finite
differences of those predictions, mu of the linear predictor (ResNet alpha = 0) against its closed form
d - 1, the rank correlations against scipy, the splits, and the parameter rules."""

import math

import numpy as np
import pytest
from scipy.stats import permutation_test, spearmanr

from engine import Architecture, jacobian_bounds, kernel_regression
from engine.conv.analytic import conv_kernels
from engine.conv.architecture import ConvArchitecture
from engine.experiments import EXPERIMENTS, run
from engine.experiments.rank_correlation import spearman_interval
from engine.experiments.registry import ParameterError
from engine.experiments.smoothness_data import digits_task, sphere_task, split_seed
from engine.networks import apply, ensemble_member
from engine.sphere import funk_hecke_checked, sphere_profile
from engine.sphere_smoothness import Expansion, addition_forms, interpolant, mu_curvature_spectral, mu_rkhs_sphere
from engine.training import lr_bound, train

TINY = {"depths": [1, 3], "alphas": [0.0, 0.5], "kernels": ["ntk", "nngp"], "n_train": 60, "n_test": 40, "splits": 2,
        "ridge": 1e-8, "gradient_points": 6, "bandwidth": 0.3, "k_max": 32, "conv_depths": [1],
        "conv_alphas": [0.5], "conv_readout": "flatten", "conv_n_train": 20, "conv_n_test": 10,
        "conv_gradient_points": 2, "sphere_dim": 4, "sphere_n_train": 40, "sphere_n_test": 30,
        "target_degrees": [1, 2], "target_powers": [1.0, 0.5], "noise": 0.1, "width": 16, "n_init": 2, "steps": 10,
        "lr_fraction": 0.2, "net_depths": [1], "net_alphas": [0.5], "margin_quantile": 0.1, "delta": 0.05,
        "bootstrap": 200, "seed": 0}
DENSE = {"MLP L=3": Architecture("mlp", 3), "ResNet alpha=0.5 L=1": Architecture("resnet", 1, alpha=0.5)}
H = 1e-6


@pytest.fixture(scope="module")
def data():
    return run("smoothness-generalization", "quick", TINY)


def tasks(split):
    return {"digits": digits_task(60, 40, split, 0),
            "sphere": sphere_task(4, 40, 30, [1, 2], [1.0, 0.5], 0.1, split, 0)}


def error(task, name, predictions):
    if name == "digits":
        return np.mean(np.argmax(predictions, axis=1) != task.labels_test)
    return np.mean((predictions - task.truth_test) ** 2) / np.mean(task.truth_test**2)


def max_gradient(f, points):
    """max over points of the operator norm of the central-difference Jacobian of f: (m, D) -> (m,) or (m, C)."""
    cols = [(np.atleast_2d(f(points + H * e).T).T - np.atleast_2d(f(points - H * e).T).T) / (2 * H)
            for e in np.eye(points.shape[1])]
    jac = np.stack(cols, axis=-1)  # (m, C, D)
    return max(np.linalg.svd(j, compute_uv=False)[0] for j in jac)


@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
def test_kernel_numbers_are_direct_engine_calls(data, kernel):
    for split in range(2):
        for name, task in tasks(split).items():
            labels = data["labels"]["networks"][f"{name}_{kernel}"]
            d = task.x_train.shape[1]
            for label, arch in DENSE.items():
                i = labels.index(label)
                fit = kernel_regression(task.x_train, task.y_train, task.x_test, arch=arch, kernel=kernel, ridge=1e-8)
                assert data[f"{name}_{kernel}_test_error"][i, split] == pytest.approx(error(task, name, fit.mean))

                def predict(z, arch=arch, task=task):
                    return kernel_regression(task.x_train, task.y_train, z, arch=arch, kernel=kernel, ridge=1e-8).mean

                assert data[f"{name}_{kernel}_max_gradient"][i, split] == pytest.approx(
                    max_gradient(predict, task.x_test[:6]), rel=1e-5)
                expansion = interpolant(task.x_train, task.y_train, arch=arch, kernel=kernel, ridge=1e-8)
                lam, err, _ = funk_hecke_checked(lambda t, arch=arch, d=d: sphere_profile(arch, d, t, kernel=kernel),
                                                 d, 32)
                mu = mu_curvature_spectral(expansion, lam, err)[0]
                assert data[f"{name}_{kernel}_mu"][i, split] == pytest.approx(mu, rel=1e-7)
                rkhs = mu_rkhs_sphere(expansion, lam, task.x_train, task.y_train, bandwidth=0.3)["mu"]
                assert data[f"{name}_{kernel}_rkhs"][i, split] == pytest.approx(rkhs, rel=1e-7)
                assert data[f"{name}_{kernel}_jacobian_bound"][i, split] == jacobian_bounds(arch, 16, d)["bound"]


def test_the_linear_predictor_has_the_curvature_of_degree_one(data):
    """ResNet alpha = 0: f(x) = B x, a degree-1 function on S^(d-1), so mu = k (k + d - 2) = d - 1 exactly,
    at every depth; the same predictor at every depth."""
    for name, d in (("digits", 64), ("sphere", 4)):
        labels = data["labels"]["networks"][f"{name}_ntk"]
        rows = [labels.index(f"ResNet alpha=0 L={depth}") for depth in (1, 3)]
        np.testing.assert_allclose(data[f"{name}_ntk_mu"][rows], d - 1, rtol=1e-9)
        np.testing.assert_allclose(data[f"{name}_ntk_test_error"][rows[0]], data[f"{name}_ntk_test_error"][rows[1]])


def test_conv_numbers_are_direct_conv_kernel_calls(data):
    labels = data["labels"]["networks"]["images_ntk"]
    for split in range(2):
        task = tasks(split)["digits"]
        x, x_test = task.x_train[:20].reshape(-1, 8, 8, 1), task.x_test[:10].reshape(-1, 8, 8, 1)
        y = task.y_train[:20]
        for label, arch in (("CNN L=1", ConvArchitecture("cnn", 1, readout="flatten")),
                            ("conv-ResNet alpha=0.5 L=1", ConvArchitecture("conv-resnet", 1, alpha=0.5,
                                                                           readout="flatten"))):
            k = conv_kernels(x, arch=arch, kernels=("ntk",))["ntk"]
            scale = np.mean(np.diag(k))
            weights = np.linalg.solve(k / scale + 1e-8 * np.eye(20), y) / scale

            def predict(z, arch=arch, weights=weights, x=x):
                return conv_kernels(z.reshape(-1, 8, 8, 1), x, arch=arch, kernels=("ntk",))["ntk"] @ weights

            i = labels.index(label)
            wrong = np.mean(np.argmax(predict(x_test.reshape(10, -1)), axis=1) != task.labels_test[:10])
            assert data["images_ntk_test_error"][i, split] == pytest.approx(wrong)
            assert data["images_ntk_max_gradient"][i, split] == pytest.approx(
                max_gradient(predict, task.x_test[:2]), rel=1e-5)


def test_trained_networks_are_direct_train_calls(data):
    """Split 1, the ResNet: one network per class, trained as `engine.training.train` trains it."""
    arch = Architecture("resnet", 1, alpha=0.5)
    task = tasks(1)["digits"]
    i = data["labels"]["networks"]["digits_net"].index("ResNet alpha=0.5 L=1")
    members = [[], []]
    for c in range(10):
        out = train(arch, task.x_train, task.y_train[:, c], width=16, seed=split_seed(0, 1, c), n_init=2, steps=10,
                    lr=0.2 * lr_bound(arch, task.x_train))
        for r in range(2):
            members[r].append(ensemble_member(out["params"], r))
    for r in range(2):
        def outputs(z, r=r):
            return np.stack([np.asarray(apply(arch, m, z)) for m in members[r]], axis=1)

        column = 2 + r  # replicates: split 0's two initialisations, then split 1's
        assert data["digits_net_test_error"][i, column] == pytest.approx(
            np.mean(np.argmax(outputs(task.x_test), axis=1) != task.labels_test))
        assert data["digits_net_train_error"][i, column] == pytest.approx(
            np.mean(np.argmax(outputs(task.x_train), axis=1) != task.labels_train))
        assert data["digits_net_max_gradient"][i, column] == pytest.approx(max_gradient(outputs, task.x_test[:6]),
                                                                            rel=1e-5)
    confidence = 3 * math.sqrt(math.log(2 / 0.05) / (2 * 60))
    np.testing.assert_allclose(data["digits_net_margin_bound"] - data["digits_net_margin_complexity"]
                               - data["digits_net_margin_train_margin_error"], confidence, rtol=1e-9)
    assert all(row["vacuous (bound >= 1)"] for row in data["tables"]["margin_bound"])


def test_spearman_rows_are_scipy_on_the_means_of_distinct_networks(data):
    """The alpha = 0 ResNets (one linear predictor at both depths) count once; rho and its permutation test
    against scipy (the exact test for the few networks here is scipy's too)."""
    checked = 0
    for row in data["tables"]["spearman"]:
        if row["family"] != "all" or row["against"] != "test error" or row["rho"] is None:
            continue
        key = f"{row['task']}_{row['predictor']}"
        measure, err = data[f"{key}_{row['measure']}"], data[f"{key}_test_error"]
        rows = [tuple(measure[i]) + tuple(err[i]) for i in range(len(measure))]
        keep = [i for i, r in enumerate(rows) if r not in rows[:i]]
        if row["predictor"] != "net":
            assert len(keep) == len(rows) - 1  # the alpha = 0 ResNet at L = 3 repeats L = 1
        measure, err = measure[keep].mean(axis=1), err[keep].mean(axis=1)
        want = spearmanr(measure, err)
        assert row["architectures"] == len(keep) and row["rho"] == pytest.approx(want.statistic, abs=1e-12)
        assert row["low"] <= row["high"] and 0 < row["p_value"] <= 1
        checked += 1
    assert checked >= 10


def test_bootstrap_interval_is_a_loop_of_scipy():
    rng = np.random.default_rng(3)
    measure, err = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    result = spearman_interval(measure, err, draws=300, seed=11)
    picks = np.random.default_rng(11).integers(0, 4, size=(300, 4))
    rhos = [spearmanr(measure[:, p].mean(axis=1), err[:, p].mean(axis=1)).statistic for p in picks]
    assert result["rho"] == pytest.approx(spearmanr(measure.mean(axis=1), err.mean(axis=1)).statistic)
    assert result["low"] == pytest.approx(np.percentile(rhos, 2.5)) and result["high"] == pytest.approx(
        np.percentile(rhos, 97.5))
    exact = permutation_test((measure.mean(axis=1),), lambda a: spearmanr(a, err.mean(axis=1)).statistic,
                             permutation_type="pairings", n_resamples=np.inf)
    assert result["p_value"] == pytest.approx(exact.pvalue, rel=1e-12)  # 6! pairings: exact
    assert spearman_interval(measure[:2], err[:2], draws=10, seed=0)["rho"] is None  # two networks: no rank test
    assert spearman_interval(np.ones((5, 3)), err[:5, :3], draws=10, seed=0)["rho"] is None  # a constant measure


def test_multi_output_energies_are_sums_over_outputs():
    x = np.random.default_rng(4).standard_normal((9, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    coef = np.random.default_rng(5).standard_normal((9, 3))
    whole = addition_forms(Expansion(x, coef), 12)
    np.testing.assert_allclose(whole, sum(addition_forms(Expansion(x, coef[:, c]), 12) for c in range(3)), rtol=1e-12)


def test_digits_splits_are_stratified_disjoint_unit_vectors():
    a, b = digits_task(200, 300, 0, 0), digits_task(200, 300, 1, 0)
    assert a.x_train.shape == (200, 64) and a.x_test.shape == (300, 64)
    np.testing.assert_allclose(np.linalg.norm(a.x_test, axis=1), 1.0, rtol=1e-12)
    counts = np.bincount(a.labels_train, minlength=10)
    assert counts.min() >= 19 and counts.max() <= 21  # 200 of ten classes of 174-183 digits
    distances = np.linalg.norm(a.x_train[:, None] - a.x_test[None], axis=2)
    assert distances.min() > 1e-6  # no image in both (the digits hold no duplicates)
    assert not np.allclose(a.x_train, b.x_train)
    np.testing.assert_array_equal(digits_task(200, 300, 0, 0).x_train, a.x_train)
    np.testing.assert_array_equal(a.y_train.argmax(axis=1), a.labels_train)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"n_train": 1000, "n_test": 900}, "n_test"), ({"conv_n_train": 500}, "conv_n_train"),
    ({"target_powers": [1.0]}, "target_powers"), ({"sphere_dim": 3}, "sphere_dim"), ({"n_train": 30}, "n_train")])
def test_parameter_rules_name_the_field(overrides, field):
    with pytest.raises(ParameterError) as caught:
        EXPERIMENTS["smoothness-generalization"].parameters("quick", overrides)
    assert caught.value.parameter == field
