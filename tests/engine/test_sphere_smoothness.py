"""Smoothness on the sphere (engine.sphere_smoothness, engine.sphere_sets) against independent references:
the circle's measures (engine.smoothness, eq. 22 and mu_rkhs), closed forms of spherical harmonics,
scipy's spherical harmonics by direct quadrature on S^2, scipy's Gegenbauer polynomials, and the
divergence of the ReLU NTK's curvature as the set is refined (docs/numerics.md)."""

import math

import numpy as np
import pytest
from scipy.special import eval_gegenbauer, eval_legendre, sph_harm_y

from engine import (
    Architecture,
    circle_interpolation,
    circle_points,
    funk_hecke,
    mu_curvature_sphere,
    mu_rkhs,
    mu_rkhs_sphere,
    paper_target,
    paper_train_angles,
    sphere_grid,
    sphere_interpolation,
)
from engine.sphere import funk_hecke_checked, sphere_profile
from engine.sphere_sets import grid_energies, product_grid
from engine.sphere_smoothness import (
    MAX_CURVATURE_DEGREE,
    Expansion,
    evaluate,
    harmonic_energies,
    heat_cutoff,
    interpolant,
    mu_curvature_spectral,
)

MLP = Architecture.from_dict({"kind": "mlp", "depth": 5})
RESNET = Architecture.from_dict({"kind": "resnet", "depth": 3, "alpha": 0.5})
ERF = Architecture.from_dict({"kind": "resnet", "depth": 3, "activation": "erf", "alpha": 0.5})


def unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- d = 2: the circle's measures ---------------------------------------------------------------------

@pytest.mark.parametrize("arch", [MLP, RESNET])
def test_curvature_reduces_to_eq22_on_the_circle(arch):
    b = paper_train_angles(6)  # -pi and pi coincide: merged, as on the circle
    circle = circle_interpolation(arch, train_angles=b, n_grid=4096)
    sphere = sphere_interpolation(arch, circle_points(b), paper_target(b), n_grid=4096)
    np.testing.assert_allclose(sphere["interpolant"], circle["interpolant"], rtol=0, atol=1e-13)
    assert sphere["mu"] == pytest.approx(circle["mu"], rel=1e-11)
    assert (sphere["grid_shape"], sphere["grid_degree"]) == ([4096], 2047)
    if arch is MLP:
        assert f"{sphere['mu']:.4g}" == "58.36"  # the paper's published value


def test_rkhs_reduces_to_mu_rkhs_on_the_circle_for_a_smooth_kernel():
    """erf: Fourier coefficients decaying geometrically, so mu_rkhs's FFT has no aliasing left at N = 1024
    and the two agree to rounding (same cut-off, t = bandwidth^2 / 2): the rounding of the coefficients
    (~1e-16 of the largest, by the FFT or by the Funk-Hecke rule) divided by the weights g_k >= 1e-12,
    measured 7e-11 at bandwidth 0.5, 1e-13 at the others."""
    b = np.array([-2.9, -1.3, -0.2, 0.8, 2.0])
    y = np.cos(b) - np.sin(3 * b)
    for bandwidth in (0.3, 0.5, 1.5):
        circle = circle_interpolation(ERF, train_angles=b, target=y, n_grid=1024)
        direct = mu_rkhs(circle["interpolant"], b, y, bandwidth=bandwidth)
        sphere = sphere_interpolation(ERF, circle_points(b), y, n_grid=1024, curvature=False, rkhs=True,
                                      bandwidth=bandwidth)["rkhs"]
        assert sphere["cutoff"] == direct["cutoff"]
        for key in ("mu", "norm_f", "norm_gauss"):
            assert sphere[key] == pytest.approx(direct[key], rel=1e-9), (bandwidth, key)


def test_rkhs_reduces_to_mu_rkhs_on_the_circle_up_to_its_aliasing():
    """ReLU: mu_rkhs reads c_k off the FFT of N samples, which adds c_{k + jN} (|c_k| ~ k^-2): the two differ
    by O(N^-2), 1.5e-6 at N = 4096, and the difference falls 16x per 4x of N (to 4e-10 at N = 2^18)."""
    b = paper_train_angles(6)
    sphere = sphere_interpolation(MLP, circle_points(b), paper_target(b), n_grid=4096, curvature=False,
                                  rkhs=True)["rkhs"]
    gaps = []
    for n in (4096, 16384, 2**18):
        circle = circle_interpolation(MLP, train_angles=b, n_grid=n)
        direct = mu_rkhs(circle["interpolant"], b, circle["train_values"], cutoff=sphere["cutoff"])
        gaps.append(abs(direct["mu"] / sphere["mu"] - 1))
        assert direct["norm_gauss"] == pytest.approx(sphere["norm_gauss"], rel=1e-12)
    assert 1e-7 < gaps[0] < 1e-5 and 12 < gaps[0] / gaps[1] < 20 and gaps[2] < 1e-9


# --- S^2: the harmonic transform and the curvature ------------------------------------------------------

def real_harmonics(degree, points):
    """{(l, m, part): values} scipy's Re / Im Y_lm (orthonormal on the sphere of area 4 pi), and their mean squares."""
    theta, phi = np.arccos(np.clip(points[:, 2], -1, 1)), np.arctan2(points[:, 1], points[:, 0])
    out = {}
    for m in range(degree + 1):
        y = sph_harm_y(degree, m, theta, phi)
        out[(m, "re")] = (y.real, 1 / (4 * np.pi) if m == 0 else 1 / (8 * np.pi))
        if m:
            out[(m, "im")] = (y.imag, 1 / (8 * np.pi))
    return out


def test_grid_energies_against_scipys_harmonics():
    n_lat = 9
    points, weights = product_grid(n_lat)
    assert weights.sum() == pytest.approx(1.0, rel=1e-14) and weights.shape == (2 * n_lat * n_lat,)
    rng = np.random.default_rng(3)
    f, expected = np.zeros(len(points)), np.zeros(n_lat)
    for degree in range(n_lat):
        for values, mean_square in real_harmonics(degree, points).values():
            c = rng.standard_normal()
            f += c * values
            expected[degree] += c * c * mean_square
    np.testing.assert_allclose(grid_energies(f, n_lat), expected, rtol=1e-11, atol=1e-15)


def test_curvature_closed_forms_on_s2():
    grid = sphere_grid(3, 2 * 12 * 12)
    x, y, z = grid.points.T
    assert grid.shape == (12, 24) and grid.degree == 11
    assert mu_curvature_sphere(z, 3, 288) == pytest.approx(2.0, rel=1e-12)  # degree 1: l (l + 1)
    assert mu_curvature_sphere(3 * z * z - 1, 3, 288) == pytest.approx(6.0, rel=1e-12)
    assert mu_curvature_sphere(-4.0 * x * y, 3, 288) == pytest.approx(6.0, rel=1e-12)  # scale-free
    # x y (degree 2, mean square 1/15) + z / 2 (degree 1, 1/12)
    expected = math.sqrt((36 / 15 + 4 / 12) / (1 / 15 + 1 / 12))
    assert mu_curvature_sphere(x * y + 0.5 * z, 3, 288) == pytest.approx(expected, rel=1e-12)
    values, _ = real_harmonics(7, grid.points)[(3, "im")]
    assert mu_curvature_sphere(values, 3, 288) == pytest.approx(56.0, rel=1e-11)


def test_curvature_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="d = 4"):  # samples on S^3: no harmonic transform of the random set
        mu_curvature_sphere(np.ones(64), 4, 64)
    with pytest.raises(ValueError, match="one entry per point"):
        mu_curvature_sphere(np.ones(100), 3, 288)
    with pytest.raises(ValueError, match=r"points\[1\]"):
        sphere_interpolation(MLP, [[1.0, 0.0, 0.0], [0.0, 1.1, 0.0]], [1.0, 2.0], n_grid=64)
    with pytest.raises(ValueError, match="one value per point"):
        sphere_interpolation(MLP, np.eye(3), [1.0, 2.0], n_grid=64)


# --- S^2 and beyond: the RKHS ratio ---------------------------------------------------------------------

def direct_energies(values, n_lat, degree):
    """E_l, l <= degree, of f on the product grid by direct quadrature with scipy's harmonics."""
    points, weights = product_grid(n_lat)
    energies = np.zeros(degree + 1)
    for n in range(degree + 1):
        for values_lm, mean_square in real_harmonics(n, points).values():
            coef = (weights @ (values * values_lm)) / mean_square  # projection on a basis function
            energies[n] += coef * coef * mean_square
    return energies


def heat_norm(x, y, bandwidth, cutoff):
    """||f_heat||_H with scipy's Legendre polynomials: G = sum_l g_l (2 l + 1) P_l(x . x')."""
    t = np.clip(x @ x.T, -1, 1)
    gram = sum(np.exp(-0.5 * bandwidth**2 * n * (n + 1)) * (2 * n + 1) * eval_legendre(n, t)
               for n in range(cutoff + 1))
    w = np.linalg.lstsq(gram, y, rcond=1e-13)[0]
    return math.sqrt(w @ gram @ w)


def test_rkhs_of_a_polynomial_kernel_against_direct_quadrature():
    """K(t) = (1 + t)^3 / 8 has lambda_k = 0 for k > 3: its interpolant has degree 3, which the product grid
    of 8 latitudes transforms exactly; the addition theorem's energies must equal scipy's to rounding."""
    x = unit(5, 3, 1)
    a = np.array([0.7, -1.2, 0.4, 2.0, -0.3])
    lam = funk_hecke(lambda t: (1 + t) ** 3 / 8, 3, 6)
    assert np.all(np.abs(lam[4:]) < 1e-15)
    expansion = Expansion(x, a)
    points, _ = product_grid(8)
    values = ((1 + points @ x.T) ** 3 / 8) @ a
    np.testing.assert_allclose(harmonic_energies(expansion, lam), direct_energies(values, 8, 6), rtol=1e-11,
                               atol=1e-15)
    y = ((1 + x @ x.T) ** 3 / 8) @ a
    out = mu_rkhs_sphere(expansion, lam, x, y, bandwidth=0.7, cutoff=6)
    g = np.exp(-0.5 * 0.49 * np.arange(7) * np.arange(1, 8))
    assert out["norm_f"] == pytest.approx(math.sqrt(np.sum(direct_energies(values, 8, 6) / g)), rel=1e-11)
    assert out["norm_gauss"] == pytest.approx(heat_norm(x, y, 0.7, 6), rel=1e-10)


def test_rkhs_of_the_relu_ntk_interpolant_against_direct_quadrature():
    """The ReLU ResNet's interpolant on S^2 is not band-limited: on the product grid of n_lat latitudes its
    degrees near 2 n_lat alias into the first ones (|lambda_k| ~ k^-3), so the direct quadrature converges to
    the addition theorem's energies like n_lat^-4 (measured 4.5e-3, 4.8e-4, 2.5e-5 at 40, 80, 160)."""
    x, bandwidth = unit(6, 3, 2), 0.6
    y = x[:, 0] - x[:, 1] * x[:, 2]
    sphere = sphere_interpolation(RESNET, x, y, n_grid=64, curvature=False, rkhs=True, bandwidth=bandwidth)["rkhs"]
    c = sphere["cutoff"]
    assert c == heat_cutoff(3, bandwidth, 10**6) == 11  # l (l + 1) <= 2 x 27.63 / 0.36 = 153.5
    g = np.exp(-0.5 * bandwidth**2 * np.arange(c + 1) * np.arange(1, c + 2))
    gaps = []
    for n_lat in (40, 80):
        points, _ = product_grid(n_lat)
        values = evaluate(interpolant(x, y, arch=RESNET), points, arch=RESNET)
        gaps.append(abs(math.sqrt(np.sum(direct_energies(values, n_lat, c) / g)) / sphere["norm_f"] - 1))
    assert gaps[1] < 1e-3 and gaps[0] / gaps[1] > 6
    assert sphere["norm_gauss"] == pytest.approx(heat_norm(x, y, bandwidth, c), rel=1e-10)
    assert 0 < sphere["mu"] < 1


@pytest.mark.parametrize("d", [4, 7])
def test_the_heat_interpolant_has_mu_one(d):
    """f = f_heat (the heat kernel's own interpolant, Gegenbauer polynomials from scipy) has mu = 1 exactly."""
    x, bandwidth, c = unit(5, d, d), 0.4, 12
    y = np.sin(3 * x[:, 0]) + x[:, 1]
    k, alpha = np.arange(c + 1), (d - 2) / 2
    g = np.exp(-0.5 * bandwidth**2 * k * (k + d - 2))
    mult = np.array([1.0] + [(2 * j + d - 2) * math.comb(j + d - 3, j - 1) / j for j in range(1, c + 1)])
    t = np.clip(x @ x.T, -1, 1)
    gram = sum(g[j] * mult[j] * eval_gegenbauer(j, alpha, t) / eval_gegenbauer(j, alpha, 1.0) for j in k)
    out = mu_rkhs_sphere(Expansion(x, np.linalg.solve(gram, y)), g, x, y, bandwidth=bandwidth)
    assert out["cutoff"] == c and out["mu"] == pytest.approx(1.0, rel=1e-9)


def test_rkhs_in_higher_dimensions_is_scale_free_and_at_most_one():
    x = unit(8, 6, 4)
    y = x[:, 0] ** 2 - x[:, 3]
    out = sphere_interpolation(RESNET, x, y, n_grid=32, curvature=False, rkhs=True)
    assert out["grid_points"].shape == (32, 6) and out["grid_degree"] is None and out["mu"] is None
    again = sphere_interpolation(RESNET, x, -3.0 * y, n_grid=32, curvature=False, rkhs=True)
    assert again["rkhs"]["mu"] == pytest.approx(out["rkhs"]["mu"], rel=1e-10)
    assert 0 < out["rkhs"]["mu"] <= 1 + 1e-9


# --- the divergence of the curvature as the set is refined -----------------------------------------------

def test_the_relu_ntk_curvature_diverges_as_the_set_is_refined():
    """The ReLU NTK's cusp at t = 1 (K ~ K(1) - c th) makes Delta f ~ 1 / th at each training point: on S^2
    ||Delta f||^2 grows like log L, a constant per doubling of the degree; the NNGP (C^2 at t = 1) converges.
    The truncated sums of the analytic energies, and the product grid's own values, show both."""
    x = unit(10, 3, 1)
    y = x[:, 0] + np.sin(3 * x[:, 2])
    for kernel in ("ntk", "nngp"):
        lam = funk_hecke(lambda t, k=kernel: sphere_profile(MLP, 3, t, kernel=k), 3, 511)
        e = harmonic_energies(interpolant(x, y, arch=MLP, kernel=kernel), lam)
        degree = np.arange(e.size)
        mu2 = np.cumsum((degree * (degree + 1.0)) ** 2 * e) / np.cumsum(e)
        steps = np.diff(mu2[[63, 127, 255, 511]])
        lats = (8, 32) if kernel == "ntk" else (16, 32)
        grid = [sphere_interpolation(MLP, x, y, kernel=kernel, n_grid=2 * n * n)["mu"] for n in lats]
        if kernel == "ntk":
            assert np.all(steps > 3) and steps.max() < 1.3 * steps.min()  # log growth: ~5.7 per doubling
            assert grid[1] > 1.2 * grid[0]  # measured 3.83 and 5.20
        else:
            assert np.all(steps < 1e-4 * mu2[63])
            assert grid[1] == pytest.approx(grid[0], rel=1e-3) == pytest.approx(math.sqrt(mu2[511]), rel=1e-3)


def test_the_circle_curvature_of_the_relu_ntk_grows_like_sqrt_n():
    """On the circle the cusp is a kink in the angle: f'' holds a delta at each training point, and eq. 22
    on N points grows like sqrt(N) (the paper's values are those of N = 4096)."""
    b = paper_train_angles(6)
    mus = [circle_interpolation(MLP, train_angles=b, n_grid=n)["mu"] for n in (4096, 16384, 65536)]
    assert 1.8 < mus[1] / mus[0] < 2.1 and 1.9 < mus[2] / mus[1] < 2.05


# --- the curvature beyond S^2: the exact harmonic sum ----------------------------------------------------

LINEAR = Architecture.from_dict({"kind": "mlp", "depth": 3, "activation": "linear", "sigma_b": 0.5})


def uniform(n, d, seed):
    return unit(n, d, seed)


def test_spectral_curvature_of_an_affine_interpolant_closed_form():
    """A linear network's kernel is affine in t, so its interpolant is f(x) = b + w.x: E_0 = b^2 and
    E_1 = |w|^2 / d (the normalised measure), Delta f = -(d - 1) w.x, so mu = (d - 1) sqrt(E_1 / (E_0 + E_1)).
    b and w are read off the interpolant's values at +-e_i."""
    for d in (4, 7):
        x = unit(3, d, d)
        out = sphere_interpolation(LINEAR, x, [1.0, -2.0, 0.5], n_grid=64)
        expansion = interpolant(x, [1.0, -2.0, 0.5], arch=LINEAR)
        plus, minus = (evaluate(expansion, s * np.eye(d), arch=LINEAR) for s in (1.0, -1.0))
        b, w = float(np.mean(plus + minus) / 2), (plus - minus) / 2
        expected = (d - 1) * math.sqrt((w @ w / d) / (b * b + w @ w / d))
        assert out["mu"] == pytest.approx(expected, rel=1e-10)
        assert out["degree"] == 31 and out["grid_degree"] is None  # n_grid / 2 - 1


def zonal_laplacian_monte_carlo(centres, coef, profile, first, second, samples=400_000, seed=0):
    """sqrt(mean (Delta f)^2 / mean f^2) over uniform points of S^(d-1), f = sum_i coef_i K(x . c_i), with
    Delta K(x . c) = (1 - t^2) K''(t) - (d - 1) t K'(t) for a zonal function; and its standard error."""
    d = centres.shape[1]
    t = np.clip(uniform(samples, d, seed) @ centres.T, -1, 1)
    f = profile(t) @ coef
    lap = ((1 - t * t) * second(t) - (d - 1) * t * first(t)) @ coef
    num, den = np.mean(lap**2), np.mean(f**2)
    # delta method for sqrt(num / den): the ratio's relative error from the two means' covariance
    c = np.cov(lap**2 / num - f**2 / den) / samples
    return math.sqrt(num / den), math.sqrt(c) / 2 * math.sqrt(num / den)


def test_spectral_curvature_against_monte_carlo_of_the_laplacian_on_s3():
    """K(t) = exp(2 t) on S^3: Funk-Hecke eigenvalues, the addition theorem and the weights k (k + 2) against
    the Laplace-Beltrami operator applied to the zonal functions directly, averaged over uniform points."""
    centres, coef = unit(5, 4, 11), np.array([0.8, -1.1, 0.3, 1.7, -0.6])
    lam, errors, _ = funk_hecke_checked(lambda t: np.exp(2 * t), 4, 40)
    mu, degree = mu_curvature_spectral(Expansion(centres, coef), lam, errors)
    assert degree == 40  # beyond k ~ 25 lambda_k is rounding, but N(d, k) lambda_k^2 of it stays negligible
    mc, se = zonal_laplacian_monte_carlo(centres, coef, lambda t: np.exp(2 * t), lambda t: 2 * np.exp(2 * t),
                                         lambda t: 4 * np.exp(2 * t))
    assert abs(mu - mc) < 4 * se and se < 5e-3 * mu


def test_spectral_curvature_of_an_erf_resnet_on_s3_against_monte_carlo():
    """The engine's interpolant on S^3 (erf ResNet NTK), its profile's derivatives by central differences."""
    x = unit(6, 4, 5)
    y = x[:, 0] - np.sin(2 * x[:, 3])
    out = sphere_interpolation(ERF, x, y, n_grid=512)
    expansion = interpolant(x, y, arch=ERF)
    h = 1e-4

    def profile(t):
        return sphere_profile(ERF, 4, t.reshape(-1)).reshape(t.shape)

    mc, se = zonal_laplacian_monte_carlo(
        expansion.centres, expansion.coef, profile, lambda t: (profile(t + h) - profile(t - h)) / (2 * h),
        lambda t: (profile(t + h) - 2 * profile(t) + profile(t - h)) / (h * h), samples=100_000, seed=1)
    assert abs(out["mu"] - mc) < 4 * se and se < 1e-2 * mc
    assert out["degree"] == 255


def test_spectral_curvature_agrees_with_the_product_grid_on_s2():
    """d = 3 by both routes: the grid's harmonic transform of the sampled interpolant against the exact sum
    to the same degree L = n_lat - 1. A smooth kernel: to rounding; the ReLU NTK: up to the grid's aliasing
    (its degrees near 2 n_lat fold into the first ones), measured 2e-3 at n_lat 64."""
    x = unit(12, 3, 7)
    y = x[:, 2] + np.cos(2 * x[:, 0])
    for arch, rel in ((ERF, 1e-9), (MLP, 5e-3)):
        grid = sphere_interpolation(arch, x, y, n_grid=2 * 64 * 64)["mu"]
        lam = funk_hecke(lambda t, a=arch: sphere_profile(a, 3, t), 3, 63)
        assert mu_curvature_spectral(interpolant(x, y, arch=arch), lam)[0] == pytest.approx(grid, rel=rel)


def test_spectral_curvature_reduces_to_eq22_on_the_circle():
    """d = 2: sum k^4 E_k against eq. 22's second differences on the 4096-point grid, whose eigenvalue
    (2 sin(k h / 2) / h)^2 is k^2 (1 - (k h)^2 / 12 + ...): for the erf kernel's fast-falling energies the
    two agree to ~1e-7."""
    b = np.array([-2.9, -1.3, -0.2, 0.8, 2.0])
    y = np.cos(b) - np.sin(3 * b)
    circle = circle_interpolation(ERF, train_angles=b, target=y, n_grid=4096)
    lam = funk_hecke(lambda t: sphere_profile(ERF, 2, t), 2, 2047)
    mu, _ = mu_curvature_spectral(interpolant(circle_points(b), y, arch=ERF), lam)
    assert mu == pytest.approx(circle["mu"], rel=1e-6)


def test_the_relu_ntk_curvature_converges_beyond_s2():
    """The terms (k (k + d - 2))^2 E_k of the ReLU NTK fall as k^(2 - d): at d = 4 the tail beyond K is
    ~1 / K (each 4x of K takes a quarter of the last step); at d = 6 the sum has settled by K = 63. The
    default K (MAX_CURVATURE_DEGREE) leaves d = 4 within a few 1e-3 of its limit."""
    for d, arch in ((4, MLP), (6, RESNET)):
        x = unit(10, d, d)
        y = x[:, 0] + np.sin(3 * x[:, 2])
        lam, errors, _ = funk_hecke_checked(lambda t, a=arch, d=d: sphere_profile(a, d, t), d, 1023)
        expansion = interpolant(x, y, arch=arch)
        mus = [mu_curvature_spectral(expansion, lam[: k + 1], errors[: k + 1])[0] for k in (63, 255, 1023)]
        if d == 4:
            steps = np.diff(mus)
            assert np.all(steps > 0) and 3 < steps[0] / steps[1] < 5.5
            tail = steps[1] / 3  # the geometric tail beyond 1023 of steps falling 4x per 4x of K
            limit = mus[2] + tail
            at_default = mu_curvature_spectral(expansion, lam[: MAX_CURVATURE_DEGREE + 1])[0]
            assert abs(at_default / limit - 1) < 3e-3  # measured 1.8e-3
        else:
            assert mus[0] == pytest.approx(mus[2], rel=1e-4)


def test_spectral_curvature_stops_where_the_eigenvalues_are_not_resolved():
    x, a = unit(4, 5, 3), np.array([1.0, -0.5, 0.25, 2.0])
    lam = funk_hecke(lambda t: (1 + t) ** 6 / 64, 5, 20)
    errors = np.where(np.arange(21) >= 8, 1.0, 1e-18)  # degrees from 8 on "unresolved"
    mu, degree = mu_curvature_spectral(Expansion(x, a), lam, errors)
    assert degree == 7 and mu == pytest.approx(mu_curvature_spectral(Expansion(x, a), lam[:8])[0], rel=1e-14)
    with pytest.raises(ValueError, match="degree 1"):
        mu_curvature_spectral(Expansion(x, a), lam, np.ones(21))
