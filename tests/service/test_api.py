"""The HTTP API in-process (httpx ASGITransport): results equal the engine's, caching,
content negotiation, jobs, and a problem+json for every bad input."""

import io
import json
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest

from engine import (
    Architecture,
    analytic_kernels,
    circle_points,
    empirical_ntk,
    gram_spectrum,
    init_params,
    jacobian_bounds,
    kernel_regression,
    paper_train_angles,
)
from engine import train as engine_train
from service.http.app import create_app
from service.jobs.lifecycle import Jobs
from service.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
ARCH = {"kind": "resnet", "depth": 5, "alpha": 0.1}
CASES = json.loads((Path(__file__).parents[1] / "data" / "kernels_neural_tangents.json").read_text())["cases"]
PROBLEM = "application/problem+json"


def points(n, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_reference_kernels_through_http(api, case):
    response = await api.post("/v1/kernels", json={"x": case["x1"], "x2": case["x2"],
                                                   "architecture": case["architecture"]})
    assert response.status_code == 200, response.text
    for name in ("nngp", "ntk"):
        got, want = np.array(response.json()[name]), np.array(case[name])
        assert np.max(np.abs(got - want)) <= 1e-6 * np.max(np.abs(want)), name


async def test_kernels_equal_the_engine_and_are_cached(api):
    x, x2 = points(40), points(7, seed=1)
    body = {"x": x.tolist(), "x2": x2.tolist(), "architecture": {"kind": "mlp", "depth": 3, "sigma_b": 0.2}}
    first = await api.post("/v1/kernels", json=body)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    direct = analytic_kernels(x, x2, arch=Architecture("mlp", 3, sigma_b=0.2))
    for name in ("nngp", "ntk"):
        np.testing.assert_array_equal(np.array(first.json()[name]), direct[name])
    assert first.json()["shape"] == [40, 7]

    again = await api.post("/v1/kernels", json=body)
    assert again.headers["x-cache"] == "hit" and again.content == first.content
    tag = first.headers["etag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    assert (await api.post("/v1/kernels", json=body, headers={"If-None-Match": tag})).status_code == 304
    job = tag.strip('"')
    assert (await api.get(f"/v1/jobs/{job}/result", headers={"If-None-Match": tag})).status_code == 304

    npy = await api.get(f"/v1/jobs/{job}/result?array=ntk", headers={"Accept": "application/x-npy"})
    assert npy.headers["content-type"] == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content)), direct["ntk"])
    npz = await api.get(f"/v1/jobs/{job}/result", headers={"Accept": "application/x-npz"})
    with np.load(io.BytesIO(npz.content)) as arrays:
        assert sorted(arrays.files) == ["nngp", "ntk"]
        np.testing.assert_array_equal(arrays["nngp"], direct["nngp"])
    assert_problem(await api.get(f"/v1/jobs/{job}/result", headers={"Accept": "application/x-npy"}), 406)
    assert_problem(await api.get(f"/v1/jobs/{job}/result", headers={"Accept": "text/html"}), 406)
    assert_problem(await api.get(f"/v1/jobs/{job}/result?array=nope"), 404, "array")

    status = (await api.get(f"/v1/jobs/{job}")).json()
    assert status["status"] == "succeeded" and status["attempts"] == 1
    assert status["result"]["arrays"]["ntk"]["shape"] == [40, 7]


async def test_json_over_the_cap_names_the_binary_form(api):
    x = points(160)  # 2 x 160^2 = 51200 numbers > the tests' cap of 50000
    response = await api.post("/v1/kernels", json={"x": x.tolist(), "architecture": ARCH})
    assert_problem(response, 406)
    assert "application/x-npy" in response.json()["detail"]
    link = response.json()["arrays"]["ntk"]
    npy = await api.get(link, headers={"Accept": "application/x-npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content)),
                                  analytic_kernels(x, arch=Architecture.from_dict(ARCH))["ntk"])


async def test_respond_async_then_poll(api):
    body = {"x": points(30, seed=5).tolist(), "architecture": {"kind": "resnet", "depth": 9}}
    response = await api.post("/v1/kernels", json=body, headers={"Prefer": "respond-async"})
    assert response.status_code == 202 and response.headers["retry-after"]
    location = response.headers["location"]
    assert location == f"/v1/jobs/{response.json()['id']}"
    for _ in range(600):
        status = (await api.get(location)).json()
        if status["status"] == "succeeded":
            break
        await anyio.sleep(0.1)
    assert status["status"] == "succeeded" and status["progress"] == 1.0
    result = await api.get(status["links"]["result"])
    assert result.status_code == 200 and result.json()["shape"] == [30, 30]


async def test_regression_equals_engine(api):
    x, y, xt = points(12), np.sin(np.arange(12.0)), points(5, seed=2)
    body = {"x_train": x.tolist(), "y_train": y.tolist(), "x_test": xt.tolist(), "architecture": ARCH,
            "kernel": "nngp", "ridge": 1e-6, "return_variance": True}
    response = await api.post("/v1/regression", json=body)
    direct = kernel_regression(x, y, xt, arch=Architecture.from_dict(ARCH), kernel="nngp", ridge=1e-6,
                               return_variance=True)
    # the worker's LAPACK runs on one thread (Dask's default), this process's on several: the
    # solves agree to round-off, not bit for bit (measured 2e-11 relative)
    np.testing.assert_allclose(response.json()["mean"], direct.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(response.json()["variance"], direct.variance, rtol=1e-9, atol=1e-12)


async def test_smoothness_reproduces_the_published_mu(api):
    archs = [{"kind": "mlp", "depth": 5}, {"kind": "resnet", "depth": 5, "alpha": 1.0}, ARCH]
    response = await api.post("/v1/smoothness", json={"architectures": archs, "n_train": 6})
    mus = [round(r["mu"], 3) for r in response.json()["results"]]
    assert mus == [58.357, 13.993, 1.012] or [f"{m:.4g}" for m in mus] == ["58.36", "13.99", "1.012"]
    assert len(response.json()["interpolants"]) == 3 and len(response.json()["angles"]) == 4096
    rkhs = await api.post("/v1/smoothness", json={"architectures": archs[:1], "n_train": 6, "measure": "rkhs",
                                                  "n_grid": 512})
    entry = rkhs.json()["results"][0]
    assert 0 < entry["mu"] <= 1 + 1e-6 and entry["bandwidth"] == 0.5 and entry["cutoff"] >= 1
    grid = np.linspace(-np.pi, np.pi, 256, endpoint=False)
    samples = await api.post("/v1/smoothness", json={"samples": np.sin(2 * grid).tolist()})
    assert samples.json()["samples"]["mu"] == pytest.approx(4 * np.sqrt(0.5) * np.sqrt(2), rel=1e-12)


async def test_bounds_and_spectrum_equal_engine(api):
    bounds = await api.post("/v1/bounds", json={"architecture": ARCH, "width": 500, "input_dim": 2})
    assert bounds.json() == jacobian_bounds(Architecture.from_dict(ARCH), 500, 2)
    overflow = await api.post("/v1/bounds", json={"architecture": {"kind": "resnet", "depth": 200, "sigma_w": 1e3},
                                                  "width": 500, "input_dim": 2})
    assert_problem(overflow, 422)
    x = circle_points(paper_train_angles(10))
    spectrum = await api.post("/v1/spectrum", json={"architecture": ARCH, "n_grid": 64, "x": x.tolist()})
    body = spectrum.json()
    assert body["profile"][32] == pytest.approx(1.0) and len(body["magnitudes"]) == 33
    direct = gram_spectrum(x, arch=Architecture.from_dict(ARCH))
    np.testing.assert_allclose(body["eigenvalues"], direct["eigenvalues"], rtol=1e-12)
    assert body["condition"] == pytest.approx(direct["condition"], rel=1e-12)


async def test_finite_networks_equal_engine(api):
    arch = Architecture("resnet", 2, alpha=0.5)
    x = points(6, d=2)
    body = {"architecture": arch.to_dict(), "width": 32, "n_init": 2, "seed": 3, "x": x.tolist(),
            "kernels": ["ntk", "nngp"], "jacobian_norms": True}
    result = (await api.post("/v1/empirical-kernels", json=body)).json()
    ensemble = init_params(arch, 32, 2, 3, n_init=2)
    for i in range(2):
        network = {k: v[i] for k, v in ensemble.items()}
        np.testing.assert_allclose(result["ntk"][i], empirical_ntk(arch, network, x), rtol=1e-13)
    assert np.array(result["nngp"]).shape == (6, 6) and np.array(result["jacobian_norms"]).shape == (2, 6)

    y = np.cos(np.arange(6.0))
    train = {"architecture": arch.to_dict(), "width": 32, "x_train": x.tolist(), "y_train": y.tolist(),
             "x_test": x[:2].tolist(), "steps": 40, "seed": 1, "track_ntk": True, "return_ntk": True}
    got = (await api.post("/v1/train", json=train)).json()
    direct = engine_train(arch, x, y, width=32, steps=40, seed=1, x_test=x[:2], track_ntk=True)
    np.testing.assert_allclose(got["loss"], direct["loss"], rtol=1e-12)
    np.testing.assert_allclose(got["mean_prediction"], direct["mean_prediction"], rtol=1e-12)
    assert got["lr"] == direct["lr"] and np.array(got["ntk_final"]).shape == (1, 6, 6)


BAD = [
    ("malformed JSON", b'{"x": [[1, 0', None, 400),
    ("string in array", {"x": [[1, "a"]], "architecture": ARCH}, "x.0.1", 422),
    ("null in array", {"x": [[None, 0.0]], "architecture": ARCH}, "x.0.0", 422),
    ("boolean in array", {"x": [[True, 0.0]], "architecture": ARCH}, "x.0.0", 422),
    ("ragged", {"x": [[1.0, 0.0], [1.0]], "architecture": ARCH}, "x", 422),
    ("empty", {"x": [], "architecture": ARCH}, "x", 422),
    ("unknown field", {"x": [[1.0]], "architecture": ARCH, "colour": 1}, "colour", 422),
    ("unknown architecture key", {"x": [[1.0]], "architecture": {**ARCH, "beta": 1}}, "architecture.beta", 422),
    ("wrong type", {"x": [[1.0]], "architecture": {**ARCH, "depth": "5"}}, "architecture.depth", 422),
    ("negative sigma", {"x": [[1.0]], "architecture": {**ARCH, "sigma_w": -1.0}}, "architecture.sigma_w", 422),
    ("depth 10^7", {"x": [[1.0]], "architecture": {**ARCH, "depth": 10**7}}, "architecture.depth", 422),
    ("bad activation", {"x": [[1.0]], "architecture": {**ARCH, "activation": "swish"}}, "architecture.activation",
     422),
    ("dimensions differ", {"x": [[1.0, 0.0]], "x2": [[1.0, 0.0, 0.0]], "architecture": ARCH}, "body", 422),
    ("too many points", {"x": [[1.0, 0.0]] * 3001, "architecture": ARCH}, "points", 413),
    ("missing architecture", {"x": [[1.0]]}, "architecture", 422),
    ("duplicate kernels", {"x": [[1.0]], "architecture": ARCH, "kernels": ["ntk", "ntk"]}, "kernels", 422),
    ("not an object", [1, 2], "body", 422),
]


@pytest.mark.parametrize(("body", "field", "status"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_kernels_requests(api, body, field, status):
    if isinstance(body, bytes):
        response = await api.post("/v1/kernels", content=body, headers={"content-type": "application/json"})
    else:
        response = await api.post("/v1/kernels", json=body)
    assert_problem(response, status, field)


async def test_non_finite_and_huge_numbers(api):
    for text in ('{"x": [[NaN]], "architecture": {"kind": "mlp", "depth": 1}}',
                 '{"x": [[1e400]], "architecture": {"kind": "mlp", "depth": 1}}'):
        response = await api.post("/v1/kernels", content=text, headers={"content-type": "application/json"})
        assert_problem(response, 422, "x.0.0")


@pytest.mark.parametrize(("operation", "body", "field"), [
    ("regression", {"x_train": [[1.0]], "y_train": [1.0, 2.0], "x_test": [[1.0]], "architecture": ARCH}, "body"),
    ("regression", {"x_train": [[1.0]], "y_train": [1.0], "x_test": [[1.0]], "architecture": ARCH,
                    "return_variance": True}, "body"),
    ("smoothness", {"architectures": [ARCH]}, "body"),
    ("smoothness", {"architectures": [ARCH], "n_train": 6, "measure": "sobolev"}, "measure"),
    ("train", {"architecture": ARCH, "width": 0, "x_train": [[1.0]], "y_train": [1.0]}, "width"),
    ("train", {"architecture": ARCH, "width": 8, "x_train": [[1.0]], "y_train": [1.0], "lr": -1.0}, "lr"),
    ("train", {"architecture": ARCH, "width": 8, "x_train": [[1.0]], "y_train": [1.0], "steps": 10**9}, "steps"),
    ("train", {"architecture": ARCH, "width": 100_000, "x_train": [[1.0]], "y_train": [1.0]}, "width"),
    ("empirical-kernels", {"architecture": ARCH, "width": 8, "x": [[1.0]], "seed": -1}, "seed"),
    ("bounds", {"architecture": ARCH, "width": 8}, "input_dim"),
])
async def test_bad_requests_name_the_field(api, operation, body, field):
    assert_problem(await api.post(f"/v1/{operation}", json=body), 422, field)


async def test_failures_inside_the_engine_are_4xx(api):
    # two equal points without a ridge: the Gram matrix is singular, the engine says so
    body = {"x_train": [[1.0, 0.0], [1.0, 0.0]], "y_train": [1.0, 2.0], "x_test": [[0.0, 1.0]],
            "architecture": ARCH, "ridge": 0.0}
    response = await api.post("/v1/regression", json=body)
    assert_problem(response, 422)
    job = (await api.get(f"/v1/jobs/{response.json()['job']}")).json()
    assert job["status"] == "failed" and job["error"]["status"] == 422


async def test_unknown_jobs_and_routes(api):
    assert_problem(await api.get("/v1/jobs/" + "0" * 64), 404)
    assert_problem(await api.get("/v1/jobs/not-a-hash"), 404)
    assert_problem(await api.get("/v1/nothing"), 404)
    assert_problem(await api.get("/v1/kernels"), 405)
    assert_problem(await api.post("/v1/jobs/" + "0" * 64 + ":cancel", json={}), 404)


async def test_body_limit(api):
    body = b'{"x": [' + b",".join([b"[0.5, 0.5]"] * 200_000) + b'], "architecture": {"kind": "mlp", "depth": 1}}'
    response = await api.post("/v1/kernels", content=body, headers={"content-type": "application/json"})
    assert_problem(response, 413, "body")

    async def streamed():  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    response = await api.post("/v1/kernels", content=streamed(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body")


async def test_listing_and_delete(api):
    body = {"x": [[0.25, 0.5]], "architecture": {"kind": "mlp", "depth": 2}}
    job = (await api.post("/v1/kernels", json=body)).headers["etag"].strip('"')
    page = (await api.get("/v1/jobs?limit=1")).json()
    assert len(page["jobs"]) == 1 and page["total"] >= 1
    if page["total"] > 1:
        assert page["next"] == "/v1/jobs?offset=1&limit=1"
    done = (await api.get("/v1/jobs?status=succeeded&limit=1000")).json()
    assert job in [j["id"] for j in done["jobs"]]
    assert (await api.delete(f"/v1/jobs/{job}")).status_code == 204
    assert_problem(await api.get(f"/v1/jobs/{job}"), 404)
    assert (await api.post("/v1/kernels", json=body)).headers["x-cache"] == "miss"


class Idle:
    """An executor that dispatches nothing: every job submitted stays queued."""

    def submit(self, *args, **kwargs) -> None:
        pass

    def workers(self) -> int:
        return 1


async def test_full_queue_is_429(settings, tmp_path):
    """A queue of 3 on a store of its own: 3 jobs are admitted, the 4th is a 429, and once one of
    them ends a new one is admitted again."""
    limited = replace(settings, data_dir=tmp_path, limits=replace(settings.limits, queue=3))
    queue = Jobs(limited, SQLiteStore(tmp_path), Idle())
    app = create_app(limited, queue)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel") as api:
        async def post(x: float) -> httpx.Response:
            return await api.post("/v1/kernels", json={"x": [[x, 1.0]], "architecture": ARCH},
                                  headers={"Prefer": "respond-async"})

        admitted = [await post(0.125 * (i + 1)) for i in range(3)]
        assert [r.status_code for r in admitted] == [202] * 3
        response = await post(0.75)
        assert_problem(response, 429)
        assert int(response.headers["retry-after"]) > 0
        assert queue.store.count_active() == 3
        queue.store.update(admitted[0].json()["id"], status="canceled")
        assert (await post(0.75)).status_code == 202
    queue.store.close()


async def test_health_and_info(api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json()["workers"] == 1
    info = (await api.get("/v1/info")).json()
    assert info["worker"]["x64"] is True and info["worker"]["backend"] == "cpu"
    assert info["limits"]["points"] == 3000
    schema = (await api.get("/openapi.json")).json()
    assert {"/v1/kernels", "/v1/regression", "/v1/smoothness", "/v1/bounds", "/v1/spectrum",
            "/v1/empirical-kernels", "/v1/train", "/v1/jobs/{job_id}/events"} <= set(schema["paths"])


async def test_results_that_overflow_are_4xx(api):
    # the architecture's own scale is bounded (schema and engine), and so is the input's: refused before
    # any job exists, naming the points (issue 19; it used to fail in the worker, naming no field)
    body = {"x": [[1e154, 0.0], [0.0, 1e154]], "architecture": {"kind": "resnet", "depth": 5}}
    response = await api.post("/v1/kernels", json=body)
    assert_problem(response, 422)
    assert response.json()["errors"][0]["field"] == "x" and "scale the points down" in response.json()["detail"]
