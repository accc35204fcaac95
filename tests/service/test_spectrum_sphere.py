"""POST /v1/spectrum on the sphere: `sphere_dim` and `k_max` through HTTP equal the engine's
`sphere_spectrum`, bad values are a 422 naming the field, and a request without them keeps the
job id it had before they existed."""

import numpy as np
import pytest

from engine import Architecture, circle_spectrum, sphere_spectrum
from service.jobs.ids import job_id
from service.operations.spectrum import MAX_K_MAX, MAX_SPHERE_DIM

pytestmark = pytest.mark.anyio
ARCH = {"kind": "resnet", "depth": 3, "activation": "relu", "sigma_w": 1.0, "sigma_v": 1.0, "alpha": 0.5,
        "sigma_b": 0.0}


@pytest.mark.parametrize(("d", "k_max", "kernel"), [(5, 32, "nngp"), (3, 96, "ntk")])
async def test_sphere_spectrum_equals_the_engine(api, d, k_max, kernel):
    response = await api.post("/v1/spectrum", json={"architecture": ARCH, "kernel": kernel, "n_grid": 64,
                                                    "sphere_dim": d, "k_max": k_max})
    assert response.status_code == 200, response.text
    body = response.json()
    direct = sphere_spectrum(Architecture.from_dict(ARCH), d, k_max, kernel=kernel)
    np.testing.assert_allclose(body["coefficients"], direct["coefficients"], rtol=1e-13, atol=0)
    assert body["multiplicities"] == direct["multiplicities"].tolist()
    fit = direct["decay_exponent"]
    assert body["decay_exponent"] == {**fit, "value": pytest.approx(fit["value"], rel=1e-12),
                                      "standard_error": pytest.approx(fit["standard_error"], rel=1e-9),
                                      "asymptotic": direct["asymptotic_exponent"]}
    assert (body["sphere_dim"], body["nodes"]) == (d, direct["nodes"])
    assert body["decay_exponent"]["k_min"] == k_max // 2 and body["decay_exponent"]["k_max"] == k_max
    # what it answered before is unchanged: the circle's profile and Fourier magnitudes
    circle = circle_spectrum(Architecture.from_dict(ARCH), 64, kernel=kernel)
    np.testing.assert_allclose(body["magnitudes"], circle["magnitudes"], rtol=1e-13, atol=1e-16)


async def test_the_defaults_are_the_circle(api):
    body = (await api.post("/v1/spectrum", json={"architecture": ARCH, "n_grid": 128})).json()
    direct = sphere_spectrum(Architecture.from_dict(ARCH), 2, 64)
    assert body["sphere_dim"] == 2 and len(body["coefficients"]) == 65
    np.testing.assert_allclose(body["coefficients"], direct["coefficients"], rtol=1e-13, atol=0)
    assert body["decay_exponent"]["asymptotic"] == -2.0


async def test_the_new_fields_are_part_of_the_id(api):
    """Stating sphere_dim and k_max at their defaults is the same request as leaving them out, any other
    value another; and no request has the id it had before they existed, so a result cached then (without
    `coefficients`) is never served for it."""
    old = {"architecture": ARCH, "kernel": "ntk", "n_grid": 64, "normalize": True}
    before = job_id("spectrum", old, {})
    ids = []
    for extra in ({}, {"sphere_dim": 2}, {"k_max": 64}, {"sphere_dim": 2, "k_max": 64}, {"sphere_dim": 3},
                  {"k_max": 65}):
        response = await api.post("/v1/spectrum", json={**old, **extra}, headers={"Prefer": "respond-async"})
        assert response.status_code in (200, 202), response.text
        ids.append(response.json()["id"] if response.status_code == 202 else response.headers["etag"].strip('"'))
    assert ids[:4] == [ids[0]] * 4 and before not in ids
    assert len(set(ids)) == 3


@pytest.mark.parametrize(("field", "value"), [
    ("k_max", MAX_K_MAX + 1), ("k_max", 3), ("k_max", 10.5), ("sphere_dim", 1), ("sphere_dim", MAX_SPHERE_DIM + 1),
    ("sphere_dim", "3")])
async def test_out_of_range_is_a_422_naming_the_field(api, field, value):
    response = await api.post("/v1/spectrum", json={"architecture": ARCH, field: value})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
