"""Funk-Hecke spectra on S^(d-1) (engine.sphere) against independent references: closed forms
(the linear kernel, the arc-cosine kernels on the circle), mpmath's Gegenbauer polynomials, the
formula integrated in 30 digits (mpmath) for kernels written out by hand, the circle spectrum's
FFT (d = 2), the expansion K(t) = sum_k lambda_k N(d, k) P_{k,d}(t), and the decay laws."""

import math

import numpy as np
import pytest

from engine import Architecture, circle_spectrum
from engine.architectures import ACTIVATIONS
from engine.sphere import (
    decay_exponent,
    funk_hecke,
    gegenbauer,
    multiplicities,
    nodes_for,
    sphere_profile,
    sphere_spectrum,
)

mpmath = pytest.importorskip("mpmath", reason="mpmath is in the test extra")


def arc_cosine(order: int, t: np.ndarray) -> np.ndarray:
    """Cho & Saul's arc-cosine kernels kappa_0 and kappa_1 (unit inputs)."""
    th = np.arccos(np.clip(t, -1.0, 1.0))
    if order == 0:
        return 1.0 - th / np.pi
    return (np.sin(th) + (np.pi - th) * np.cos(th)) / np.pi


@pytest.mark.parametrize("d", [2, 3, 5, 10])
def test_gegenbauer_against_mpmath(d):
    t = np.array([-1.0, -0.93, -0.2, 0.013, 0.41, 0.999, 1.0])  # no exact zero of P_k: mpmath would hunt it
    p = gegenbauer(256, d, t)
    for k in (0, 1, 2, 7, 64, 255, 256):
        if d == 2:
            want = [mpmath.chebyt(k, x) for x in t]
        else:
            a = mpmath.mpf(d - 2) / 2
            want = [mpmath.gegenbauer(k, a, x) / mpmath.gegenbauer(k, a, 1) for x in t]
        np.testing.assert_allclose(p[k], np.array(want, dtype=float), rtol=0, atol=1e-13, err_msg=f"k={k}")


def test_multiplicities():
    k = np.arange(11)
    np.testing.assert_array_equal(multiplicities(2, 10), np.where(k == 0, 1, 2))
    np.testing.assert_array_equal(multiplicities(3, 10), 2 * k + 1)
    np.testing.assert_array_equal(multiplicities(4, 10), (k + 1) ** 2)
    for d in (5, 10):  # harmonics of degree <= k: the polynomials of degree k and k - 1 in d variables
        total = np.cumsum(multiplicities(d, 10))
        want = [math.comb(j + d - 1, d - 1) + (math.comb(j + d - 2, d - 1) if j else 0) for j in k]
        np.testing.assert_array_equal(total, want)


@pytest.mark.parametrize("d", [2, 3, 4, 7, 10])
def test_linear_kernel(d):
    """K(t) = t: lambda_1 = (|S^(d-2)| / |S^(d-1)|) int cos^2 sin^(d-2) = B(3/2, (d-1)/2) Gamma(d/2) /
    (sqrt(pi) Gamma((d-1)/2)) = 1/d, the others 0; and lambda_1 N(d, 1) P_1(t) = t."""
    lam = funk_hecke(lambda t: t, d, 12)
    want = np.zeros(13)
    want[1] = 1 / d
    np.testing.assert_allclose(lam, want, rtol=0, atol=1e-15)
    assert lam[1] * multiplicities(d, 1)[1] == pytest.approx(1.0, rel=1e-14)
    # the engine's linear MLP: NNGP = sigma_w^4 q12 = 4 t / d for unit inputs of R^d
    spectrum = sphere_spectrum(Architecture("mlp", 1, activation="linear", sigma_w=math.sqrt(2)), d, 8,
                               kernel="nngp")
    np.testing.assert_allclose(spectrum["coefficients"], 4 / d * want[:9], rtol=0, atol=1e-15)


def test_arc_cosine_kernels_on_the_circle():
    """Fourier coefficients derived by hand: kappa_0(cos th) = 1 - th/pi has 1/2 and 2 / (pi k)^2 at
    odd k; kappa_1 has 4 / pi^2, 1/4 at k = 1, 4 / (pi^2 (k^2 - 1)^2) at even k, 0 at odd k >= 3."""
    k = np.arange(257)
    want0 = np.where(k % 2 == 1, 2 / (np.pi * np.maximum(k, 1)) ** 2, 0.0)
    want0[0] = 0.5
    want1 = np.where(k % 2 == 0, 4 / (np.pi**2 * np.maximum(k * k - 1.0, 1.0) ** 2), 0.0)
    want1[0], want1[1] = 4 / np.pi**2, 0.25
    for order, want in ((0, want0), (1, want1)):
        lam = funk_hecke(lambda t, order=order: arc_cosine(order, t), 2, 256)
        np.testing.assert_allclose(lam, want, rtol=0, atol=1e-12 * want[0])
    # the engine's depth-1 ReLU MLP: NNGP = kappa_1 / (2 d), NTK = kappa_1 / (2 d) + t kappa_0 / (2 d)
    arch = Architecture("mlp", 1)
    for d in (2, 3, 10):
        t = np.linspace(-1, 1, 9)
        np.testing.assert_allclose(sphere_profile(arch, d, t, kernel="nngp"), arc_cosine(1, t) / (2 * d),
                                   rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(sphere_profile(arch, d, t, kernel="ntk"),
                                   (arc_cosine(1, t) + t * arc_cosine(0, t)) / (2 * d), rtol=1e-14, atol=1e-16)


def _hand_kernel(mp, arch: Architecture, d: int, kernel: str, t):
    """The engine's recursion (shared/docs/kernels.md section 2) for ReLU and erf, written out in
    mpmath for unit inputs of R^d (q = t / d, q11 = 1 / d)."""
    sw2, sb2, c = mp.mpf(arch.sigma_w) ** 2, mp.mpf(arch.sigma_b) ** 2, (mp.mpf(arch.alpha) * arch.sigma_v) ** 2

    def dual(s11, s12, s22):
        if arch.activation == "relu":
            norm = mp.sqrt(s11 * s22)
            th = mp.acos(max(min(s12 / norm, 1), -1))
            return norm / (2 * mp.pi) * (mp.sin(th) + (mp.pi - th) * mp.cos(th)), (mp.pi - th) / (2 * mp.pi)
        den = (1 + 2 * s11) * (1 + 2 * s22)
        return 2 / mp.pi * mp.asin(2 * s12 / mp.sqrt(den)), 4 / mp.pi / mp.sqrt(den - 4 * s12**2)

    q, q11 = t / d, mp.mpf(1) / d
    if arch.kind == "resnet":
        k11, k12, th = q11, q, q
        for _ in range(arch.depth):
            s11, s12 = sw2 * k11 + sb2, sw2 * k12 + sb2
            t12, tdot = dual(s11, s12, s11)
            k12, th = k12 + c * t12, th + c * (t12 + tdot * (s12 + sw2 * th))
            k11 = k11 + c * dual(s11, s11, s11)[0]
        return sw2 * k12 + sb2 if kernel == "nngp" else sw2 * (k12 + th) + sb2
    s11, s12 = sw2 * q11 + sb2, sw2 * q + sb2
    th = s12
    for _ in range(arch.depth):
        t12, tdot = dual(s11, s12, s11)
        s12, th = sw2 * t12 + sb2, sw2 * t12 + sb2 + sw2 * tdot * th
        s11 = sw2 * dual(s11, s11, s11)[0] + sb2
    return s12 if kernel == "nngp" else th


def _mp_coefficient(mp, f, d: int, k: int):
    """lambda_k by the formula in mpmath: tanh-sinh quadrature over pieces of [0, pi] that each hold
    about a quarter period of P_{k,d}, with P_{k,d} from mpmath's Gegenbauer (Chebyshev at d = 2)."""
    a = mp.mpf(d - 2) / 2

    def p(x):
        return mp.chebyt(k, x) if d == 2 else mp.gegenbauer(k, a, x) / mp.gegenbauer(k, a, 1)

    ratio = mp.gamma(mp.mpf(d) / 2) / (mp.sqrt(mp.pi) * mp.gamma(mp.mpf(d - 1) / 2))
    cuts = mp.linspace(0, mp.pi, 2 * k + 3)
    return ratio * mp.quad(lambda th: f(mp.cos(th)) * p(mp.cos(th)) * mp.sin(th) ** (d - 2), cuts)


@pytest.mark.parametrize(("arch", "d", "kernel", "degrees"), [
    (Architecture("resnet", 3, alpha=0.5, sigma_b=0.3), 3, "ntk", (0, 1, 5, 40)),
    (Architecture("mlp", 4), 10, "nngp", (0, 2, 33)),
    (Architecture("resnet", 20, sigma_w=1.2, alpha=1.0), 7, "ntk", (0, 3, 64)),
    (Architecture("mlp", 2, activation="erf", sigma_w=1.5, sigma_b=0.2), 5, "ntk", (0, 1, 6, 12)),
    (Architecture("resnet", 2, alpha=0.7), 2, "ntk", (0, 1, 100)),
], ids=["resnet-d3", "mlp-d10", "resnet20-d7", "erf-d5", "resnet-d2"])
def test_against_high_precision_quadrature(arch, d, kernel, degrees):
    """The engine's coefficients against the formula integrated in 30 digits, for the kernel recursion
    written out by hand in mpmath: within 1e-11 of lambda_0."""
    got = sphere_spectrum(arch, d, max(max(degrees), 4), kernel=kernel)["coefficients"]
    with mpmath.workdps(30):
        f = lambda t: _hand_kernel(mpmath, arch, d, kernel, t)  # noqa: E731
        want = {k: float(_mp_coefficient(mpmath, f, d, k)) for k in degrees}
    for k in degrees:
        assert abs(got[k] - want[k]) <= 1e-11 * want[0], (k, got[k], want[k])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_converges(activation):
    """The default rule against one of four times the nodes, k <= 256, d = 3 and 10: within 1e-10 of lambda_0."""
    arch = Architecture("resnet", 6, activation=activation, alpha=0.8, sigma_b=0.2)
    for d in (3, 10):
        f = lambda t, d=d: sphere_profile(arch, d, t, kernel="ntk")  # noqa: E731
        fine = funk_hecke(f, d, 256, 4 * nodes_for(256, d))
        assert np.max(np.abs(funk_hecke(f, d, 256) - fine)) <= 1e-10 * fine[0], d


def test_the_circle_spectrum_is_the_case_d2():
    """At d = 2 the FFT of the profile on n_grid points aliases: its c_k is sum_j lambda_{|k + j n|}.
    For a ReLU NNGP (lambda_k ~ k^-4) the sum to |j| <= 16 equals the FFT to rounding; for the NTK
    (k^-2) the FFT's distance to lambda_k is its aliasing, about lambda_{n - k} + lambda_{n + k}."""
    n = 64
    for kernel, arch in (("nngp", Architecture("resnet", 4, alpha=0.6)), ("ntk", Architecture("mlp", 3))):
        lam = sphere_spectrum(arch, 2, 17 * n, kernel=kernel)["coefficients"]
        fft = circle_spectrum(arch, n, kernel=kernel, normalize=False)["magnitudes"]
        k = np.arange(n // 2 + 1)
        aliased = sum(lam[np.abs(k + j * n)] for j in range(-16, 17))
        if kernel == "nngp":
            np.testing.assert_allclose(fft, aliased, rtol=0, atol=1e-11 * lam[0])
        else:
            gap, alias = np.abs(fft - lam[k]), lam[n - k] + lam[n + k]
            assert np.all(gap <= 4 * alias) and np.all(gap >= alias)
            assert np.max(gap) <= 1e-3 * lam[0]


@pytest.mark.parametrize("d", [3, 10])
def test_the_expansion_reconstructs_the_kernel(d):
    """K(t) = sum_{k <= 256} lambda_k N(d, k) P_{k,d}(t). Inside (-1, 1) the series converges fast (to
    1e-10 of K(1)); at t = +-1 what is left out is the tail of terms ~ k^-4 (the ReLU NNGP:
    lambda_k ~ k^-(d + 2), N(d, k) ~ k^(d - 2)), about 256 / 3 times the last term at t = 1. A smooth (erf)
    kernel's series is exact to rounding everywhere by k = 24: its lambda_k decay geometrically (beyond,
    at d = 10, each degree's rounding is multiplied by N(10, k), up to 2.6e14)."""
    t = np.array([-1.0, -0.6, 0.0, 0.3, 0.9, 1.0])
    arch = Architecture("resnet", 4, alpha=0.8)
    out = sphere_spectrum(arch, d, 256, kernel="nngp")
    terms = out["coefficients"] * out["multiplicities"]
    gap = np.abs(terms @ gegenbauer(256, d, t) - sphere_profile(arch, d, t, kernel="nngp"))
    peak, tail = sphere_profile(arch, d, np.ones(1), kernel="nngp")[0], 256 / 3 * abs(terms[-1])
    assert np.all(gap[1:-1] <= 1e-10 * peak), gap / peak
    assert 0.2 * tail <= gap[-1] <= 2 * tail and gap[0] <= 2 * tail, (gap, tail)  # signs alternate at -1
    smooth = Architecture("mlp", 3, activation="erf")
    out = sphere_spectrum(smooth, d, 24)
    series = (out["coefficients"] * out["multiplicities"]) @ gegenbauer(24, d, t)
    want = sphere_profile(smooth, d, t)
    np.testing.assert_allclose(series, want, rtol=0, atol=1e-12 * want[-1])


@pytest.mark.parametrize(("kind", "d"), [("resnet", 2), ("mlp", 3), ("resnet", 3), ("resnet", 5)])
def test_decay_exponents_near_the_laws(kind, d):
    """The ReLU NTK decays as k^-d and the NNGP as k^-(d + 2) (fitted over 128 <= k <= 256). The ResNet's
    even degrees are ~1.7 times its odd ones there: the fit's standard error (0.11) says so."""
    arch = Architecture(kind, 3, alpha=0.5)
    for kernel, law in (("ntk", -d), ("nngp", -(d + 2))):
        out = sphere_spectrum(arch, d, 256, kernel=kernel, fit_range=(128, 256))
        fit = out["decay_exponent"]
        assert out["asymptotic_exponent"] == law and fit["k_min"] == 128 and fit["k_max"] == 256
        assert abs(fit["value"] - law) < 0.15, (kernel, fit)  # 0.12 short at d = 5 (pre-asymptotic)
        assert fit["standard_error"] < (0.15 if kind == "resnet" else 0.05)


def test_the_fit_skips_zeros_and_reports_its_range():
    k = np.arange(65, dtype=float)
    lam = np.where(k % 2 == 0, 3.0 * np.maximum(k, 1) ** -4.5, 0.0)
    fit = decay_exponent(lam, 8, 64)
    assert fit["value"] == pytest.approx(-4.5, abs=1e-12) and fit["standard_error"] < 1e-12
    assert (fit["k_min"], fit["k_max"], fit["points"]) == (8, 64, 29)
    assert decay_exponent(np.r_[1.0, np.zeros(9)], 1, 9)["value"] is None
    with pytest.raises(ValueError, match="k_min"):
        decay_exponent(lam, 0, 64)


def test_refusals():
    arch = Architecture("mlp", 2)
    with pytest.raises(ValueError, match="d"):
        sphere_spectrum(arch, 1, 8)
    with pytest.raises(ValueError, match="k_max"):
        sphere_spectrum(arch, 3, 2)
    with pytest.raises(ValueError, match="kernel"):
        sphere_spectrum(arch, 3, 8, kernel="gp")
