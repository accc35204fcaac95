"""nngp-vs-ntk at tiny scale: every mu against direct engine calls on the same samples (the circle's
`circle_interpolation` + `mu_rkhs`, the spheres' `sphere_interpolation`), the sphere target against
closed forms (Legendre / Gegenbauer polynomials by scipy), the samples against their stated generator,
and the parameter rules against the engine's heat cut-off."""

import math
import re

import numpy as np
import pytest
from scipy.special import eval_gegenbauer, eval_legendre

from engine import Architecture
from engine.experiments import EXPERIMENTS, run
from engine.experiments.nngp_vs_ntk import SPECTRAL_GRID, heat_harmonics, sphere_target
from engine.smoothness import circle_interpolation, mu_rkhs
from engine.sphere import multiplicities
from engine.sphere_sets import product_lat
from engine.sphere_smoothness import MAX_CURVATURE_DEGREE, heat_cutoff, sphere_interpolation

TINY = {"depths": [2, 3], "alphas": [0.5], "n_trains": [6], "n_grid": 256, "ridge": 1e-10, "bandwidth": 0.5,
        "sphere_dims": [3, 5], "n_points": 12, "sphere_grid": 128, "sphere_bandwidth": 0.4, "target_degree": 3,
        "kink": 0.5, "seed": 7}


def points(n, d, seed):
    """The stated sample: normalised Gaussians of numpy's generator [seed, d]."""
    x = np.random.default_rng([seed, d]).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def target(x, k, kink):
    """0.5 x_1 + P_{k,d}(x_2) + kink |x_3|, P_{k,d} = C_k^((d-2)/2) / C_k^((d-2)/2)(1) (Legendre on S^2)."""
    d = x.shape[1]
    p = eval_legendre(k, x[:, 1]) if d == 3 else eval_gegenbauer(k, (d - 2) / 2, x[:, 1]) / eval_gegenbauer(
        k, (d - 2) / 2, 1.0)
    return 0.5 * x[:, 0] + p + kink * np.abs(x[:, 2])


def test_every_number_equals_direct_engine_calls():
    data = run("nngp-vs-ntk", "quick", TINY)
    assert data["mu_curvature"].shape == data["mu_rkhs"].shape == data["degree"].shape == (3, 2, 2, 2)
    assert data["labels"]["domains"] == ["circle, m = 6", "S^2, n = 12", "S^4, n = 12"]
    for j, depth in enumerate(TINY["depths"]):
        for c, arch in enumerate([Architecture("mlp", depth), Architecture("resnet", depth, alpha=0.5)]):
            for k, kernel in enumerate(("ntk", "nngp")):
                fit = circle_interpolation(arch, 6, kernel=kernel, ridge=1e-10, n_grid=256)
                ratio = mu_rkhs(fit["interpolant"], fit["train_angles"], fit["train_values"], bandwidth=0.5)
                assert data["mu_curvature"][0, j, c, k] == pytest.approx(fit["mu"], rel=1e-12)
                assert data["mu_rkhs"][0, j, c, k] == pytest.approx(ratio["mu"], rel=1e-12)
                assert data["degree"][0, j, c, k] == 128
                for i, (d, n_grid) in enumerate(((3, 128), (5, SPECTRAL_GRID)), start=1):
                    x = points(12, d, 7)
                    fit = sphere_interpolation(arch, x, target(x, 3, 0.5), kernel=kernel, ridge=1e-10,
                                               n_grid=n_grid, rkhs=True, bandwidth=0.4)
                    assert data["mu_curvature"][i, j, c, k] == pytest.approx(fit["mu"], rel=1e-12)
                    assert data["mu_rkhs"][i, j, c, k] == pytest.approx(fit["rkhs"]["mu"], rel=1e-12)
                    assert data["degree"][i, j, c, k] == fit["degree"]
                    assert data["rkhs_cutoff"][i] == fit["rkhs"]["cutoff"]
    # the measures' degrees: the S^2 grid's n_lat - 1, the spectral sum's K on S^4 (at most 511)
    assert np.all(data["degree"][1] == product_lat(128) - 1)
    assert np.all((data["degree"][2] >= 1) & (data["degree"][2] <= MAX_CURVATURE_DEGREE))
    c2, c4 = int(data["rkhs_cutoff"][1]), int(data["rkhs_cutoff"][2])
    assert data["labels"]["rkhs_harmonics"] == [2 * int(data["rkhs_cutoff"][0]) + 1, (c2 + 1) ** 2,
                                                int(multiplicities(5, c4).sum())]
    rows = data["tables"]["mu"]
    assert len(rows) == 3 * 2 * 2
    assert rows[-1]["mu NNGP"] == data["mu_curvature"][2, 1, 1, 1]
    assert rows[-1]["mu_rkhs NTK"] == data["mu_rkhs"][2, 1, 1, 0]


@pytest.mark.parametrize("d", [3, 4, 10])
def test_the_target_is_the_stated_closed_form(d):
    x = points(50, d, 0)
    for k in (0, 1, 4, 9):
        np.testing.assert_allclose(sphere_target(x, k, 0.25), target(x, k, 0.25), rtol=1e-12, atol=1e-14)
    # on S^2 the degree-4 part is 0.5 x_1 + the Legendre polynomial written out
    t = x[:, 1]
    if d == 3:
        np.testing.assert_allclose(sphere_target(x, 4, 0.0), 0.5 * x[:, 0] + (35 * t**4 - 30 * t**2 + 3) / 8,
                                   rtol=1e-12)


@pytest.mark.parametrize(("d", "bandwidth", "n_grid"), [(3, 0.3, 8192), (3, 0.15, 32768), (3, 0.3, 40), (10, 0.3,
                                                        SPECTRAL_GRID), (10, 0.15, SPECTRAL_GRID), (4, 2.0, 1024)])
def test_heat_harmonics_mirror_the_engine_cutoff(d, bandwidth, n_grid):
    c, count = heat_harmonics(d, bandwidth, n_grid)
    assert c == heat_cutoff(d, bandwidth, n_grid // 2 - 1)
    assert count == sum(math.comb(k + d - 1, d - 1) - math.comb(k + d - 3, d - 1) for k in range(c + 1))


def test_spectral_grid_reaches_the_engine_top_degree():
    assert SPECTRAL_GRID // 2 - 1 == MAX_CURVATURE_DEGREE


@pytest.mark.parametrize(("overrides", "parameter", "match"), [
    ({"sphere_bandwidth": 0.5}, "sphere_bandwidth", re.escape("keeps the heat RKHS to degree 14 on S^2, 225 "
                                                              "harmonics, fewer than 2 x n_points = 512")),
    ({"n_trains": [20], "bandwidth": 1.0}, "bandwidth", "keeps the Gaussian RKHS on the circle to 15 Fourier modes"),
    ({"sphere_dims": [2]}, "sphere_dims", r"sphere_dims\[0\] must be >= 3"),
])
def test_parameters_that_leave_no_interpolant_in_the_rkhs_are_refused(overrides, parameter, match):
    with pytest.raises(ValueError, match=match) as refused:
        EXPERIMENTS["nngp-vs-ntk"].parameters("quick", overrides)
    assert refused.value.parameter == parameter
    # the quick and paper scales pass the rule
    for scale in ("quick", "paper"):
        EXPERIMENTS["nngp-vs-ntk"].parameters(scale)
