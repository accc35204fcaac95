"""One Gram matrix across the workers (issue 21, section 1), with real processes on loopback:
`dask scheduler`, two `dask worker` and `reskernel serve` splitting every kernels job of 10,000
entries or more into tile tasks. The matrix equals the engine's one-process matrix bit for bit;
blocks, the whole .npy and the .npz read the Zarr chunks; a Nystrom regression's K_nM is filled the
same way; a worker killed mid-job leaves the job
to finish with the same numbers; a cancel stops the pending tiles."""

import io
import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from distributed import Client, get_task_stream
from test_replicas import kill, ready, start
from test_server import free_port, wait_until

from engine import Architecture, analytic_kernels, nystrom_regression

BIN = Path(sys.executable).parent
NPY, NPZ = "application/x-npy", "application/x-npz"
RNG = np.random.default_rng(21)
# tanh on points of several norms, |x|^2/d up to ~10: the quadrature, 16 x 16 tiles, a few ms each: jobs long enough
# to kill a worker or cancel in
SLOW = {"kind": "resnet", "depth": 2, "activation": "tanh", "alpha": 0.5}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    data, logs = folder / "data", folder / "logs"
    logs.mkdir()
    port, scheduler_port = free_port(), free_port()
    scheduler = f"tcp://127.0.0.1:{scheduler_port}"
    processes = [start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(scheduler_port),
                        "--dashboard-address", f"127.0.0.1:{free_port()}"], logs / "scheduler.log")]
    processes += [start([str(BIN / "dask"), "worker", scheduler, "--nthreads", "1", "--memory-limit", "0",
                         "--no-dashboard", "--host", "127.0.0.1"], logs / f"worker-{i}.log") for i in range(2)]
    env = {"RESKERNEL_DASK_ADDRESS": scheduler, "RESKERNEL_DATA_DIR": str(data), "RESKERNEL_WARM_UP": "0",
           "RESKERNEL_WAIT_S": "120", "RESKERNEL_DISTRIBUTE_ENTRIES": "10000", "RESKERNEL_TILE_EDGE": "16",
           "RESKERNEL_CANCEL_GRACE_S": "30"}
    processes.append(start([str(BIN / "reskernel"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                           logs / "api.log", env))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(base) and httpx.get(f"{base}/readyz").json()["workers"] == 2, 120,
                   "the service ready with two workers")
        with httpx.Client(base_url=base, timeout=300) as http, Client(scheduler, set_as_default=False) as dask:
            yield SimpleNamespace(http=http, dask=dask, data=data)
    finally:
        for process in reversed(processes):
            kill(process)


def submit(cluster, body: dict) -> str:
    response = cluster.http.post("/v1/kernels", json=body, headers={"Prefer": "respond-async"})
    assert response.status_code in (200, 202), response.text
    return response.json()["id"]


def finished(cluster, job: str, timeout: float = 300) -> dict:
    return wait_until(lambda: (s := cluster.http.get(f"/v1/jobs/{job}").json())["status"] not in ("queued", "running")
                      and s, timeout, f"job {job} to end")


def download(cluster, job: str, query: str = "", accept: str = NPY):
    response = cluster.http.get(f"/v1/jobs/{job}/result?{query}", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content))


def points(n: int, scale: float = 1.0) -> np.ndarray:
    return RNG.normal(size=(n, 3)) * scale


@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "x-x2"])
def test_the_matrix_across_the_workers_equals_the_one_process_matrix(cluster, symmetric):
    x = points(1200)
    x[3] = x[1000]  # a repeated point in an off-diagonal tile
    x2 = None if symmetric else points(700)
    arch = {"kind": "resnet", "depth": 6, "alpha": 0.2}
    body = {"x": x.tolist(), "architecture": arch} | ({} if symmetric else {"x2": x2.tolist()})
    status = finished(cluster, submit(cluster, body))
    assert status["status"] == "succeeded", status
    job = status["id"]
    values = status["result"]["values"]
    # 3 x 3 regions, 6 of them on or above the diagonal; or 3 x 2
    assert values["tile_shape"] == [512, 512] and values["tiles"] == 6
    expected = analytic_kernels(x, x2, arch=Architecture.from_dict(arch))
    for name in ("nngp", "ntk"):
        np.testing.assert_array_equal(download(cluster, job, f"array={name}"), expected[name])
    np.testing.assert_array_equal(download(cluster, job, "array=ntk&rows=100:1100&cols=5:650"),
                                  expected["ntk"][100:1100, 5:650])
    block = cluster.http.get(f"/v1/jobs/{job}/result?array=nngp&rows=510:515&cols=:3").json()
    np.testing.assert_array_equal(np.array(block), expected["nngp"][510:515, :3])
    archive = download(cluster, job, accept=NPZ)
    assert sorted(archive.files) == ["nngp", "ntk"]
    np.testing.assert_array_equal(archive["ntk"], expected["ntk"])
    folder = next(cluster.data.glob(f"jobs/*/{job}/result"))
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "nngp.zarr", "ntk.zarr"]  # no points left


def test_nystrom_computes_its_k_nm_across_the_workers(cluster):
    x_train, x_test = points(1200), points(50)
    y = np.sin(x_train[:, 0]) + x_train[:, 1] * x_train[:, 2]
    arch = {"kind": "resnet", "depth": 4, "alpha": 0.3}
    body = {"x_train": x_train.tolist(), "y_train": y.tolist(), "x_test": x_test.tolist(), "architecture": arch,
            "kernel": "ntk", "ridge": 1e-3, "solver": "nystrom", "centers": 600, "seed": 3}
    with get_task_stream(client=cluster.dask) as stream:
        response = cluster.http.post("/v1/regression", json=body, headers={"Prefer": "wait=120"})
    assert response.status_code == 200, response.text
    tiles = [t for t in stream.data if str(t["key"]).startswith("tile-")]
    matrices = {}  # a matrix's tile tasks share a key's second part
    for key in {str(t["key"]) for t in tiles}:
        matrices.setdefault(key.split("-")[1], []).append(key)
    # K_nM 1200 x 600 in 512 x 512 regions: 3 x 2 tile tasks; K_test 50 x 600 (30,000 entries): one
    assert sorted(map(len, matrices.values())) == [1, 6], matrices
    assert len({t["worker"] for t in tiles}) == 2  # on both workers
    fit = nystrom_regression(x_train, y, x_test, arch=Architecture.from_dict(arch), kernel="ntk", ridge=1e-3,
                             centres=600, seed=3)
    # the same K_nM; CG (tolerance 1e-10) on BLAS of other thread counts: agreement to ~1e-9, a wrong tile is O(1)
    np.testing.assert_allclose(response.json()["mean"], fit.prediction.mean, rtol=1e-8, atol=1e-10)
    assert response.json()["iterations"] == fit.iterations


def tiles_in_cluster(cluster) -> list[str]:
    return [key for keys in cluster.dask.processing().values() for key in keys if str(key).startswith("tile-")]


def test_a_worker_killed_mid_job_leaves_the_job_to_finish_with_the_same_numbers(cluster):
    x = points(192, scale=2.0)
    job = submit(cluster, {"x": x.tolist(), "architecture": SLOW, "kernels": ["ntk"]})
    wait_until(lambda: cluster.http.get(f"/v1/jobs/{job}").json()["progress"] >= 0.1, 120, "tiles to finish")
    processing = cluster.dask.processing()
    holder = next(w for w, keys in processing.items() if any(str(k).startswith("kernels-") for k in keys))
    victim = next(w for w in processing if w != holder)  # a worker computing tiles only
    pid = cluster.dask.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)  # its nanny starts another; its tiles run again elsewhere
    status = finished(cluster, job)
    assert status["status"] == "succeeded", status
    expected = analytic_kernels(x, arch=Architecture.from_dict(SLOW), kernels=["ntk"])["ntk"]
    np.testing.assert_array_equal(download(cluster, job, "array=ntk"), expected)
    wait_until(lambda: len(cluster.dask.nthreads()) == 2, 120, "the killed worker to be replaced")


def test_a_cancel_stops_the_pending_tiles(cluster):
    job = submit(cluster, {"x": points(480, scale=2.0).tolist(), "architecture": SLOW, "kernels": ["ntk"]})
    wait_until(lambda: cluster.http.get(f"/v1/jobs/{job}").json()["progress"] > 0, 120, "tiles to finish")
    assert cluster.http.post(f"/v1/jobs/{job}:cancel", json={}).status_code == 202
    status = finished(cluster, job, 60)
    assert status["status"] == "canceled" and status["progress"] < 0.5, status
    wait_until(lambda: not tiles_in_cluster(cluster), 30, "no tile left running or waiting")
    time.sleep(0.5)
    job_dir = next(cluster.data.glob(f"jobs/*/{job}"))
    assert not list(job_dir.glob("staging-*")) and not (job_dir / "result").exists()
