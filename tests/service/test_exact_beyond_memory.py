"""The exact regression beyond the worker's memory budget (issue 21, section 2): a service whose
RESKERNEL_MAX_MEMORY_BYTES is too small for a few hundred points' Gram (5 n^2 floats) admits the job
and runs it out of core, its Gram in a scratch Zarr array in blocks of RESKERNEL_TILE_EDGE; its answer
equals the in-memory job's (the shared service, 8 GiB) and the engine's dense solve; the phases show
in its progress; the scratch store is gone after, also when too little disk stops it (507 saying what it
needs) or a cancel does; with t it is a 413 naming t. On a cluster of two
workers the scratch Gram is filled by tile tasks (chunks on another grid than the factor's blocks)."""

import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine import Architecture, kernel_regression
from service.http.app import create_app
from service.jobs.admission import check_limits
from service.jobs.executor import Executor
from service.jobs.lifecycle import Jobs
from service.operations.regression import RegressionRequest, in_memory_cost, out_of_core_cost
from service.settings import Limits
from service.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
ARCH = {"kind": "resnet", "depth": 5, "alpha": 0.5}
EDGE = 48
RNG = np.random.default_rng(21)
X = RNG.standard_normal((620, 5))
X /= np.linalg.norm(X, axis=1, keepdims=True)
X[600:] = X[:20]  # 20 coincident pairs, same targets: merged
XT = RNG.standard_normal((30, 5))
XT /= np.linalg.norm(XT, axis=1, keepdims=True)
Y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2]
BODY = {"x_train": X.tolist(), "y_train": Y.tolist(), "x_test": XT.tolist(), "architecture": ARCH, "ridge": 1e-6}
VARIANCE = BODY | {"kernel": "nngp", "return_variance": True}


def budget() -> int:
    """Between the out-of-core peak (a few EDGE^2 blocks) and the in-memory one (5 x 620^2 floats and more)."""
    requests = [RegressionRequest.model_validate(body) for body in (BODY, VARIANCE)]
    outside = max(out_of_core_cost(r, EDGE).total("memory") for r in requests)
    inside = min(in_memory_cost(r).total("memory") for r in requests)
    assert outside + 2**20 < inside
    return int(outside + 2**20)


@pytest.fixture(scope="module")
def small(settings, tmp_path_factory):
    """A service of its own (its store, one worker) whose memory budget is `budget()`."""
    configured = replace(settings, data_dir=tmp_path_factory.mktemp("beyond"), warm_up=False, tile_edge=EDGE,
                         limits=replace(settings.limits, memory_bytes=budget()))
    service = Jobs(configured, SQLiteStore(configured.data_dir), Executor(configured))
    service.start()
    yield configured, create_app(configured, service)
    service.close()


async def run_out_of_core(small, body):
    """POST body to the small service; poll until done, noting the progress messages and whether a scratch
    folder existed while it ran. Returns (result, messages, scratch seen)."""
    configured, app = small
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel") as api:
        response = await api.post("/v1/regression", json=body, headers={"Prefer": "respond-async"})
        assert response.status_code in (200, 202), response.text
        job = response.json()["id"]
        messages, scratch, deadline = set(), False, time.monotonic() + 300
        while (status := (await api.get(f"/v1/jobs/{job}")).json())["status"] in ("queued", "running"):
            messages.add((status.get("message") or "").split(":")[0])
            scratch = scratch or any(configured.data_dir.rglob("scratch-*"))
            assert time.monotonic() < deadline, "the job did not end"
            time.sleep(0.02)
        assert status["status"] == "succeeded", status
        result = (await api.get(f"/v1/jobs/{job}/result")).json()
    assert not any(configured.data_dir.rglob("scratch-*"))  # removed when the job ended
    assert not any(configured.data_dir.rglob("*.zarr"))
    return result, messages, scratch


@pytest.mark.parametrize("body", [BODY, VARIANCE], ids=["ntk mean", "nngp mean and variance"])
async def test_out_of_core_equals_the_in_memory_job(small, api, body):
    request = RegressionRequest.model_validate(body)
    cost = check_limits(request, small[0].limits, small[0].cache_bytes, EDGE)  # admitted, charged out of core
    assert cost == out_of_core_cost(request, EDGE)
    result, messages, scratch = await run_out_of_core(small, body)
    assert scratch and messages & {"training Gram", "scaling", "factor", "solves"}, messages
    whole = (await api.post("/v1/regression", json=body)).json()  # the shared service: 8 GiB, in memory
    scale = np.abs(whole["mean"]).max()
    np.testing.assert_allclose(result["mean"], whole["mean"], rtol=0, atol=1e-10 * scale)
    dense = kernel_regression(X, Y, XT, arch=Architecture.from_dict(ARCH), kernel=body.get("kernel", "ntk"),
                              ridge=1e-6, return_variance=body.get("return_variance", False))
    np.testing.assert_allclose(result["mean"], dense.mean, rtol=0, atol=1e-10 * scale)
    if body.get("return_variance"):
        prior = np.abs(whole["variance"]).max()
        np.testing.assert_allclose(result["variance"], whole["variance"], rtol=0, atol=1e-10 * max(prior, 1e-3))


async def test_gd_time_beyond_memory_is_a_413_naming_t(small):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=small[1]), base_url="http://reskernel") as api:
        response = await api.post("/v1/regression", json=BODY | {"t": 1.0})
    assert response.status_code == 413, response.text
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["t"], problem
    assert "RESKERNEL_MAX_MEMORY_BYTES" in problem["detail"]
    assert "the GD time t needs the whole Gram in memory" in problem["detail"]


def test_the_default_budget_keeps_the_in_memory_path_and_the_out_of_core_cost_is_bounded():
    """Under 8 GiB a 620-point job is charged in memory; out of core the memory charged does not grow with n
    (only the inputs and the n x k targets), the factor's n^3 / 3 flops are charged."""
    request = RegressionRequest.model_validate(BODY)
    assert check_limits(request, Limits(), 8 * 2**30) == in_memory_cost(request)
    big = RegressionRequest.model_validate(BODY | {"x_train": np.tile(X, (20, 1)).tolist(),
                                                   "y_train": np.tile(Y, 20).tolist()})
    grow = out_of_core_cost(big, 2048).total("memory") - out_of_core_cost(request, 2048).total("memory")
    assert grow < 16 * 8 * 12_400  # the inputs' and targets' few numbers per point, no n^2
    assert in_memory_cost(big).total("memory") > 5 * 12_400**2 * 8
    assert any("12400^3 / 3" in t.formula for t in out_of_core_cost(big, 2048).compute)


def test_on_two_workers_the_gram_is_filled_by_tile_tasks(tmp_path):
    """On a cluster of two workers the scratch Gram's lower triangle is filled by tile tasks across them
    (`scratch_gram` -> `distributed_gram`); the answer equals the dense solve; the job's folder is left empty."""
    from distributed import Client, LocalCluster

    def job(folder: str, x, y, x_test, architecture, edge):
        from service.operations.regression import run
        from service.operations.tiles import Tiling, cluster_workers

        class Report:
            tiling = Tiling(entries=1000, edge=edge, memory_bytes=1)  # every exact job is over this budget
            def __init__(self) -> None:
                self.messages: list[str] = []

            def __call__(self, fraction: float, message: str) -> None:
                self.messages.append(message)

            def should_stop(self) -> bool:
                return False

        report = Report()
        params = {"solver": "exact", "t": None, "architecture": architecture, "kernel": "ntk", "ridge": 1e-6,
                  "return_variance": False}
        _, arrays = run(params, {"x_train": x, "y_train": y, "x_test": x_test}, Path(folder), report)
        return arrays["mean"], report.messages, cluster_workers()

    arch = RegressionRequest.model_validate(BODY).architecture.model_dump()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster, set_as_default=False) as client:
        mean, messages, workers = client.submit(job, str(tmp_path), X, Y, XT, arch, EDGE, pure=False).result()
    assert workers == 2
    assert any(m.startswith("training Gram:") and m.endswith("tiles") for m in messages), messages[:5]
    dense = kernel_regression(X, Y, XT, arch=Architecture.from_dict(arch), ridge=1e-6).mean
    np.testing.assert_allclose(mean, dense, rtol=0, atol=1e-10 * np.abs(dense).max())
    assert list(tmp_path.iterdir()) == []


class _Report:
    """A job's reporter as the worker gives it: the service's tiling (every exact job over its 1-byte budget);
    should_stop() turns true once a message of phase `stop_at` has been reported."""

    def __init__(self, stop_at: str | None = None) -> None:
        from service.operations.tiles import Tiling

        self.tiling = Tiling(entries=0, edge=EDGE, memory_bytes=1)
        self.messages: list[str] = []
        self.stop_at = stop_at

    def __call__(self, fraction: float, message: str) -> None:
        self.messages.append(message)

    def should_stop(self) -> bool:
        return self.stop_at is not None and any(m.startswith(self.stop_at) for m in self.messages)


PARAMS = {"solver": "exact", "t": None, "architecture": ARCH, "kernel": "ntk", "ridge": 1e-6, "return_variance": False}
INPUTS = {"x_train": X, "y_train": Y, "x_test": XT}


def test_too_little_scratch_disk_is_a_507_naming_what_it_needs(tmp_path, monkeypatch):
    """The free disk is checked before the first chunk: short of the Gram's lower triangle (about 8 x 600^2 / 2
    bytes and the margin; 600 distinct points of the 620), the job stops with StorageFull (507) saying how
    much it needs and the way out; nothing is left in its folder."""
    from types import SimpleNamespace

    from service.errors import StorageFull
    from service.operations import regression, tiles

    monkeypatch.setattr(tiles.shutil, "disk_usage", lambda path: SimpleNamespace(total=2**40, free=2**20))
    with pytest.raises(StorageFull) as raised:
        regression.run(PARAMS, INPUTS, tmp_path, _Report())
    assert raised.value.status == 507
    detail = raised.value.detail
    assert "600 distinct training points" in detail and "GiB of scratch disk" in detail and "solver 'nystrom'" in detail
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("phase", ["training Gram", "factor"])
def test_a_stop_asked_mid_job_cancels_it_and_removes_the_scratch(tmp_path, phase):
    """A cancel (should_stop true) during the Gram's regions or the factor's blocks ends the job with
    engine.Cancelled, and the scratch Zarr goes with it."""
    from engine import Cancelled
    from service.operations import regression

    report = _Report(stop_at=phase)
    with pytest.raises(Cancelled):
        regression.run(PARAMS, INPUTS, tmp_path, report)
    assert any(m.startswith(phase) for m in report.messages), report.messages[:5]
    assert not any(m.startswith("solves") for m in report.messages)
    assert list(tmp_path.iterdir()) == []
