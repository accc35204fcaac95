"""Admission by cost (issue 13, item 3): a request whose result, peak worker memory or compute
time would be over its budget is refused (413 for sizes, 422 for time) with a problem+json that
names the field and the budget, before any job exists; ordinary requests are admitted; and the
estimates are set against what small jobs really write and hold."""

import json
import math
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import anyio
import httpx
import numpy as np
import pytest

from engine import Architecture, analytic
from engine.architectures import ACTIVATIONS, QUADRATURE_ACTIVATIONS
from engine.dual import CLOSED_FORMS
from service.errors import LimitExceeded
from service.http.app import create_app
from service.jobs.admission import check_limits, duration, size
from service.jobs.ids import job_id, split_request
from service.jobs.lifecycle import Jobs
from service.operations import cost
from service.operations.cost import tile_entries
from service.operations.registry import REQUESTS as OPERATIONS
from service.operations.registry import estimate
from service.settings import Limits, Settings

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"
RESNET = {"kind": "resnet", "depth": 5, "alpha": 0.1}
CNN = {"kind": "cnn", "depth": 2, "filter_size": [3]}
GiB = 2**30


def line(n: int) -> list[list[float]]:
    """n one-dimensional points."""
    return [[float(v)] for v in np.linspace(-1.0, 1.0, n)]


@pytest.fixture
def client(settings, jobs):
    """An API client on the shared store and workers with the given limits (default: the
    service's own defaults, not the shared tests' smaller ones) and cache size."""
    def make(limits: Limits | None = None, cache_bytes: int = 8 * GiB) -> httpx.AsyncClient:
        configured = replace(settings, limits=limits or Limits(), cache_bytes=cache_bytes)
        app = create_app(configured, Jobs(configured, jobs.store, jobs.executor))
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel")
    return make


# (name, operation, body, limits or None, status, field, budget named in the detail)
REFUSED = [
    ("empirical NTKs of 64 networks on 20,000 points", "empirical-kernels",
     {"architecture": RESNET, "width": 8, "n_init": 64, "x": line(20_000)}, None, 413, "n_init",
     "RESKERNEL_MAX_OUTPUT_BYTES"),
    # 496 MiB: admitted by the default 4 GiB budget (see test_ordinary_requests_are_admitted), refused by 256 MiB
    ("empirical NTKs of 64 networks on 1,000 points, 256 MiB budget", "empirical-kernels",
     {"architecture": RESNET, "width": 8, "n_init": 64, "x": line(1000)}, Limits(output_bytes=256 * 2**20), 413,
     "n_init", "RESKERNEL_MAX_OUTPUT_BYTES"),
    ("regression with 10^6 columns of y_train", "regression",
     {"architecture": RESNET, "x_train": [[0.5]], "y_train": [[1.0] * 10**6], "x_test": line(19_999)}, None, 413,
     "y_train", "RESKERNEL_MAX_OUTPUT_BYTES"),
    ("training recorded at every step", "train",
     {"architecture": RESNET, "width": 64, "n_init": 64, "x_train": line(100), "y_train": [0.0] * 100,
      "x_test": line(5000), "steps": 100_000, "record_every": 1}, None, 413, "record_every",
     "RESKERNEL_MAX_OUTPUT_BYTES"),
    ("width 46,340 at depth 1", "train",
     {"architecture": {"kind": "resnet", "depth": 1}, "width": 46_340, "x_train": line(10), "y_train": [0.0] * 10},
     None, 413, "width", "RESKERNEL_MAX_MEMORY_BYTES"),
    ("track_ntk at 20,000 points", "train",
     {"architecture": RESNET, "width": 64, "x_train": line(20_000), "y_train": [0.0] * 20_000, "track_ntk": True},
     None, 413, "x_train", "RESKERNEL_MAX_MEMORY_BYTES"),
    ("track_ntk at 20,000 points in batches of 100", "train",
     {"architecture": RESNET, "width": 64, "x_train": line(20_000), "y_train": [0.0] * 20_000, "track_ntk": True,
      "batch_size": 100}, None, 413, "track_ntk", "RESKERNEL_MAX_MEMORY_BYTES"),
    # on the circle tanh is a Chebyshev interpolant while the variances stay small (a 65,536-point grid at
    # depth 1000 is about a minute: admitted); a Gram of points of different norms takes Mehler's series while
    # the variances stay within its reach (alpha 0.01: about two minutes, admitted), and beyond it (alpha 0.1)
    # the quadrature, thousands of times slower
    ("tanh spectrum at depth 1000 with a Gram of 1,000 points of different norms", "spectrum",
     {"architecture": {"kind": "resnet", "depth": 1000, "activation": "tanh", "alpha": 0.1}, "n_grid": 65_536,
      "x": [[1.0 + i / 1000, 0.5] for i in range(1000)]}, None, 422, "x", "RESKERNEL_MAX_COMPUTE_SECONDS"),
    # issue 19, item 3: at alpha 1 the variances grow past what the interpolant resolves, and from about layer
    # 20 on the engine falls back to the quadrature, entry by entry (was charged as the interpolant: 33 s)
    ("tanh profile at depth 1000, alpha 1, on the circle", "spectrum",
     {"architecture": {"kind": "resnet", "depth": 1000, "activation": "tanh"}, "n_grid": 65_536}, None, 422,
     "n_grid", "RESKERNEL_MAX_COMPUTE_SECONDS"),
    ("smoothness of 64 architectures x 20,000 samples x 65,536 grid", "smoothness",
     {"architectures": [RESNET] * 64, "n_train": 20_000, "n_grid": 65_536}, None, 413, "n_train",
     "RESKERNEL_MAX_MEMORY_BYTES"),
    ("a result larger than the cache", "kernels", {"x": line(400), "architecture": RESNET}, "cache", 413, "x",
     "RESKERNEL_CACHE_BYTES"),
    # 4,096 points of different norms: Mehler's series, about 5 s of CPU
    ("a compute budget of one second", "kernels", {"x": line(4096), "architecture": {**RESNET, "activation": "tanh"}},
     Limits(compute_seconds=1), 422, "x", "RESKERNEL_MAX_COMPUTE_SECONDS"),
]


@pytest.mark.parametrize(("operation", "body", "limits", "status", "field", "budget"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
async def test_over_budget_is_refused_before_any_job(client, jobs, operation, body, limits, status, field, budget):
    cache = 1 * 2**20 if limits == "cache" else 8 * GiB
    async with client(None if limits == "cache" else limits, cache) as api:
        before = (await api.get("/v1/jobs?limit=1")).json()["total"]
        response = await api.post(f"/v1/{operation}", json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert [e["field"] for e in problem["errors"]] == [field], problem
        assert budget in problem["detail"] and "over" in problem["detail"], problem["detail"]
        assert (await api.get("/v1/jobs?limit=1")).json()["total"] == before
    params, inputs = split_request(OPERATIONS[operation].model_validate(body))
    assert jobs.store.get(job_id(operation, params, inputs)) is None


def test_the_message_says_how_much_and_what_to_do():
    body = {"architecture": RESNET, "width": 8, "n_init": 64, "x": line(20_000)}
    with pytest.raises(LimitExceeded) as refused:
        check_limits(OPERATIONS["empirical-kernels"].model_validate(body), Limits(), 8 * GiB)
    assert refused.value.detail.startswith("the result would hold 194 GiB (n_init 64 x 20000 x 20000 NTKs x 8 bytes")
    assert "over the output budget of 4 GiB (RESKERNEL_MAX_OUTPUT_BYTES); lower n_init" in refused.value.detail


README = [("kernels", {"x": [[1, 0], [0, 1]], "architecture": RESNET}),
          ("smoothness", {"architectures": [{"kind": "mlp", "depth": 5}, RESNET], "n_train": 6}),
          ("train", {"architecture": RESNET, "width": 512, "x_train": line(6), "y_train": [0.5] * 6, "steps": 2000})]
ORDINARY = [
    *README,
    # 496 MiB of NTKs: within the default output budget of 4 GiB (the choice for issue 13's 1,000-point case)
    ("empirical-kernels", {"architecture": RESNET, "width": 8, "n_init": 64, "x": line(1000)}),
    ("kernels", {"x": line(20_000), "architecture": RESNET, "kernels": ["ntk"]}),  # 3 GiB at the points limit
    ("kernels", {"x": line(1024), "architecture": {**RESNET, "activation": "tanh"}}),
    ("spectrum", {"architecture": {**RESNET, "activation": "gelu"}, "x": line(64)}),
    ("regression", {"architecture": RESNET, "x_train": line(2000), "y_train": [[0.0] * 10] * 2000,
                    "x_test": line(4000), "return_variance": True, "kernel": "nngp", "t": 1.0}),
    ("smoothness", {"architectures": [RESNET] * 64, "n_train": 100, "n_grid": 65_536, "measure": "rkhs"}),
    ("train", {"architecture": RESNET, "width": 1024, "n_init": 4, "x_train": line(10), "y_train": [0.0] * 10,
               "x_test": line(512), "steps": 1000, "optimizer": "adam", "lr": 1e-3, "track_ntk": True,
               "return_ntk": True, "jacobian_norms": True}),
    ("bounds", {"architecture": RESNET, "width": 46_340, "input_dim": 2}),
    # a finite conv net takes no analytic kernel: tanh on more signals than the quadrature's points limit
    ("train", {"architecture": {**CNN, "activation": "tanh"}, "width": 16, "x_train": np.zeros((1500, 3, 1)).tolist(),
               "y_train": [0.0] * 1500, "steps": 100, "lr": 0.1}),
]


@pytest.mark.parametrize(("operation", "body"), ORDINARY, ids=[f"{op}-{i}" for i, (op, _) in enumerate(ORDINARY)])
def test_ordinary_requests_are_admitted(operation, body):
    got = check_limits(OPERATIONS[operation].model_validate(body), Limits(), 8 * GiB)
    assert 0 <= got.total("output") <= 4 * GiB and 0 < got.total("memory") <= 8 * GiB
    assert 0 <= got.total("compute") <= 3600


def test_the_api_tests_requests_are_admitted_under_their_limits(settings):
    """The largest requests of test_api.py pass the shared tests' limits (it runs them all)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).tolist()
    for operation, body in [("kernels", {"x": x, "x2": x[:7], "architecture": {"kind": "mlp", "depth": 3}}),
                            ("kernels", {"x": rng.normal(size=(160, 3)).tolist(), "architecture": RESNET}),
                            ("train", {"architecture": {**RESNET, "depth": 2}, "width": 32, "x_train": x[:6],
                                       "y_train": [0.0] * 6, "x_test": x[:2], "steps": 40, "track_ntk": True,
                                       "return_ntk": True})]:
        check_limits(OPERATIONS[operation].model_validate(body), settings.limits, settings.cache_bytes)


def test_extreme_parameters_are_estimated_not_crashed():
    """Valid but extreme values give a finite estimate (and a refusal), never a 500."""
    smoothness = {"architectures": [RESNET], "train_angles": [float(a) for a in range(2000)], "n_grid": 65_536,
                  "measure": "rkhs", "bandwidth": 1e-6}  # the least bandwidth: the most harmonics
    with pytest.raises(LimitExceeded) as refused:
        check_limits(OPERATIONS["smoothness"].model_validate(smoothness), Limits(), 8 * GiB)
    assert refused.value.field == "train_angles" and "RKHS Gram 2000 x 2000 x 65535 harmonics" in refused.value.detail
    samples = {"samples": [0.0, 1.0] * 32_768}
    assert estimate(OPERATIONS["smoothness"].model_validate(samples)).total("output") == 65_536 * 8


def test_requests_read_as_numpy_arrays_cost_the_same():
    """The request models may carry numpy arrays instead of nested lists: same estimate."""
    body = {"architecture": RESNET, "x_train": line(30), "y_train": [[1.0, 2.0, 3.0]] * 30, "x_test": line(7)}
    request = OPERATIONS["regression"].model_validate(body)
    arrays = request.model_copy(update={k: np.asarray(getattr(request, k)) for k in ("x_train", "y_train", "x_test")})
    assert estimate(arrays) == estimate(request)
    assert estimate(request).total("output") == 7 * 3 * 8


def test_tiles_mirror_the_engine():
    """tile_entries counts the tiles analytic_kernels reports computing (and its padding)."""
    assert (cost.TILE, cost.QUADRATURE_TILE, cost.MIN_BUCKET) == (analytic.TILE, analytic.QUADRATURE_TILE,
                                                                   analytic.MIN_BUCKET)
    # the engine takes the small tile for every activation without a closed form
    assert set(ACTIVATIONS) - set(CLOSED_FORMS) == set(QUADRATURE_ACTIVATIONS)
    for n1, n2, activation in [(1, 65, "relu"), (600, None, "relu"), (1000, 3, "erf")]:
        x1, x2, totals = np.ones((n1, 2)), None if n2 is None else np.ones((n2, 2)), []
        analytic.analytic_kernels(x1, x2, arch=Architecture("mlp", 1, activation=activation),
                                  progress=lambda done, total, totals=totals: totals.append(total))
        tile, bucket = analytic.TILE, analytic._bucket
        b1 = bucket(n1, max(tile, tile * tile // bucket(n2 or n1, tile)))  # long tiles against a few points
        b2 = bucket(n2 or n1, max(tile, tile * tile // b1))
        size = bucket(n1, tile)
        diagonal = math.ceil(n1 / size) * size if n2 is None else 0  # the symmetric case's diagonal recursion
        assert tile_entries(n1, n2, quadrature=False) == totals[-1] * b1 * b2 + diagonal


async def finished(api: httpx.AsyncClient, location: str, timeout: float = 600) -> dict:
    """The job's status once it has succeeded (the shared machine can be slow: poll, don't wait once)."""
    deadline = time.monotonic() + timeout
    while (status := (await api.get(location)).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, status
        await anyio.sleep(0.2)
    assert status["status"] == "succeeded", status
    return status


async def test_output_estimate_equals_the_arrays_written(api, jobs):
    """Small jobs of every operation: the estimated output bytes are the bytes of the arrays the
    job wrote (the .npy files hold them plus a header of 128 bytes each)."""
    x, signals = line(9), np.random.default_rng(0).normal(size=(5, 4, 2)).tolist()
    requests = [
        ("kernels", {"x": x, "x2": x[:4], "architecture": RESNET}),
        ("regression", {"architecture": RESNET, "x_train": x, "y_train": [[1.0, 0.5]] * 9, "x_test": line(5),
                        "kernel": "nngp", "ridge": 1e-6, "return_variance": True}),
        ("smoothness", {"architectures": [RESNET, {"kind": "mlp", "depth": 2}], "n_train": 6, "n_grid": 64,
                        "samples": [0.0, 1.0, 0.0, -1.0]}),
        ("spectrum", {"architecture": RESNET, "n_grid": 32, "x": x}),
        ("bounds", {"architecture": RESNET, "width": 8, "input_dim": 1}),
        ("empirical-kernels", {"architecture": RESNET, "width": 8, "n_init": 3, "x": x, "x2": x[:2],
                               "kernels": ["ntk", "nngp"], "jacobian_norms": True}),
        ("train", {"architecture": RESNET, "width": 8, "n_init": 2, "x_train": x, "y_train": [0.1] * 9,
                   "x_test": x[:3], "steps": 20, "record_every": 7, "track_ntk": True, "return_ntk": True,
                   "jacobian_norms": True}),
        ("empirical-kernels", {"architecture": CNN, "width": 8, "n_init": 3, "x": signals, "x2": signals[:2],
                               "kernels": ["ntk", "nngp"]}),
        ("train", {"architecture": CNN, "width": 8, "n_init": 2, "x_train": signals, "y_train": [0.1] * 5,
                   "x_test": signals[:3], "steps": 20, "record_every": 7, "track_ntk": True, "return_ntk": True}),
    ]
    for operation, body in requests:
        response = await api.post(f"/v1/{operation}", json=body, headers={"Prefer": "respond-async"})
        assert response.status_code in (200, 202), response.text
        job = response.json()["id"] if response.status_code == 202 else response.headers["etag"].strip('"')
        status = await finished(api, f"/v1/jobs/{job}")
        arrays = status["result"]["arrays"]
        written = sum(8 * math.prod(a["shape"]) for a in arrays.values())
        predicted = estimate(OPERATIONS[operation].model_validate(body)).total("output")
        assert predicted == written, (operation, {k: a["shape"] for k, a in arrays.items()})
        files = sum(p.stat().st_size for p in jobs.store.result_dir(status["id"]).glob("*.npy"))
        assert written <= files <= written + 128 * len(arrays)


PEAK = textwrap.dedent("""
    import json, sys, tempfile
    from pathlib import Path
    import numpy as np
    import jax.numpy as jnp
    from service.jobs import worker

    def status(key):
        return next(int(l.split()[1]) * 1024 for l in Path("/proc/self/status").read_text().splitlines()
                    if l.startswith(key + ":"))

    class Report:
        def __call__(self, fraction, message): pass
        def should_stop(self): return False

    operation, params, inputs = json.loads(sys.stdin.read())
    jnp.zeros(1).block_until_ready()
    base = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    with tempfile.TemporaryDirectory() as folder:
        worker.RUNS[operation](params, {k: np.asarray(v) for k, v in inputs.items()}, Path(folder), Report())
    print(json.dumps({"base": base, "peak": status("VmHWM")}))
""")


X = np.random.default_rng(0).normal(size=(20, 2))
PEAK_CASES = {
    "train": {"architecture": {"kind": "resnet", "depth": 3, "alpha": 0.1}, "width": 1024, "n_init": 3,
              "optimizer": "adam", "lr": 1e-3, "x_train": X.tolist(), "y_train": X[:, 0].tolist(),
              "x_test": X[:5].tolist(), "steps": 6, "record_every": 2},
    # the conv NTK's position-pair Grams (32 x 32 images x 64^2 positions a layer) dominate
    "empirical-kernels": {"architecture": {"kind": "conv-resnet", "depth": 3, "alpha": 0.5, "filter_size": [3, 3]},
                          "width": 64, "n_init": 2, "x": np.random.default_rng(1).normal(size=(32, 8, 8, 1)).tolist(),
                          "kernels": ["ntk", "nngp"]},
}


@pytest.mark.parametrize("operation", PEAK_CASES)
def test_memory_estimate_is_above_a_measured_peak(operation):
    """A small Adam training job, and the empirical NTKs of conv nets, run as the worker runs them, in a
    process of its own: the estimated peak is above the measured peak (VmHWM), and not more than twice
    the memory it added."""
    request = OPERATIONS[operation].model_validate(PEAK_CASES[operation])
    params, inputs = split_request(request)
    payload = json.dumps([operation, params, {k: v.tolist() for k, v in inputs.items()}])
    run = subprocess.run([sys.executable, "-c", PEAK], input=payload, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    predicted = estimate(request).total("memory")
    assert predicted >= measured["peak"], (predicted / 2**20, measured)
    added = predicted - cost.WORKER_BASE_BYTES
    assert added <= 2 * (measured["peak"] - measured["base"]), (added / 2**20, measured)


def test_budgets_come_from_the_environment_and_read_well():
    env = {"RESKERNEL_MAX_OUTPUT_BYTES": "1000", "RESKERNEL_MAX_MEMORY_BYTES": "2000",
           "RESKERNEL_MAX_COMPUTE_SECONDS": "30"}
    limits = Settings.from_env(env).limits
    assert (limits.output_bytes, limits.memory_bytes, limits.compute_seconds) == (1000, 2000, 30)
    assert (Limits().output_bytes, Limits().memory_bytes, Limits().compute_seconds) == (4 * GiB, 8 * GiB, 3600)
    assert [size(4 * GiB), size(1000 * 2**20), size(208e9)] == ["4 GiB", "1000 MiB", "194 GiB"]
    assert [duration(3600), duration(5400), duration(600), duration(1500 * 86400)] == [
        "1 hour", "1.5 hours", "10 min", "1500 days"]


def circle_points(n: int) -> list[list[float]]:
    b = np.linspace(-np.pi, np.pi, n, endpoint=False)
    return np.stack([np.cos(b), np.sin(b)], axis=1).tolist()


async def test_an_experiment_is_refused_like_the_operations_it_runs(client, jobs):
    """Issue 19, item 2: finite-vs-infinite's 64 networks of width 10,000 are a 413 naming the width and
    the memory budget, as the same networks sent to /v1/train are (the experiment was admitted at 350 MiB)."""
    width = {"width": 10_000, "n_init": 64}
    train_body = {"architecture": {"kind": "resnet", "depth": 5, "alpha": 0.1}, **width, "x_train": circle_points(10),
                  "y_train": [0.0] * 10, "x_test": circle_points(1024), "steps": 500, "lr": 0.2, "track_ntk": True}
    async with client() as api:
        before = (await api.get("/v1/jobs?limit=1")).json()["total"]
        refused = await api.post("/v1/experiments/finite-vs-infinite", json={"parameters": width})
        alone = await api.post("/v1/train", json=train_body)
        assert (await api.get("/v1/jobs?limit=1")).json()["total"] == before
    assert (refused.status_code, alone.status_code) == (413, 413), (refused.text, alone.text)
    assert [e["field"] for e in refused.json()["errors"]] == ["parameters.width"]
    for problem in (refused.json(), alone.json()):
        assert "about 999 GiB" in problem["detail"] and "RESKERNEL_MAX_MEMORY_BYTES" in problem["detail"], problem


def test_an_experiment_costs_at_least_the_operations_it_runs():
    """The estimate of finite-vs-infinite (quick) is at least its training and its empirical NTKs charged
    as /v1/train and /v1/empirical-kernels charge them, and every experiment's quick scale is admitted."""
    from engine.experiments import EXPERIMENTS
    from service.jobs.admission import check_experiment
    from service.operations import experiment

    arch = {"kind": "resnet", "depth": 5, "alpha": 0.1}
    params = EXPERIMENTS["finite-vs-infinite"].parameters("quick")
    parts = [OPERATIONS["empirical-kernels"].model_validate(
        {"architecture": arch, "width": 256, "n_init": 4, "x": [[1.0, 0.0]], "x2": circle_points(181)})]
    parts += [OPERATIONS["train"].model_validate(
        {"architecture": arch, "width": 256, "n_init": 4, "x_train": circle_points(m), "y_train": [0.0] * m,
         "x_test": circle_points(1024), "steps": 500, "lr": lr, "track_ntk": True}) for m, lr in ((6, 0.5), (10, 0.2))]
    total = experiment.cost("finite-vs-infinite", params)
    assert total.total("compute") >= sum(estimate(p).total("compute") for p in parts)
    assert total.total("memory") >= max(estimate(p).total("memory") for p in parts)
    for name, exp in EXPERIMENTS.items():
        check_experiment(name, exp.parameters("quick"), Limits(), 8 * GiB)


def test_nngp_vs_ntk_costs_name_its_sphere_parameters():
    """The sphere requests of nngp-vs-ntk charge /v1/smoothness's own cost, and their terms name the
    experiment's sphere parameters (not the circle's n_grid and bandwidth)."""
    from engine.experiments import EXPERIMENTS
    from service.operations import experiment_cost

    def heaviest(overrides: dict) -> tuple[str, str]:
        params = EXPERIMENTS["nngp-vs-ntk"].parameters("quick", overrides)
        total = experiment_cost.cost("nngp-vs-ntk", params)
        return (max(total.memory, key=lambda t: t.amount).field, max(total.compute, key=lambda t: t.amount).field)

    assert heaviest({"sphere_grid": 131072, "sphere_dims": [3]})[1] == "parameters.sphere_grid"
    assert heaviest({"n_points": 4096, "sphere_bandwidth": 0.05, "sphere_dims": [10]}) == (
        "parameters.sphere_bandwidth", "parameters.n_points")
    quick = EXPERIMENTS["nngp-vs-ntk"].parameters("quick")
    smoothness = [r for _, r in experiment_cost.plan("nngp-vs-ntk", quick)]
    assert len(smoothness) == 2 * 2 * (2 + 2)  # depths x kernels x (circle m's + spheres)
    assert all(r.measure == "both" for r in smoothness)
