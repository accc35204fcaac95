"""Deep networks through the service: the paper's circle experiment and regression answer
with finite values at depth 100 (the engine's deep values are tested against mpmath in
tests/engine/test_regression.py); coincident points and out-of-range numbers are named."""

import numpy as np
import pytest

from engine import Architecture, circle_interpolation, circle_points, paper_target, paper_train_angles

pytestmark = pytest.mark.anyio
DEEP = [{"kind": "mlp", "depth": 100}] + [{"kind": "resnet", "depth": 100, "alpha": a} for a in (1.0, 0.5, 0.1)]


async def test_deep_smoothness_and_regression(api):
    response = await api.post("/v1/smoothness", json={"architectures": DEEP, "n_train": 10, "n_grid": 256})
    assert response.status_code == 200, response.text
    mus = [result["mu"] for result in response.json()["results"]]
    assert all(np.isfinite(mu) and mu > 1 for mu in mus), mus
    expected = circle_interpolation(Architecture.from_dict(DEEP[-1]), 10, n_grid=256)["mu"]
    assert mus[-1] == pytest.approx(expected, rel=1e-12)
    b = paper_train_angles(10)  # b = -pi and pi: one point twice, with one target
    x = circle_points(b).tolist()
    body = {"x_train": x, "y_train": paper_target(b).tolist(), "x_test": x, "architecture": DEEP[1]}
    fit = await api.post("/v1/regression", json=body)
    assert fit.status_code == 200, fit.text
    np.testing.assert_allclose(fit.json()["mean"], paper_target(b), atol=1e-8)


async def test_coincident_points_with_different_targets(api):
    b = paper_train_angles(6)
    body = {"x_train": circle_points(b).tolist(), "y_train": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            "x_test": [[1.0, 0.0]], "architecture": DEEP[1]}
    response = await api.post("/v1/regression", json=body)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert "training points [0, 5] coincide but have different targets" in response.json()["detail"]


async def test_out_of_range_numbers_are_named(api):
    too_deep = {"kind": "resnet", "depth": 150, "alpha": 20.0}
    for arch, field, words in [({"kind": "resnet", "depth": 5, "alpha": 1e200}, "architecture.alpha", "100"),
                               (too_deep, "architecture", "overflow float64 at layer")]:
        response = await api.post("/v1/kernels", json={"x": [[1.0, 0.0]], "architecture": arch})
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert errors[0]["field"] == field and words in errors[0]["message"], errors


@pytest.mark.parametrize("parametrization", ["xavier", "pytorch"])
async def test_initialisations_pass_through(api, parametrization):
    from engine import empirical_ntk, ensemble_member, init_params

    arch = {"kind": "resnet", "depth": 2, "alpha": 0.5}
    x = [[0.3], [-1.2], [2.0]]
    response = await api.post("/v1/empirical-kernels", json={"x": x, "architecture": arch, "width": 8,
                                                             "parametrization": parametrization})
    assert response.status_code == 200, response.text
    engine_arch = Architecture.from_dict(arch)
    params = ensemble_member(init_params(engine_arch, 8, 1, 0, parametrization=parametrization, n_init=1), 0)
    expected = empirical_ntk(engine_arch, params, np.array(x), parametrization=parametrization)
    np.testing.assert_allclose(response.json()["ntk"][0], expected, rtol=1e-12)
