"""learning-curves at tiny scale: the theory against closed forms (a kernel with one nonzero degree:
kappa from a quadratic), the measured errors against direct engine calls (`kernel_regression` on the
same samples), and the measured curve of a finite-rank kernel against its theory."""

import math

import numpy as np
import pytest

from engine import Architecture, kernel_regression
from engine.experiments import run
from engine.experiments.learning_curves import BLOCKS, sphere_sample, target, theory_error
from engine.sphere import multiplicities, sphere_profile, sphere_spectrum

LINEAR = {"n_trains": [6, 12, 24, 48], "depth": 1, "alphas": [], "kernels": ["nngp"], "sphere_dims": [3],
          "target_degrees": [1, 2], "target_powers": [1.0, 0.5], "noise": 0.5, "ridge": 1e-3, "draws": 40,
          "n_test": 400, "k_max": 8, "activation": "linear", "seed": 0}


def one_degree(eta, modes, n, ridge, learnable_power, other_power, noise):
    """E_g for a kernel with `modes` modes of eigenvalue eta and no others (closed form): kappa is the
    positive root of kappa^2 + (n eta - ridge - modes eta) kappa - ridge n eta = 0."""
    b = n * eta - ridge - modes * eta
    kappa = 0.5 * (-b + math.sqrt(b * b + 4 * ridge * n * eta))
    gamma = modes * n * eta**2 / (n * eta + kappa) ** 2
    bias = learnable_power * kappa**2 / (n * eta + kappa) ** 2 + other_power
    return (bias + noise**2 * gamma) / (1 - gamma)


@pytest.mark.parametrize("d", [3, 7])
def test_theory_of_a_one_degree_kernel_is_the_quadratic_closed_form(d):
    mult = multiplicities(d, 8)
    lam = np.zeros(9)
    lam[1] = 1 / d  # K(t) = t: all of K(1) = 1 in the d modes of degree 1
    powers = np.zeros(9)
    powers[1], powers[2] = 1.0, 0.5
    for n in (1, 2, 5, 40, 1000):
        for ridge in (1e-3, 0.1, 2.0):
            want = one_degree(1 / d, d, n, ridge, 1.0, 0.5, 0.3)
            assert theory_error(lam, mult, n, ridge, powers, 0.3) == pytest.approx(want, rel=1e-10)
    # ridgeless: kappa = 0 once n >= d, E_g = unlearnable power / (1 - d / n) + sigma^2 (d / n) / (1 - d / n)
    n = 4 * d
    want = (0.5 + 0.09 * d / n) / (1 - d / n)
    assert theory_error(lam, mult, n, 0.0, powers, 0.3) == pytest.approx(want, rel=1e-12)


def test_the_experiment_gives_the_closed_form_theory_and_measures_it():
    """Linear activation: the NNGP is c x.x', one degree; the experiment's theory curve is the closed
    form, and its measured curve (hundreds of training sets at small N) is within the Monte Carlo spread."""
    data = run("learning-curves", "quick", LINEAR)
    theory, measured = data["theory_nngp"][0, 0], data["measured_nngp"][0, 0]
    want = [one_degree(1 / 3, 3, n, 1e-3, 1.0, 0.5, 0.5) for n in LINEAR["n_trains"]]
    np.testing.assert_allclose(theory, want, rtol=1e-9)
    fits = data["fits_nngp"][0, 0]
    np.testing.assert_array_equal(fits, [40 * min(48 // n, BLOCKS) for n in LINEAR["n_trains"]])
    sem = data["measured_std_nngp"][0, 0] / np.sqrt(fits)
    assert np.all(np.abs(measured - theory) < 4 * sem + 0.05 * theory), (measured, theory, sem)
    assert abs(np.mean(measured / theory) - 1) < 0.1, measured / theory


def test_measured_errors_equal_direct_kernel_regression():
    params = {"n_trains": [4, 8], "depth": 2, "alphas": [0.5], "kernels": ["ntk", "nngp"], "sphere_dims": [3],
              "target_degrees": [1, 2], "target_powers": [1.0, 1.0], "noise": 0.1, "ridge": 1e-6, "draws": 2,
              "n_test": 50, "k_max": 16, "activation": "relu", "seed": 3}
    data = run("learning-curves", "quick", params)
    archs = [Architecture("mlp", 2), Architecture("resnet", 2, alpha=0.5)]
    for c, arch in enumerate(archs):
        for kernel in ("ntk", "nngp"):
            errors = {4: [], 8: []}
            for r in range(2):
                rng = np.random.default_rng([3, 3, r])
                poles = sphere_sample(2, 3, rng)
                x, x_test = sphere_sample(8, 3, rng), sphere_sample(50, 3, rng)
                y = target(x, [1, 2], [1.0, 1.0], poles) + 0.1 * rng.standard_normal(8)
                f_test = target(x_test, [1, 2], [1.0, 1.0], poles)
                for n in (4, 8):
                    for b in range(8 // n):
                        part = slice(b * n, (b + 1) * n)
                        fit = kernel_regression(x[part], y[part], x_test, arch=arch, kernel=kernel, ridge=1e-6)
                        errors[n].append(np.mean((fit.mean - f_test) ** 2))
            np.testing.assert_allclose(data[f"measured_{kernel}"][0, c], [np.mean(errors[4]), np.mean(errors[8])],
                                       rtol=1e-8)
            # the theory from the sphere spectrum, kappa by fixed-point iteration (an independent solver)
            spectrum = sphere_spectrum(arch, 3, 16, kernel=kernel)
            lam = np.maximum(spectrum["coefficients"], 0) / sphere_profile(arch, 3, np.ones(1), kernel=kernel)[0]
            mult = spectrum["multiplicities"]
            tail = 1 - np.sum(mult * lam)  # degrees beyond 16, as an effective ridge
            assert 0 <= tail < 0.05
            for s, n in enumerate((4, 8)):
                kappa = 1.0
                for _ in range(100_000):
                    kappa = 1e-6 + tail + kappa * np.sum(mult * lam / (n * lam + kappa))
                gamma = np.sum(mult * n * lam**2 / (n * lam + kappa) ** 2)
                bias = sum(kappa**2 / (n * lam[k] + kappa) ** 2 for k in (1, 2))
                want = (bias + 0.01 * gamma) / (1 - gamma)
                assert data[f"theory_{kernel}"][0, c, s] == pytest.approx(want, rel=1e-8)


def test_target_degrees_beyond_k_max_are_refused():
    with pytest.raises(ValueError, match="target_degrees must be <= k_max"):
        run("learning-curves", "quick", {**LINEAR, "target_degrees": [1, 12]})
    with pytest.raises(ValueError, match="target_powers must give one entry per target_degrees entry"):
        run("learning-curves", "quick", {**LINEAR, "target_powers": [1.0]})
