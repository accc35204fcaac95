"""POST /v1/regression with solver nystrom: the engine's answer over HTTP, its progress fields, the
exact solve when every point is a centre, the job id, and a 422 for each field that does not fit."""

import numpy as np
import pytest

from engine import Architecture, kernel_regression, nystrom_regression
from service.operations.registry import estimate
from service.operations.regression import RegressionRequest

pytestmark = pytest.mark.anyio
ARCH = {"kind": "resnet", "depth": 3, "alpha": 0.5}
RNG = np.random.default_rng(2)
X = RNG.standard_normal((120, 5))
X /= np.linalg.norm(X, axis=1, keepdims=True)
XT = X[:10] + 0.1
Y = np.cos(2 * X[:, 0]) - X[:, 4]
BODY = {"x_train": X.tolist(), "y_train": Y.tolist(), "x_test": XT.tolist(), "architecture": ARCH,
        "kernel": "nngp", "ridge": 1e-4, "solver": "nystrom", "centers": 40, "seed": 7, "return_variance": True}


async def test_nystrom_over_http_equals_the_engine(api):
    response = await api.post("/v1/regression", json=BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    direct = nystrom_regression(X, Y, XT, arch=Architecture.from_dict(ARCH), kernel="nngp", ridge=1e-4, centres=40,
                                seed=7, return_variance=True)
    np.testing.assert_allclose(body["mean"], direct.prediction.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(body["variance"], direct.prediction.variance, rtol=1e-8, atol=1e-12)
    assert (body["centers"], body["iterations"]) == (40, direct.iterations) and body["residual"] < 1e-10


async def test_every_point_a_centre_answers_the_exact_solve(api):
    body = BODY | {"centers": 500, "return_variance": False, "kernel": "ntk"}
    nystrom = (await api.post("/v1/regression", json=body)).json()
    exact = kernel_regression(X, Y, XT, arch=Architecture.from_dict(ARCH), ridge=1e-4).mean
    assert nystrom["centers"] == 120
    np.testing.assert_allclose(nystrom["mean"], exact, rtol=0, atol=1e-8 * np.abs(exact).max())


def test_defaults_fill_in_and_exact_requests_keep_their_fields_empty():
    request = RegressionRequest.model_validate(BODY | {"x_train": X, "y_train": Y, "x_test": XT, "centers": None,
                                                       "seed": None})
    assert (request.centers, request.seed, request.tolerance, request.max_iterations) == (4096, 0, 1e-10, 200)
    exact = RegressionRequest.model_validate({"x_train": X, "y_train": Y, "x_test": XT, "architecture": ARCH})
    assert exact.solver == "exact" and exact.centers is None
    few = estimate(RegressionRequest.model_validate(BODY | {"x_train": X, "y_train": Y, "x_test": XT,
                                                            "centers": 20}))
    assert few.total("compute") < estimate(request).total("compute")  # M = 120: capped at n
    x = np.random.default_rng(0).standard_normal((100_000, 10))
    large = estimate(RegressionRequest.model_validate(BODY | {"x_train": x, "y_train": x[:, 0], "x_test": x[:100],
                                                              "centers": 4096}))
    assert large.total("memory") > 100_000 * 4096 * 8  # K_nM in memory: 3.3 GB


@pytest.mark.parametrize(("change", "field"), [
    ({"solver": "exact"}, "centers"),      # a Nystrom field with the exact solver
    ({"t": 1.0}, "t"),                     # GD time: exact only
    ({"ridge": 0.0}, "ridge"),             # singular without a ridge
    ({"centers": 0}, "centers"),
    ({"tolerance": 1.0}, "tolerance"),
    ({"max_iterations": 0}, "max_iterations"),
    ({"solver": "falkon"}, "solver"),
])
async def test_bad_input_is_a_422_naming_the_field(api, change, field):
    response = await api.post("/v1/regression", json=BODY | change)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert field in fields, fields
