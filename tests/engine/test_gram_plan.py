"""GramPlan.region: a Gram matrix filled region by region (as the service's workers fill one) has
the same numbers, bit for bit, as analytic_kernels' whole matrix."""

import numpy as np
import pytest

from engine import Architecture, GramPlan, analytic_kernels

RNG = np.random.default_rng(7)


def sphere(n: int, norms: str) -> np.ndarray:
    """n points of R^3 with one norm, or norms in [0.8, 1.2] (tanh then takes Mehler's series)."""
    x = RNG.normal(size=(n, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x if norms == "one" else x * RNG.uniform(0.8, 1.2, size=(n, 1))


def regions(n: int, edge: int) -> list[slice]:
    return [slice(a, min(a + edge, n)) for a in range(0, n, edge)]


@pytest.mark.parametrize(("activation", "norms"), [("relu", "several"), ("tanh", "several"), ("tanh", "one")])
@pytest.mark.parametrize("symmetric", [True, False])
def test_regions_reassemble_the_whole_matrix_exactly(activation, norms, symmetric):
    x = sphere(1100, norms)
    x[7] = x[900]  # a repeated point off the diagonal: correlation 1 in an off-diagonal tile
    x2 = None if symmetric else sphere(700, norms)
    arch = Architecture("resnet", 4, activation=activation, alpha=0.3)
    whole = analytic_kernels(x, x2, arch=arch)
    plan = GramPlan.of(x, x2, arch=arch)
    expected = "closed" if activation == "relu" else "chebyshev" if norms == "one" else "series"
    assert plan.method.startswith(expected), plan.method  # each of the tiles' methods is covered
    edge = plan.b1  # three regions a side, the last one short
    assembled = {k: np.full(plan.shape, np.nan) for k in plan.kernels}
    for rows in regions(plan.shape[0], edge):
        for cols in regions(plan.shape[1], edge):
            if symmetric and cols.start < rows.start:
                continue
            part = plan.region(rows, cols, workers=1)
            for name, values in part.items():
                assembled[name][rows, cols] = values
                if symmetric and cols != rows:
                    assembled[name][cols, rows] = values.T
    for name in plan.kernels:
        np.testing.assert_array_equal(assembled[name], whole[name])
    if symmetric:
        assert np.array_equal(assembled["ntk"], assembled["ntk"].T)


def test_a_region_off_the_tiles_or_below_the_diagonal_is_refused():
    plan = GramPlan.of(RNG.normal(size=(600, 3)), arch=Architecture("resnet", 2))
    with pytest.raises(ValueError, match="tiles' edges"):
        plan.region(slice(0, 100), slice(0, 100))
    with pytest.raises(ValueError, match="above"):
        plan.region(slice(plan.b1, 2 * plan.b1), slice(0, plan.b1))
