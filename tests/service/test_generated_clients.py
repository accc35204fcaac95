"""Issue 20: the live /openapi.json is one that code generators accept. A Python client generated from
it by openapi-python-client (the usual tool for FastAPI services) imports and calls every operation of
the API once, its answers parsed into the generated models; the document passes openapi-spec-validator.
Cost: about 10 s (the generator, a few small jobs and one tiny experiment)."""

import importlib
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import numpy as np
import pytest
from openapi_spec_validator import validate
from test_server import wait_until

from engine import Architecture, analytic_kernels

ARCH = {"kind": "resnet", "depth": 2, "alpha": 0.1}
X = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]


def test_the_document_is_valid_openapi(api_document):
    validate(api_document)  # raises on any violation of the OpenAPI 3.1 schema


@pytest.fixture(scope="module")
def api_document(server) -> dict:
    return httpx.get(f"{server}/openapi.json").json()


@pytest.fixture(scope="module")
def generated(server, tmp_path_factory):
    """The package openapi-python-client writes from the live document, imported as `reskernel_client`."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / "openapi.json").write_bytes(httpx.get(f"{server}/openapi.json").content)
    generator = Path(sysconfig.get_path("scripts")) / "openapi-python-client"
    run = subprocess.run([str(generator), "generate", "--path", "openapi.json", "--output-path", "reskernel_client",
                          "--meta", "none"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    # the generator reports the parts of a document it skips ("Unable to parse ...") and still exits 0
    assert "Unable to parse" not in run.stdout + run.stderr and "Skipping" not in run.stdout.replace(
        "Skipping Integration", ""), run.stdout + run.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("reskernel_client")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == "reskernel_client" or n.startswith("reskernel_client.")]:
            del sys.modules[name]


def test_a_generated_client_calls_every_operation(server, generated, api_document):
    models = importlib.import_module("reskernel_client.models")
    operations = {op["operationId"] for path in api_document["paths"].values() for op in path.values()}
    called: set[str] = set()

    def call(group: str, operation: str, *args, **kwargs):
        module = importlib.import_module(f"reskernel_client.api.{group}.{operation}")
        called.add(operation)
        response = module.sync_detailed(*args, client=client, **kwargs)
        assert response.status_code < 500, (operation, response.status_code, response.content[:500])
        return response

    def body(model: str, value: dict):
        return getattr(models, model).from_dict(value)

    client = generated.Client(base_url=server, timeout=httpx.Timeout(120))
    with client:
        # the operations: each answer parsed into its generated result model
        kernels = call("operations", "kernels", body=body("KernelsRequest", {"x": X, "architecture": ARCH}))
        assert isinstance(kernels.parsed, models.KernelsResult)
        want = analytic_kernels(np.array(X), arch=Architecture.from_dict(ARCH))
        np.testing.assert_allclose(np.array(kernels.parsed.ntk), want["ntk"], rtol=1e-12)
        results = {
            "regression": ("RegressionRequest", {"x_train": X, "y_train": [1.0, 0.0, -1.0], "x_test": [[0.8, 0.6]],
                                                 "architecture": ARCH, "kernel": "nngp", "return_variance": True}),
            "smoothness": ("SmoothnessRequest", {"architectures": [ARCH], "n_train": 6, "n_grid": 64}),
            "bounds": ("BoundsRequest", {"architecture": ARCH, "width": 100, "input_dim": 2}),
            "spectrum": ("SpectrumRequest", {"architecture": ARCH, "n_grid": 32}),
            "empirical_kernels": ("EmpiricalKernelsRequest", {"architecture": ARCH, "width": 16, "x": X,
                                                              "n_init": 1}),
            "train": ("TrainRequest", {"architecture": ARCH, "width": 16, "x_train": X, "y_train": [1.0, 0.0, -1.0],
                                       "steps": 5}),
        }
        for operation, (request, value) in results.items():
            answer = call("operations", operation, body=body(request, value))
            result = request.replace("Request", "Result")
            assert type(answer.parsed).__name__ == result, (operation, answer.status_code, answer.content[:500])

        # the jobs: an experiment run as a job, followed by its status, events, result and figure
        experiments = call("experiments", "list_experiments")
        assert {e.name for e in experiments.parsed} >= {"kernel-shapes"}
        tiny = {"scale": "quick", "parameters": {"depths": [2], "alphas": [0.1], "n_angles": 9, "kernels": ["ntk"]}}
        started = call("experiments", "run_experiment", "kernel-shapes", body=body("ExperimentRequest", tiny),
                       prefer="respond-async")
        assert isinstance(started.parsed, models.JobStatus)
        job = started.parsed.id
        wait_until(lambda: call("jobs", "get_job", job).parsed.status.value == "succeeded", 120, "the experiment")
        status = call("jobs", "get_job", job).parsed
        assert isinstance(status, models.JobStatus) and status.progress == 1
        events = call("jobs", "job_events", job)
        assert events.status_code == 200 and b"event: done" in events.content
        assert call("jobs", "get_result", job).status_code == 200
        figure = call("jobs", "get_figure", job, importlib.import_module(
            "reskernel_client.models.get_figure_kind").GetFigureKind("svg"))
        assert figure.status_code == 200 and figure.content.startswith(b"<?xml")
        listing = call("jobs", "list_jobs", limit=5)
        assert isinstance(listing.parsed, models.JobList) and listing.parsed.total >= 1
        ended = call("jobs", "cancel_job", job, body=models.CancelJobBody())  # ended: 409, a problem
        assert ended.status_code == 409 and isinstance(ended.parsed, models.Problem)
        assert call("jobs", "delete_job", job).status_code == 204
        assert call("jobs", "get_job", job).status_code == 404

        # health
        assert call("health", "healthz").status_code == 200
        assert call("health", "readyz").status_code == 200
        assert call("health", "info").status_code == 200

    assert called == operations, operations ^ called
