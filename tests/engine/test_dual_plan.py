"""engine.dual_plan, the numpy plan of each layer's path (closed form, Chebyshev interpolant of degree
32 or 128, or the quadrature fallback) that admission charges, against the engine's own decision:
its accuracy test (`engine.chebyshev`) at the limits, either side, and at the layers' variances."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from engine import chebyshev, dual_plan
from engine.analytic import analytic_diagonal, method_for
from engine.architectures import Architecture
from engine.dual import CLOSED_FORMS, quadrature_dual


def accurate(activation: str, s11: float, s22: float, degree: int) -> bool:
    """The engine's test (`chebyshev.interpolated_dual`) of the degree's interpolant of (T, Tdot)."""
    nodes = chebyshev.lobatto(degree)
    t, tdot = quadrature_dual(activation, jnp.asarray(s11), jnp.asarray(nodes * math.sqrt(s11 * s22)),
                              jnp.asarray(s22))
    values = np.stack([np.asarray(t), np.asarray(tdot)])
    coef = values @ chebyshev._transform(degree).T
    scale = np.maximum(np.abs(values).max(axis=1), np.finfo(np.float64).tiny)
    return bool(np.all(np.abs(coef[:, -chebyshev.TAIL:]).sum(axis=1) <= chebyshev.TOLERANCE * scale))


def engine_plan(arch: Architecture, q1: float, q2: float) -> list[str]:
    """Each layer's path as the engine's test decides it, at the plan's variances."""
    plan = []
    for s11, s22 in zip(dual_plan.layer_variances(arch, q1), dual_plan.layer_variances(arch, q2), strict=True):
        degree = next((d for d in chebyshev.DEGREES if accurate(arch.activation, s11, s22, d)), None)
        plan.append("quadrature" if degree is None else f"chebyshev {degree}")
    return plan


def test_the_plan_mirrors_the_engines_constants():
    assert set(dual_plan.CLOSED) == set(CLOSED_FORMS)
    assert dual_plan.DEGREES == chebyshev.DEGREES
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    q = np.einsum("ij,ij->i", x, x) / 2
    for activation in ("relu", "tanh"):
        assert dual_plan.method(activation, list(q), list(q)) == method_for(activation, q, q)
    assert dual_plan.method("tanh", [1.0, 2.0], [1.0]) == method_for("tanh", np.array([1.0, 2.0]), q) == "series"


@pytest.mark.parametrize("activation", sorted(dual_plan.CHEBYSHEV_LIMITS))
def test_each_limit_is_the_engines_either_side(activation):
    """At each limit the engine's test passes, 25% above it fails; every pair of variances whose
    larger is under the limit passes (a small grid)."""
    for degree, limit in zip(chebyshev.DEGREES, dual_plan.CHEBYSHEV_LIMITS[activation], strict=True):
        assert accurate(activation, limit, limit, degree), (degree, limit)
        assert not accurate(activation, 1.25 * limit, 1.25 * limit, degree), (degree, limit)
        for s11 in (1e-3, 0.5 * limit):
            for s22 in (0.1 * limit, limit):
                assert accurate(activation, s11, s22, degree), (degree, s11, s22)


def test_the_variances_are_the_engines_diagonal():
    """The variance entering layer L + 1 is the NNGP's diagonal after L layers (engine.analytic)."""
    x = np.array([[1.2, -0.4, 0.3]])
    q = float(x[0] @ x[0]) / 3
    for arch in (Architecture("resnet", 6, "tanh", alpha=0.7, sigma_b=0.3), Architecture("mlp", 4, "sigmoid")):
        planned = dual_plan.layer_variances(arch.replace(depth=arch.depth + 1), q)[-1]
        engine = analytic_diagonal(x, arch=arch, kernels=("nngp",))["nngp"][0]
        assert planned == pytest.approx(engine, rel=1e-8)  # Gauss-Hermite against the polar quadrature


@pytest.mark.parametrize(("arch", "q1", "q2"), [
    (Architecture("resnet", 12, "tanh", sigma_w=1.5), 0.5, 0.5),  # crosses both limits
    (Architecture("resnet", 8, "sigmoid", alpha=3.0), 0.5, 2.0),
    (Architecture("mlp", 6, "softplus", sigma_w=2.0, sigma_b=1.0), 0.5, 0.5),
])
def test_the_plan_is_the_engines_decision_layer_by_layer(arch, q1, q2):
    planned = dual_plan.layer_methods(arch, q1, q2)
    engine = engine_plan(arch, q1, q2)
    assert sorted(planned.elements()) == sorted(engine), (planned, engine)
    assert len(planned) > 1 or arch.kind == "mlp"  # the cases take more than one path


def test_closed_forms_and_several_norms():
    assert dual_plan.layer_methods(Architecture("resnet", 7), 0.5, 0.5) == {"closed": 7}
    assert dual_plan.layer_methods(Architecture("resnet", 7, "tanh"), None, 0.5) == {"quadrature": 7}
