"""Results over the JSON limit, computed now or found in the cache: the Python client, and
what a POST answers by its Accept and Prefer headers (README: "Large results")."""

import io

import httpx
import numpy as np

from engine import Architecture, analytic_kernels
from service.client import Client

ARCH = {"kind": "resnet", "depth": 4, "alpha": 0.1}


def large_points(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(200, 3))  # 2 x 200^2 numbers: over the tests' JSON limit


def test_client_works_cold_and_on_a_cache_hit(server, settings):
    x = large_points(23)
    assert 2 * len(x) ** 2 > settings.limits.json_elements
    want = analytic_kernels(x, arch=Architecture.from_dict(ARCH))
    with Client(server) as rk:
        cold = rk.kernels(x, architecture=ARCH)
        hit = rk.kernels(x, architecture=ARCH)
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(cold[name], want[name], rtol=1e-12, atol=0)
        np.testing.assert_array_equal(hit[name], cold[name])


def test_a_post_answers_by_accept_and_prefer(server):
    body = {"x": large_points(24).tolist(), "architecture": ARCH}
    with httpx.Client(base_url=server, timeout=120) as http:
        npz = http.post("/v1/kernels", json=body, headers={"Accept": "application/x-npz"})
        assert npz.status_code == 200 and npz.headers["x-cache"] == "miss"
        tag = npz.headers["etag"]
        with np.load(io.BytesIO(npz.content)) as arrays:
            assert arrays["ntk"].shape == (200, 200)
        # the same POST again: a cache hit; with its ETag, 304 and no body
        again = http.post("/v1/kernels", json=body, headers={"Accept": "application/x-npz"})
        assert again.status_code == 200 and again.headers["x-cache"] == "hit" and again.content == npz.content
        unchanged = http.post("/v1/kernels", json=body,
                              headers={"Accept": "application/x-npz", "If-None-Match": tag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        # JSON is not acceptable at this size: 406 naming the job and its binary links
        refused = http.post("/v1/kernels", json=body)
        assert refused.status_code == 406 and refused.headers["content-type"] == "application/problem+json"
        job = refused.json()["job"]
        assert refused.headers["location"] == f"/v1/jobs/{job}" and set(refused.json()["arrays"]) == {"nngp", "ntk"}
        # return=minimal: the job's status document, whatever the result's size
        minimal = http.post("/v1/kernels", json=body, headers={"Prefer": "return=minimal"})
        assert minimal.status_code == 200 and minimal.headers["preference-applied"] == "return=minimal"
        status = minimal.json()
        assert status["id"] == job and status["result"]["arrays"]["ntk"]["shape"] == [200, 200]


def test_one_array_is_json_when_it_alone_fits_the_limit(server, settings):
    x = large_points(25)
    assert len(x) ** 2 <= settings.limits.json_elements < 2 * len(x) ** 2  # one array fits, both do not
    want = analytic_kernels(x, arch=Architecture.from_dict(ARCH))
    with httpx.Client(base_url=server, timeout=120) as http:
        status = http.post("/v1/kernels", json={"x": x.tolist(), "architecture": ARCH},
                           headers={"Prefer": "return=minimal"}).json()
        assert status["status"] == "succeeded"
        whole = http.get(f"/v1/jobs/{status['id']}/result")
        one = http.get(f"/v1/jobs/{status['id']}/result", params={"array": "ntk"})
    assert whole.status_code == 406
    assert one.status_code == 200 and one.headers["content-type"] == "application/json"
    np.testing.assert_allclose(np.array(one.json()), want["ntk"], rtol=1e-12, atol=0)
