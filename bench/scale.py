"""One Gram matrix across the Dask workers (service.operations.tiles): strong scaling and the
service's end-to-end time.

    .venv/bin/python -m bench.scale [--n 16384] [--depth 15] [--service-n 20000] [--nystrom-n 100000]

(as a module: run as a file, bench/service.py would hide the service package from the workers)

1. Strong scaling: the NTK of N points uniform on S^9 (d = 10), ReLU ResNet of `depth`, alpha 0.1,
   filled by tile tasks into Zarr chunks (`distributed_kernels`, the service's path without HTTP) on a
   local cluster of 1 worker process, then of 2 (1 thread each), in the same run; the baseline is the
   engine in this process (all cores, into a .npy memory map: the service's path for one worker).
   Twice: with the workers sharing all cores (a worker's XLA runs its tiles on every core, so one
   worker already uses more than one), then with worker k pinned to core k (one core per worker:
   the cores double from 1 to 2 workers).
2. End to end: POST /v1/kernels of `--service-n` points (NTK only) to an in-process service with 2
   workers, from the request to the result committed (the body's parse and the admission included).
3. With --nystrom-n: POST /v1/regression, solver nystrom, M = 4096 (bench/nystrom.py's problem: S^9,
   ResNet depth 5, alpha 0.5, NTK, ridge 1e-4), its K_nM filled by tile tasks on the 2 workers; the test
   RMS error against the noiseless target at 1000 test points.
Each cluster is warmed by a small job first (JAX compilation excluded); times are wall seconds.
The peak memory of a tile task is one region of each kernel (edge^2 x 8 bytes, 32 MiB at edge 2048)
plus the engine's tiles in flight, whatever N.
"""

from __future__ import annotations

import argparse
import os
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


def _pin(core: int) -> None:
    """Every thread of this process (XLA's pool included; threads started later inherit it) onto one core."""
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), {core})


def _peak_mib() -> float:
    """This process's peak resident memory so far, MiB: VmHWM, its address space's own high-water mark
    (getrusage's ru_maxrss would not do: Linux carries it across the fork and exec that start a worker,
    so a worker would report the parent's peak, here the one-process run's memory map)."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024


def cluster_seconds(workers: int, params: dict[str, Any], x: np.ndarray, edge: int,
                    pin: bool = False) -> tuple[float, float]:
    """A local cluster of `workers` processes (1 Dask thread each); pin: worker k on core k alone.
    (seconds, the largest peak resident memory of a worker process in MiB: JAX and Dask included)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            tempfile.TemporaryDirectory() as folder:
        if pin:
            for core, address in enumerate(sorted(client.scheduler_info()["workers"])):
                client.run(_pin, core, workers=[address])
        client.submit(_on_cluster, params, x[:2048], str(Path(folder) / "warm"), edge, pure=False).result()
        (Path(folder) / "run").mkdir()
        seconds = client.submit(_on_cluster, params, x, str(Path(folder) / "run"), edge, pure=False).result()
        return seconds, max(client.run(_peak_mib).values())


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


def target(x: np.ndarray, seed: int) -> np.ndarray:
    """bench/nystrom.py's: sin(2 x_0) + x_1 x_2 + 0.1 noise."""
    return np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * np.random.default_rng(seed).standard_normal(len(x))


def service_seconds(n: int, depth: int, nystrom_n: int = 0) -> tuple[float, float | None, float | None]:
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

    async def regression(api: httpx.AsyncClient) -> tuple[float, float]:
        x, x_test = points(nystrom_n, seed=3), points(1000, seed=4)
        body = {"x_train": x.tolist(), "y_train": target(x, 5).tolist(), "x_test": x_test.tolist(), "kernel": "ntk",
                "architecture": {"kind": "resnet", "depth": 5, "alpha": 0.5}, "ridge": 1e-4, "solver": "nystrom",
                "centers": 4096}
        start = time.perf_counter()
        response = await api.post("/v1/regression", json=body, headers={"Prefer": "wait=600"})
        seconds = time.perf_counter() - start
        assert response.status_code == 200, response.text
        truth = np.sin(2 * x_test[:, 0]) + x_test[:, 1] * x_test[:, 2]
        return seconds, float(np.sqrt(np.mean((np.asarray(response.json()["mean"]) - truth) ** 2)))

    async def run(app: Any) -> tuple[float, float | None, float | None]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel",
                                     timeout=900) as api:
            await post(api, points(4096, seed=1))  # warm: split too (4096^2 entries)
            kernels = await post(api, points(n, seed=2)) if n else 0.0
            return (kernels, *(await regression(api))) if nystrom_n else (kernels, None, None)

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), workers=2, trusted_hosts=("reskernel",), max_wait_s=900,
                            limits=Limits(points=max(n, nystrom_n + 1000, 20_000), body_bytes=2**30,
                                          memory_bytes=16 * 2**30))
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
    parser.add_argument("--nystrom-n", type=int, default=0, help="also POST /v1/regression, solver nystrom (100000)")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()
    params = {"architecture": {"kind": "resnet", "depth": args.depth, "alpha": 0.1}, "kernels": ["ntk"]}
    if not args.skip_scaling:
        x = points(args.n)
        one = one_process_seconds(params, x)
        print(f"N = {args.n}, depth {args.depth}, NTK: one process (all cores, .npy memmap) {one:.1f} s")
        for pin, how in ((False, "sharing all cores"), (True, "worker k pinned to core k")):
            seconds = {}
            for workers in (1, 2):
                seconds[workers], peak = cluster_seconds(workers, params, x, args.edge, pin)
                print(f"  tiles on {workers} worker(s), {how}: {seconds[workers]:.1f} s "
                      f"({seconds[workers] / one:.2f}x one process), worker peak RSS {peak:.0f} MiB")
            print(f"  strong scaling, {how}: 2 workers / 1 worker = {seconds[2] / seconds[1]:.2f}")
    if args.service_n or args.nystrom_n:
        kernels, regression, error = service_seconds(args.service_n, args.depth, args.nystrom_n)
        if args.service_n:
            print(f"N = {args.service_n}, depth {args.depth}, NTK through the service, 2 workers: {kernels:.1f} s "
                  "end to end")
        if args.nystrom_n:
            print(f"Nystrom regression through the service, 2 workers, N = {args.nystrom_n}, M = 4096, depth 5: "
                  f"{regression:.1f} s end to end, test RMS error {error:.4f}")


if __name__ == "__main__":
    main()
