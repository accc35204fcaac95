"""Property-based requests generated from the OpenAPI schema (schemathesis): never a 5xx,
and every response matches the schema. Tight limits keep generated jobs small."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from test_server import free_port, serve, stop

from service.http.app import create_app
from service.jobs.lifecycle import Jobs
from service.settings import Limits, Settings

LIMITS = Limits(points=24, dimension=8, depth=6, width_depth=256, n_init=2, steps=40, grid=128, architectures=3,
                body_bytes=2**20, json_elements=20_000)
# its jobs are attached below, before any request
APP = create_app(Settings(limits=LIMITS, wait_s=2, trusted_hosts=("*",)))
# Running the experiments themselves (10-40 s each at the quick scale) is left to
# test_experiments_api.py; their listing and every other operation are fuzzed here.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/experiments/{name}", method="POST")


@pytest.fixture(autouse=True, scope="module")
def _shared_cluster(settings, jobs):
    small = replace(settings, limits=LIMITS, wait_s=2, trusted_hosts=("*",))
    APP.state.settings, APP.state.jobs = small, Jobs(small, jobs.store, jobs.executor)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case):
    # All checks but "schema-valid data is accepted": the schema cannot express the
    # cross-field rules (x and x2 of one dimension, y_train as long as x_train) nor the
    # admission limits, whose 413/422 answers are by design.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_all_phases_of_a_schemathesis_run_are_clean(tmp_path):
    """The CLI run a user would make (`schemathesis run URL --checks all`), every phase (examples,
    coverage, fuzzing, stateful), few examples each, against a real `reskernel serve` with the
    tight limits above. Running experiments is left out as above."""
    port = free_port()
    env = {f"RESKERNEL_MAX_{name.upper()}": str(getattr(LIMITS, name)) for name in
           ("points", "dimension", "depth", "width_depth", "n_init", "steps", "grid", "architectures",
            "body_bytes", "json_elements")}
    process = serve(tmp_path, port, {**env, "RESKERNEL_WAIT_S": "2"})
    try:
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"http://127.0.0.1:{port}/openapi.json",
             "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "4",
             "--seed", "1", "--exclude-path", "/v1/experiments/{name}", "--request-timeout", "20"],
            capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    finally:
        stop(process)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
