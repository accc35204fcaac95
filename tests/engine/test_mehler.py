"""Mehler's series (engine.mehler) for tanh, softplus and sigmoid on points of different norms: the dual
against independent references (mpmath, scipy's nested quadrature: tests/data/make_mehler_reference.py),
the kernels against a numpy Gauss-Hermite recursion, parallel, antipodal and identical points, and the plan."""

import json
import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from engine import analytic as analytic_module
from engine import dual_plan, hermite, mehler
from engine.analytic import analytic_kernels
from engine.architectures import Architecture

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "mehler_reference.json").read_text())
PHI = {"tanh": np.tanh, "softplus": lambda u: np.logaddexp(u, 0.0), "sigmoid": lambda u: 0.5 * (1 + np.tanh(u / 2))}
DPHI = {"tanh": lambda u: 1 - np.tanh(u) ** 2, "softplus": lambda u: 0.5 * (1 + np.tanh(u / 2)),
        "sigmoid": lambda u: 0.25 * (1 - np.tanh(u / 2) ** 2)}


@pytest.mark.parametrize("case", REFERENCE, ids=lambda c: f"{c['activation']}-{c['s11']}-{c['s22']}-{c['rho']}")
def test_series_against_high_precision_reference(case):
    """Every degree the plan can take, near and at rho = +-1, different and equal variances: 1e-12."""
    act, s11, s22, rho = case["activation"], case["s11"], case["s22"], case["rho"]
    needed = hermite.degree_needed(act, np.array([s11, s22]))
    for degree in [d for d in hermite.DEGREES if needed is not None and d >= needed]:
        t, tdot = mehler.series_dual(act, degree, jnp.array([[s11]]), jnp.array([[rho * math.sqrt(s11 * s22)]]),
                                     jnp.array([[s22]]))
        assert abs(float(t[0, 0]) - case["t"]) < 1e-12, degree
        assert abs(float(tdot[0, 0]) - case["tdot"]) < 1e-12, degree


def test_a_low_degree_is_exact_at_rho_one_and_bounded_between():
    """Degree 16 at a variance that needs more: the tails make rho = +-1 the whole series, and in between
    the error stays under the Cauchy-Schwarz bound of the omitted terms."""
    s = np.array([1.5])
    a = mehler.coefficients("tanh", jnp.asarray(s))[0]
    tail = float(np.sum(np.asarray(a)[0, 16:] ** 2))
    full = [c for c in REFERENCE if c["activation"] == "tanh" and c["s11"] == c["s22"] == 0.9]
    for rho in (1.0, -1.0, 0.999, 0.5):
        t16, _ = mehler.series_dual("tanh", 16, jnp.array([[1.5]]), jnp.array([[1.5 * rho]]), jnp.array([[1.5]]))
        t320, _ = mehler.series_dual("tanh", 320, jnp.array([[1.5]]), jnp.array([[1.5 * rho]]), jnp.array([[1.5]]))
        bound = 0.0 if abs(rho) == 1 else 2 * tail
        assert abs(float(t16[0, 0] - t320[0, 0])) <= bound + 1e-15
    t, tdot = mehler.diagonal_dual("tanh", jnp.asarray(0.9))
    assert abs(float(t) - full[0]["t"]) < 1e-13 and abs(float(tdot) - full[0]["tdot"]) < 1e-13


def gh_recursion(activation, x, pairs, arch, nodes=240):
    """NNGP and NTK at `pairs` by the recursions of shared/docs/kernels.md, each T and Tdot by a tensor
    Gauss-Hermite rule in the pair's Cholesky coordinates (independent of the engine)."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    z1, z2, ww = z[:, None], z[None, :], w[:, None] * w[None, :]
    sw2, c2 = arch.sigma_w**2, (arch.alpha * arch.sigma_v) ** 2

    def dual(f, s11, s12, s22):
        a = np.sqrt(s11)
        b = s12 / a
        return float(np.sum(f(a * z1) * f(b * z1 + np.sqrt(max(s22 - b * b, 0.0)) * z2) * ww))

    d, out = x.shape[1], {"nngp": [], "ntk": []}
    for i, j in pairs:
        k11, k22, k12 = x[i] @ x[i] / d, x[j] @ x[j] / d, x[i] @ x[j] / d
        th = k12
        for _ in range(arch.depth):
            s11, s12, s22 = sw2 * k11, sw2 * k12, sw2 * k22
            t, tdot = dual(PHI[activation], s11, s12, s22), dual(DPHI[activation], s11, s12, s22)
            th, k12 = th + c2 * (t + tdot * (s12 + sw2 * th)), k12 + c2 * t
            k11 += c2 * dual(PHI[activation], s11, s11, s11)
            k22 += c2 * dual(PHI[activation], s22, s22, s22)
        out["nngp"].append(sw2 * k12)
        out["ntk"].append(sw2 * (k12 + th))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("activation", ["tanh", "softplus", "sigmoid"])
def test_kernels_on_points_of_different_norms(activation):
    """Random norms in [0.5, 1.5], a parallel pair (x, 1.3x), an antipodal one (x, -0.7x), a repeated point:
    every entry against the reference to 1e-11 of the largest; the diagonal and the repeated point exact.
    (Variances up to about 2: the reference's rule resolves them; larger ones take the quadrature.)"""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 3))
    x *= rng.uniform(0.5, 1.5, (12, 1)) / np.linalg.norm(x, axis=1, keepdims=True)
    x[9], x[10], x[11] = 1.3 * x[0], -0.7 * x[1], x[2]
    arch = Architecture("resnet", 4, activation, alpha=0.5)
    q = np.einsum("ij,ij->i", x, x) / 3
    assert analytic_module.resolve("series", arch, q.max()).startswith("series ")
    got = analytic_kernels(x, arch=arch)
    pairs = [(i, j) for i in range(12) for j in range(i, 12)]
    ref = gh_recursion(activation, x, pairs, arch)
    for name in ("nngp", "ntk"):
        values = np.array([got[name][i, j] for i, j in pairs])
        assert np.max(np.abs(values - ref[name])) < 1e-11 * np.max(np.abs(ref[name])), name
        diagonal = [k for k, (i, j) in enumerate(pairs) if i == j]
        np.testing.assert_allclose(values[diagonal], ref[name][diagonal], rtol=1e-13)
        assert got[name][2, 11] == pytest.approx(got[name][2, 2], rel=1e-14)


@pytest.mark.parametrize("kind", ["resnet", "mlp"])
def test_series_matches_the_quadrature_path(monkeypatch, kind):
    arch = Architecture(kind, 3, "softplus", alpha=0.7, sigma_w=1.1, sigma_b=0.2)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(10, 4)), 0.5 * rng.normal(size=(7, 4))
    fast = analytic_kernels(x1, x2, arch=arch)
    monkeypatch.setattr(analytic_module, "method_for", lambda *args: "quadrature")
    slow = analytic_kernels(x1, x2, arch=arch)
    for name in ("nngp", "ntk"):
        assert np.max(np.abs(fast[name] - slow[name])) < 1e-10 * np.max(np.abs(slow[name]))


def test_the_degree_grows_with_the_variance():
    """The plan tests the largest variance only: the degree needed never falls as the variance grows."""
    for activation in ("tanh", "softplus", "sigmoid"):
        degrees = [hermite.degree_needed(activation, np.array([s])) for s in np.geomspace(1e-3, 40, 80)]
        ranks = [len(hermite.DEGREES) if d is None else hermite.DEGREES.index(d) for d in degrees]
        assert ranks == sorted(ranks), activation
        assert degrees[0] == hermite.DEGREES[0] and degrees[-1] is None


def test_the_plan_names_the_engines_path():
    """The host's choice (`engine.analytic.resolve`) is the plan's, and variances beyond the series fall
    back to the quadrature."""
    arch = Architecture("resnet", 5, "tanh", alpha=0.1)
    assert analytic_module.resolve("series", arch, 0.4) == f"series {dual_plan.series_degree(arch, 0.4)}"
    assert dual_plan.layer_methods(arch, None, None, 0.4) == {f"series {dual_plan.series_degree(arch, 0.4)}": 5}
    assert dual_plan.layer_methods(arch, None, None, 50.0) == {"quadrature": 5}
    assert analytic_module.resolve("series", arch, 50.0) == "quadrature"
    assert dual_plan.layer_methods(arch, None, 0.5) == {"quadrature": 5}  # largest q unknown
