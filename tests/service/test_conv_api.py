"""POST /v1/kernels with the convolutional kinds: neural-tangents' values through HTTP and the
Python client, the job id, the cost model, and a problem+json naming the field for bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.conv.tiles import pixel_pairs, tile_count, tile_edges
from service.client import Client
from service.operations.fields import CONV_OPERATIONS
from service.operations.kernels import KernelsRequest, cost

pytestmark = pytest.mark.anyio
REFERENCE = {c["name"]: c for c in json.loads(
    (Path(__file__).parents[1] / "data" / "conv_reference.json").read_text())["cases"]}
PROBLEM = "application/problem+json"
CONV = {"kind": "conv-resnet", "depth": 2, "alpha": 0.5, "filter_size": [3, 3], "readout": "pool"}


def images(n, shape=(4, 4, 1), seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape))


def assert_problem(response, status, field):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    return body


@pytest.mark.parametrize("name", ["resnet_relu_img_pool", "resnet_relu_img_pool_x2", "cnn_relu_signal_flatten"])
async def test_neural_tangents_values_through_http(api, name):
    case = REFERENCE[name]
    body = {"x": case["x1"], "x2": case["x2"], "architecture": case["architecture"]}
    response = await api.post("/v1/kernels", json=body)
    assert response.status_code == 200, response.text
    for kernel in ("nngp", "ntk"):
        got, want = np.array(response.json()[kernel]), np.array(case[kernel])
        assert np.max(np.abs(got - want)) <= 1e-8 * np.max(np.abs(want)), kernel
    again = await api.post("/v1/kernels", json=body)
    assert again.headers["x-cache"] == "hit" and again.content == response.content


async def test_the_job_id_covers_the_shape_and_the_conv_fields(api):
    x, small = images(3, (4, 4, 1)), {**CONV, "filter_size": [2, 2]}
    variants = [(small, x), ({**small, "readout": "flatten"}, x), ({**small, "filter_size": [2, 1]}, x),
                (small, x.reshape(3, 2, 8, 1))]  # the same numbers in another shape
    tags = set()
    for arch, inputs in variants:
        response = await api.post("/v1/kernels", json={"x": inputs.tolist(), "architecture": arch},
                                  headers={"Prefer": "return=minimal"})
        assert response.status_code in (200, 202), response.text
        tags.add(response.json()["id"])
    assert len(tags) == len(variants)


async def test_cnn_ignores_alpha_and_sigma_v_in_its_id(api):
    body = {"x": images(2).tolist(), "architecture": {"kind": "cnn", "depth": 1, "filter_size": [2, 2]}}
    first = await api.post("/v1/kernels", json=body)
    body["architecture"] |= {"alpha": 0.3, "sigma_v": 2.0}
    second = await api.post("/v1/kernels", json=body)
    assert first.headers["etag"] == second.headers["etag"]


BAD = [
    ("rank 2 for a conv kind", {"x": [[1.0, 2.0, 3.0]], "architecture": CONV}, "x"),
    ("rank 3 for 2-D filters", {"x": images(2, (4, 1)).tolist(), "architecture": CONV}, "x"),
    ("rank 4 for 1-D filters", {"x": images(2).tolist(), "architecture": {**CONV, "filter_size": [3]}}, "x"),
    ("filter larger than the image", {"x": images(2, (2, 4, 1)).tolist(), "architecture": CONV}, "x"),
    ("x2 of another shape", {"x": images(2).tolist(), "x2": images(2, (4, 5, 1)).tolist(), "architecture": CONV},
     "x2"),
    ("images for a dense kind", {"x": images(2).tolist(), "architecture": {"kind": "resnet", "depth": 2}}, "x"),
    ("ragged images", {"x": [[[[1.0], [2.0]], [[1.0]]]], "architecture": {**CONV, "filter_size": [1, 1]}}, "x"),
    ("a string pixel", {"x": [[[[1.0], ["a"]]]], "architecture": {**CONV, "filter_size": [1, 1]}}, "x.0.0.1.0"),
    ("three filter axes", {"x": images(2).tolist(), "architecture": {**CONV, "filter_size": [1, 1, 1]}},
     "architecture.filter_size"),
    ("filter 0", {"x": images(2).tolist(), "architecture": {**CONV, "filter_size": [0, 3]}},
     "architecture.filter_size.0"),
    ("bad readout", {"x": images(2).tolist(), "architecture": {**CONV, "readout": "max"}},
     "architecture.readout"),
    ("unknown conv key", {"x": images(2).tolist(), "architecture": {**CONV, "stride": 2}},
     "architecture.stride"),
    ("unknown kind", {"x": images(2).tolist(), "architecture": {**CONV, "kind": "transformer"}}, "architecture"),
    ("too deep", {"x": images(2).tolist(), "architecture": {**CONV, "depth": 20000}},
     "architecture.depth"),
]


@pytest.mark.parametrize(("body", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_conv_requests_name_the_field(api, body, field):
    assert_problem(await api.post("/v1/kernels", json=body), 422, field)


@pytest.mark.parametrize(("operation", "body"), [
    ("spectrum", {"architecture": CONV}),
    ("smoothness", {"architectures": [CONV]}),
    ("regression", {"x_train": [[1.0]], "y_train": [1.0], "x_test": [[1.0]], "architecture": CONV}),
    ("bounds", {"architecture": CONV, "width": 8, "input_dim": 2}),
])
async def test_other_operations_refuse_conv_kinds_clearly(api, operation, body):
    """The dense-only operations name those that take the conv kinds (kernels, empirical-kernels, train:
    tests/service/test_conv_networks_api.py)."""
    response = await api.post(f"/v1/{operation}", json=body)
    assert response.status_code == 422, response.text
    assert all(name in response.text for name in CONV_OPERATIONS), response.text


def test_cost_counts_the_pixel_pairs():
    x = images(40, (8, 8, 1))
    pool = cost(KernelsRequest.model_validate({"x": x, "architecture": {**CONV, "depth": 4}}))
    flatten = cost(KernelsRequest.model_validate({"x": x, "architecture": {**CONV, "depth": 4, "readout": "flatten"}}))
    b, _ = tile_edges(40, 40, 64 * 64, True)
    entries = tile_count(40, None, b, b) * b * b * pixel_pairs("pool", (8, 8))
    assert str(entries) in pool.compute[0].formula
    assert pool.total("compute") > 10 * flatten.total("compute")  # P^2 against P pixel pairs per image pair
    assert pool.output[0].amount == 2 * 40 * 40 * 8


def test_python_client(server):
    case = REFERENCE["resnet_relu_img_flatten_bias"]
    with Client(server) as client:
        got = client.kernels(np.array(case["x1"]), np.array(case["x2"]), architecture=case["architecture"])
    for kernel in ("nngp", "ntk"):
        want = np.array(case[kernel])
        assert np.max(np.abs(np.array(got[kernel]) - want)) <= 1e-8 * np.max(np.abs(want))


async def test_quadrature_activation_on_many_images_is_a_413(api, settings):
    n = settings.limits.quadrature_points + 1
    body = {"x": images(n, (1, 1, 1)).tolist(), "architecture": {**CONV, "activation": "tanh", "filter_size": [1, 1]}}
    assert_problem(await api.post("/v1/kernels", json=body), 413, "points")
