"""The exact kernel regression beyond memory (engine.blocked_kernel_regression): the training Gram in a
Zarr array on disk, scaled and factored there in blocks of `edge`.

    PYTHONPATH=$PWD .venv/bin/python -m bench.exact [--n 20000] [--m 1000] [--edge 2048] [--check-n 3000]

Points uniform on S^9 (d = 10, seeded); target sin(2 x_0) + x_1 x_2; ResNet depth 5, ReLU, NTK, ridge
1e-6 (relative). Prints the wall seconds of each phase (the Gram's regions, the scaling, the factor,
the solves), the peak resident memory of this process (ru_maxrss) beside the service's admission
estimate of the out-of-core job (`out_of_core_cost`) and the in-memory one it replaces, the bytes the
Zarr array holds on disk, and, at --check-n, the largest difference from the in-memory
kernel_regression (the baseline, in the same run, after the large run so its memory does not count).
JAX's compilation is excluded by a first small call.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

ARCH = {"kind": "resnet", "depth": 5}


def points(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 10))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def target(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2]


def out_of_core(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, edge: int, folder: Path) -> dict[str, Any]:
    """The engine's out-of-core path into a Zarr array in `folder`: the prediction, each phase's seconds,
    the bytes on disk."""
    import zarr

    from engine import Architecture, blocked_kernel_regression, fill_gram

    arch = Architecture.from_dict(ARCH)
    starts: dict[str, float] = {}
    disk = [0]

    def gram(merged: np.ndarray, progress: Any) -> Any:
        array = zarr.create_array(store=folder / "ntk.zarr", shape=(len(merged),) * 2, chunks=(edge, edge),
                                  dtype="float64", compressors=None, fill_value=np.nan, zarr_format=3,
                                  config={"write_empty_chunks": True})
        fill_gram(merged, array, arch=arch, kernel="ntk", edge=edge, progress=progress)
        disk[0] = sum(f.stat().st_size for f in (folder / "ntk.zarr").rglob("*") if f.is_file())
        return array

    def report(fraction: float, message: str) -> None:
        starts.setdefault(message.split(":")[0], time.perf_counter())

    begin = time.perf_counter()
    fit = blocked_kernel_regression(x, y, x_test, arch=arch, kernel="ntk", ridge=1e-6, edge=edge, gram=gram,
                                    report=report)
    end = time.perf_counter()
    starts["training Gram"] = begin
    order = sorted(starts, key=starts.get)  # type: ignore[arg-type]
    seconds = {name: (starts[after] if after else end) - starts[name]
               for name, after in zip(order, [*order[1:], None], strict=True)}
    return {"mean": fit.mean, "seconds": seconds, "total": end - begin, "disk": disk[0]}


def estimates(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, edge: int) -> tuple[float, float, float]:
    """The admission's out-of-core memory and compute, and the in-memory path's memory, for this job."""
    from service.operations.regression import RegressionRequest, in_memory_cost, out_of_core_cost

    request = RegressionRequest.model_validate({"x_train": x, "y_train": y, "x_test": x_test, "architecture": ARCH,
                                                "ridge": 1e-6})
    cost = out_of_core_cost(request, edge)
    return cost.total("memory"), cost.total("compute"), in_memory_cost(request).total("memory")


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    from engine import Architecture, analytic_kernels, kernel_regression

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--edge", type=int, default=2048)
    parser.add_argument("--check-n", type=int, default=3000)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores")
    analytic_kernels(points(600, 1), arch=Architecture.from_dict(ARCH), kernels=("ntk",))  # compile the tiles
    x_test = points(args.m, 99)
    x = points(args.n, 0)
    y = target(x)
    memory, compute, whole = estimates(x, y, x_test, args.edge)
    folder = Path(tempfile.mkdtemp(prefix="bench-exact-"))
    try:
        run = out_of_core(x, y, x_test, args.edge, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"N = {args.n}, m = {args.m}, edge = {args.edge}: {run['total']:.1f} s in all "
          f"(admission's compute estimate {compute:.0f} s)")
    for name, seconds in run["seconds"].items():
        print(f"  {name:14s} {seconds:8.1f} s")
    print(f"peak RSS {peak / 2**20:.0f} MiB; admission's out-of-core estimate {memory / 2**20:.0f} MiB "
          f"(in memory it would be {whole / 2**30:.1f} GiB)")
    print(f"Zarr on disk: {run['disk'] / 2**30:.2f} GiB ({run['disk'] / (8 * args.n**2):.2f} x 8 N^2 bytes)")
    print(f"load average after the large run: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    xc = points(args.check_n, 5)
    yc = target(xc)
    folder = Path(tempfile.mkdtemp(prefix="bench-exact-"))
    try:
        blocked = out_of_core(xc, yc, x_test, args.edge, folder)["mean"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    dense = kernel_regression(xc, yc, x_test, arch=Architecture.from_dict(ARCH), kernel="ntk", ridge=1e-6).mean
    print(f"N = {args.check_n}: in-memory kernel_regression {time.perf_counter() - start:.1f} s; max |out of core - "
          f"in memory| = {np.abs(blocked - dense).max():.3g} (max |mean| {np.abs(dense).max():.3g})")


if __name__ == "__main__":
    main()
