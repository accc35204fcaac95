"""The JSON contract: schemas mirror the engine, canonical ids, admission limits; and the API
process does not import JAX."""

import subprocess
import sys

import numpy as np
import pytest

import engine
from engine.architectures import ACTIVATIONS, KINDS, Architecture
from service.errors import LimitExceeded
from service.jobs.admission import check_limits
from service.jobs.ids import job_id, split_request
from service.operations.empirical_kernels import EmpiricalKernelsRequest
from service.operations.fields import ArchitectureSpec
from service.operations.kernels import KernelsRequest
from service.operations.train import TrainRequest
from service.settings import Limits

ARCH = {"kind": "resnet", "depth": 5, "alpha": 0.1}


def test_architecture_schema_mirrors_engine():
    schema = ArchitectureSpec.model_json_schema()["properties"]
    assert tuple(schema["activation"]["enum"]) == ACTIVATIONS
    assert tuple(schema["kind"]["enum"]) == KINDS
    spec = ArchitectureSpec.model_validate(ARCH)
    assert Architecture.from_dict(spec.model_dump()) == Architecture("resnet", 5, alpha=0.1)


def key(body, operation="kernels", model=KernelsRequest):
    return job_id(operation, *split_request(model.model_validate(body)))


def test_ids_are_canonical():
    base = key({"x": [[1.0, 0.0], [0.0, 1.0]], "architecture": ARCH})
    assert len(base) == 64 and set(base) <= set("0123456789abcdef")
    same = [  # key order, defaults spelled out, ints for floats, float spellings, kernels' order: one request
        {"architecture": {"alpha": 0.1, "depth": 5, "kind": "resnet", "sigma_w": 1, "activation": "relu"},
         "x": [[1, 0], [0, 1]], "kernels": ["nngp", "ntk"], "x2": None},
        {"kernels": ["ntk", "nngp"], "x": [[1e0, 0.0], [0e5, 10e-1]], "architecture": ARCH | {"alpha": 1e-1}},
        {"x": [[1.0, -0.0], [0.0, 1.0]], "architecture": ARCH | {"sigma_b": -0.0}},
    ]
    for body in same:
        assert key(body) == base, body
    # any change of a number, a parameter, the operation or the shape: another job
    other = [key({"x": [[1.0, 0.0], [0.0, 1.0 + 1e-15]], "architecture": ARCH}),
             key({"x": [[1.0, 0.0], [0.0, 1.0]], "architecture": ARCH | {"alpha": 0.1 + 1e-16}}),
             key({"x": [[1.0, 0.0], [0.0, 1.0]], "architecture": ARCH, "kernels": ["ntk"]}),
             key({"x": [[1.0, 0.0, 0.0, 1.0]], "architecture": ARCH}),
             key({"x": [[1.0, 0.0], [0.0, 1.0]], "architecture": ARCH}, "other")]
    assert base not in other and len(set(other)) == len(other)


def test_a_scalar_negative_zero_is_canonical():
    """-0.0 and 0.0 are one request: in scalar parameters (here sigma_b) as in arrays."""
    params, _ = split_request(KernelsRequest.model_validate({"x": [[1.0, 0.0]], "architecture": ARCH | {
        "sigma_b": -0.0}}))
    assert str(params["architecture"]["sigma_b"]) == "0.0"
    assert key({"x": [[1.0, 0.0]], "architecture": ARCH | {"sigma_b": -0.0}}) == key(
        {"x": [[1.0, 0.0]], "architecture": ARCH | {"sigma_b": 0.0}})
    body = {"architecture": ARCH, "width": 4, "x_train": [[1.0, 0.0]], "y_train": [1.0], "steps": 2}
    assert key(body | {"lr": 0.5}, "train", TrainRequest) != key(body | {"lr": 0.25}, "train", TrainRequest)


def test_ids_follow_the_numerics_version(monkeypatch):
    body = {"x": [[1.0, 0.0]], "architecture": ARCH}
    before = key(body)
    monkeypatch.setattr("service.jobs.ids.NUMERICS_VERSION", engine.NUMERICS_VERSION + "-next")
    assert key(body) != before


def test_arrays_are_float64():
    params, inputs = split_request(KernelsRequest.model_validate({"x": [[1, 2]], "architecture": ARCH}))
    assert inputs["x"].dtype == np.float64 and "x" not in params and params["architecture"]["sigma_w"] == 1.0


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"x": [[0.0, 1.0]] * 11, "architecture": ARCH}, 413, "points"),
    ({"x": [[0.0] * 9], "architecture": ARCH}, 413, "x"),
    ({"x": [[0.0, 1.0]], "architecture": {"kind": "mlp", "depth": 101}}, 422, "architecture.depth"),
    # of different norms, the variances beyond Mehler's series: the quadrature
    ({"x": [[0.0, 1.0], [0.0, 30.0]] * 3, "architecture": {"kind": "mlp", "depth": 2, "activation": "tanh"}}, 413,
     "points"),
])
def test_limits_name_the_limit(body, status, field):
    limits = Limits(points=10, quadrature_points=5, dimension=8, depth=100)
    with pytest.raises(LimitExceeded) as caught:
        check_limits(KernelsRequest.model_validate(body), limits, 2**40)
    assert caught.value.status == status and caught.value.field == field


def test_points_the_quadrature_does_not_compute_have_no_quadrature_limit():
    limits = Limits(points=10, quadrature_points=5, dimension=8, depth=100)
    for activation in ("tanh", "gelu"):  # on the circle, tanh is interpolated; gelu has a closed form
        body = {"x": [[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]] * 3, "architecture": {"kind": "mlp", "depth": 2,
                                                                                "activation": activation}}
        check_limits(KernelsRequest.model_validate(body), limits, 2**40)
    # of different norms within the reach of Mehler's series
    body = {"x": [[0.0, 1.0], [0.0, 2.0]] * 3, "architecture": {"kind": "mlp", "depth": 2, "activation": "tanh"}}
    check_limits(KernelsRequest.model_validate(body), limits, 2**40)


def test_finite_networks_have_no_quadrature_limit_unless_lr_auto_takes_the_analytic_ntk():
    limits = Limits(points=10, quadrature_points=5, dimension=8, depth=100)
    tanh = {"kind": "mlp", "depth": 2, "activation": "tanh"}
    x = [[0.0, 1.0], [0.0, 30.0]] * 3  # beyond Mehler's series: the analytic kernel would take the quadrature
    network = {"architecture": tanh, "width": 8}
    check_limits(EmpiricalKernelsRequest.model_validate(network | {"x": x}), limits, 2**40)
    train = network | {"x_train": x, "y_train": [1.0] * 6, "steps": 5}
    check_limits(TrainRequest.model_validate(train | {"lr": 0.1}), limits, 2**40)
    with pytest.raises(LimitExceeded) as caught:  # lr "auto": the analytic NTK's step bound on x_train
        check_limits(TrainRequest.model_validate(train), limits, 2**40)
    assert caught.value.field == "points"


def test_network_limits():
    body = {"architecture": ARCH, "width": 1000, "x_train": [[1.0, 0.0]], "y_train": [1.0], "steps": 20}
    with pytest.raises(LimitExceeded, match="width x depth"):
        check_limits(TrainRequest.model_validate(body), Limits(width_depth=4999), 2**40)
    with pytest.raises(LimitExceeded, match="steps"):
        check_limits(TrainRequest.model_validate(body), Limits(steps=19), 2**40)
    check_limits(TrainRequest.model_validate(body), Limits(width_depth=5000, steps=20), 2**40)


def test_api_process_does_not_import_jax(tmp_path):
    """Build the app, start its Dask cluster, run a request through it and read /metrics: JAX stays in
    the workers."""
    script = f"""
import sys, httpx, anyio
from service.http.app import create_app
from service.settings import Settings
from service.client import Client
app = create_app(Settings(data_dir={str(tmp_path)!r}))
async def main():
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
            r = await http.post("/v1/kernels", json={{"x": [[1.0, 0.0]], "architecture": {ARCH!r}}})
            assert r.status_code == 200, r.text
            assert r.json()["ntk"][0][0] > 0
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200 and 'reskernel_jobs{{status="succeeded"}} 1.0' in metrics.text
anyio.run(main)
print("jax" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_architecture_numbers_are_bounded_in_the_schema():
    from pydantic import ValidationError

    from service.operations.fields import ArchitectureSpec

    for spec, match in [({"kind": "resnet", "depth": 5, "alpha": 1e200}, "less than or equal to 100"),
                        ({"kind": "resnet", "depth": 10**6}, "less than or equal to 10000"),
                        ({"kind": "resnet", "depth": 2000, "alpha": 1.0}, "overflow float64 at layer 1687")]:
        with pytest.raises(ValidationError, match=match):
            ArchitectureSpec.model_validate(spec)
