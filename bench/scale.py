"""One Gram matrix across the Dask workers (service.operations.tiles): strong scaling and the
service's end-to-end time.

    .venv/bin/python -m bench.scale [--n 16384] [--depth 15] [--service-n 20000]

(as a module: run as a file, bench/service.py would hide the service package from the workers)

1. Strong scaling: the NTK of N points uniform on S^9 (d = 10), ReLU ResNet of `depth`, alpha 0.1,
   filled by tile tasks into Zarr chunks (`distributed_kernels`, the service's path without HTTP) on a
   local cluster of 1 worker process, then of 2 (1 thread each), in the same run; the baseline is the
   engine in this process (all cores, into a .npy memory map: the service's path for one worker).
2. End to end: POST /v1/kernels of `--service-n` points (NTK only) to an in-process service with 2
   workers, from the request to the result committed (the body's parse and the admission included).
Each cluster is warmed by a small job first (JAX compilation excluded); times are wall seconds.
The peak memory of a tile task is one region of each kernel (edge^2 x 8 bytes, 32 MiB at edge 2048)
plus the engine's tiles in flight, whatever N.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def points(n: int, d: int = 10, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class _Quiet:
    def __call__(self, fraction: float, message: str) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def _on_cluster(params: dict[str, Any], x: np.ndarray, folder: str, edge: int) -> float:
    """Runs in a worker, as a kernels job does: its seconds."""
    from service.operations.tiles import distributed_kernels

    start = time.perf_counter()
    distributed_kernels(params, {"x": x}, Path(folder), _Quiet(), edge)
    return time.perf_counter() - start


def cluster_seconds(workers: int, params: dict[str, Any], x: np.ndarray, edge: int) -> float:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            tempfile.TemporaryDirectory() as folder:
        client.submit(_on_cluster, params, x[:2048], str(Path(folder) / "warm"), edge, pure=False).result()
        (Path(folder) / "run").mkdir()
        return client.submit(_on_cluster, params, x, str(Path(folder) / "run"), edge, pure=False).result()


def one_process_seconds(params: dict[str, Any], x: np.ndarray) -> float:
    from engine import Architecture, analytic_kernels

    arch = Architecture.from_dict(params["architecture"])
    analytic_kernels(x[:2048], arch=arch, kernels=params["kernels"])
    with tempfile.TemporaryDirectory() as folder:
        out = {"ntk": np.lib.format.open_memmap(Path(folder) / "ntk.npy", "w+", np.float64, (len(x), len(x)))}
        start = time.perf_counter()
        analytic_kernels(x, arch=arch, kernels=params["kernels"], out=out)
        out["ntk"].flush()
        return time.perf_counter() - start


def service_seconds(n: int, depth: int) -> float:
    import anyio
    import httpx

    from service.http.app import create_app
    from service.jobs.executor import Executor
    from service.jobs.lifecycle import Jobs
    from service.settings import Limits, Settings
    from service.store.sqlite import SQLiteStore

    async def post(api: httpx.AsyncClient, x: np.ndarray) -> float:
        body = {"x": x.tolist(), "architecture": {"kind": "resnet", "depth": depth, "alpha": 0.1}, "kernels": ["ntk"]}
        start = time.perf_counter()
        response = await api.post("/v1/kernels", json=body, headers={"Prefer": "return=minimal, wait=300"})
        assert response.status_code == 200 and response.json()["status"] == "succeeded", response.text
        return time.perf_counter() - start

    async def run(app: Any) -> float:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel",
                                     timeout=600) as api:
            await post(api, points(4096, seed=1))  # warm: split too (4096^2 entries)
            return await post(api, points(n, seed=2))

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), workers=2, trusted_hosts=("reskernel",), max_wait_s=600,
                            limits=Limits(points=max(n, 20_000), body_bytes=2**30))
        jobs = Jobs(settings, SQLiteStore(settings.data_dir), Executor(settings))
        jobs.start()
        try:
            return anyio.run(run, create_app(settings, jobs))
        finally:
            jobs.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=16_384)
    parser.add_argument("--depth", type=int, default=15)
    parser.add_argument("--edge", type=int, default=2048)
    parser.add_argument("--service-n", type=int, default=20_000)
    args = parser.parse_args()
    params = {"architecture": {"kind": "resnet", "depth": args.depth, "alpha": 0.1}, "kernels": ["ntk"]}
    x = points(args.n)
    one = one_process_seconds(params, x)
    print(f"N = {args.n}, depth {args.depth}, NTK: one process (all cores, .npy memmap) {one:.1f} s")
    seconds = {workers: cluster_seconds(workers, params, x, args.edge) for workers in (1, 2)}
    for workers, value in seconds.items():
        print(f"  tiles on {workers} worker(s): {value:.1f} s ({value / one:.2f}x one process)")
    print(f"  strong scaling: 2 workers / 1 worker = {seconds[2] / seconds[1]:.2f}")
    if args.service_n:
        print(f"N = {args.service_n}, depth {args.depth}, NTK through the service, 2 workers: "
              f"{service_seconds(args.service_n, args.depth):.1f} s end to end")


if __name__ == "__main__":
    main()
