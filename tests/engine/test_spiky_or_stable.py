"""spiky-or-stable at tiny scale, number by number: half-widths and minima against root finding on
direct engine calls (`engine.sphere.sphere_profile`), median degrees against `sphere_spectrum`, and
closed forms: linear kernels (half-width pi / 2, minimum -1, all power at degree 1) and the depth-1
ReLU MLP (the arc-cosine kernel and its NTK, Funk-Hecke by adaptive quadrature on S^2)."""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar
from scipy.special import eval_legendre

from engine import Architecture
from engine.experiments import run
from engine.sphere import multiplicities, sphere_profile, sphere_spectrum

TINY = {"depths": [1, 3], "alphas": [0.5], "gammas": [0.5], "sphere_dim": 3, "k_max": 24, "n_angles": 65,
        "kernels": ["ntk", "nngp"], "activation": "relu"}


def reference_half_width(p):
    """(half-width, minimum) of a normalised profile p(th) by bounded minimisation and brentq."""
    grid = np.linspace(0.0, math.pi, 4001)
    values = p(grid)
    j = int(np.argmin(values))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    best = minimize_scalar(p, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    m = min(float(best.fun), float(values[j]))
    level = 0.5 * (1 + m)
    i = int(np.argmax(values <= level))
    return brentq(lambda th: p(th) - level, grid[i - 1], grid[i], xtol=1e-14), m


def engine_profile(arch, d, kernel):
    def p(th):
        th = np.atleast_1d(np.asarray(th, dtype=float))
        values = sphere_profile(arch, d, np.concatenate([[1.0], np.cos(th)]), kernel=kernel)
        return values[1:] / values[0] if th.size > 1 else float(values[1] / values[0])
    return p


def median_from(lam, mult):
    power = np.cumsum(lam[1:] * mult[1:])
    return int(np.nonzero(power >= 0.5 * (1 - lam[0]))[0][0]) + 1


def test_half_widths_and_median_degrees_equal_direct_engine_calls():
    data = run("spiky-or-stable", "quick", TINY)
    assert data["labels"]["curves"] == ["MLP", "ResNet alpha=0.5", "ResNet alpha=L^-0.5"]
    for j, depth in enumerate(TINY["depths"]):
        archs = [Architecture("mlp", depth), Architecture("resnet", depth, alpha=0.5),
                 Architecture("resnet", depth, alpha=depth ** -0.5)]
        for c, arch in enumerate(archs):
            for kernel in ("ntk", "nngp"):
                width, minimum = reference_half_width(engine_profile(arch, 3, kernel))
                assert data[f"half_width_{kernel}"][c, j] == pytest.approx(width, abs=1e-7)
                assert data[f"minimum_{kernel}"][c, j] == pytest.approx(minimum, abs=1e-9)
                spectrum = sphere_spectrum(arch, 3, 24, kernel=kernel)
                peak = sphere_profile(arch, 3, np.ones(1), kernel=kernel)[0]
                median = median_from(spectrum["coefficients"] / peak, spectrum["multiplicities"])
                assert data[f"median_degree_{kernel}"][c, j] == median
                row = data["tables"][f"{kernel}_half_width_deg"][j]
                assert row[data["labels"]["curves"][c]] == pytest.approx(math.degrees(width), abs=1e-4)
    deepest = engine_profile(archs[0], 3, "ntk")(data["angles"])
    np.testing.assert_allclose(data["profile_ntk"][0], deepest, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("d", [2, 5])
def test_linear_kernels_have_half_width_pi_over_2(d):
    """Linear activation: every kernel is c x.x', its profile cos th (minimum -1 at pi, half level 0
    at pi / 2), and all its non-constant power sits in degree 1."""
    data = run("spiky-or-stable", "quick", {**TINY, "sphere_dim": d, "activation": "linear", "depths": [1, 4]})
    for kernel in ("ntk", "nngp"):
        np.testing.assert_allclose(data[f"half_width_{kernel}"], math.pi / 2, atol=1e-9)
        np.testing.assert_allclose(data[f"minimum_{kernel}"], -1.0, atol=1e-12)
        assert np.all(data[f"median_degree_{kernel}"] == 1)


def test_depth_one_relu_mlp_against_the_arc_cosine_closed_forms():
    """The depth-1 ReLU MLP: NNGP / peak = (sin th + (pi - th) cos th) / pi (Cho & Saul's arc-cosine
    kernel of degree 1), NTK / peak = (sin th + 2 (pi - th) cos th) / (2 pi); on S^2 the Funk-Hecke
    eigenvalues are lambda_k = 1/2 int_-1^1 K(t) P_k(t) dt (Legendre P_k), by adaptive quadrature."""
    data = run("spiky-or-stable", "quick", {**TINY, "depths": [1], "alphas": [], "gammas": []})
    closed = {"nngp": lambda th: (np.sin(th) + (np.pi - th) * np.cos(th)) / np.pi,
              "ntk": lambda th: (np.sin(th) + 2 * (np.pi - th) * np.cos(th)) / (2 * np.pi)}
    mult = multiplicities(3, 24)
    for kernel, p in closed.items():
        width, minimum = reference_half_width(p)
        assert data[f"half_width_{kernel}"][0, 0] == pytest.approx(width, abs=1e-7)
        assert data[f"minimum_{kernel}"][0, 0] == pytest.approx(minimum, abs=1e-9)
        lam = np.array([0.5 * quad(lambda t, k=k, p=p: p(np.arccos(t)) * eval_legendre(k, t), -1, 1, limit=200,
                                   epsabs=1e-13)[0] for k in range(25)])
        assert data[f"median_degree_{kernel}"][0, 0] == median_from(lam, mult)
    assert data["minimum_nngp"][0, 0] == pytest.approx(0.0, abs=1e-12)  # K(-1) = 0


def test_an_unreached_median_degree_reads_beyond_k_max():
    data = run("spiky-or-stable", "quick", {**TINY, "depths": [200], "alphas": [], "gammas": [], "k_max": 4,
                                            "kernels": ["ntk"]})
    assert data["median_degree_ntk"][0, 0] == 5 and data["tables"]["ntk_median_degree"][0]["MLP"] == "> 4"


def test_the_report_says_whether_the_mlp_gets_spiky_and_which_networks_keep_their_shape():
    from report.reproduce import _claims

    data = run("spiky-or-stable", "quick", {**TINY, "depths": [1, 100], "alphas": [1.0], "gammas": [0.5, 1.0]})
    text = _claims("spiky-or-stable", data)
    assert "The MLP gets spiky with depth (NTK half-width" in text
    assert "every kernel): ResNet alpha=L^-0.5." in text
    assert "ResNet alpha=L^-1 77.5 -> 89.8 deg, widens towards the linear kernel" in text
