"""The prepared GPU benchmark: one Gram matrix, its tiles spread over every local JAX device.

    PYTHONPATH=$PWD .venv/bin/python -m bench.gpu [--n 50000] [--depth 15] [--float32] [--host-floor]
        [--kernels nngp ntk] [--tile 512] [--out auto|memory|memmap] [--check-rows 2048]

The prepared command for a GPU machine (both runs in a few minutes):

    .venv/bin/python -m bench.gpu --host-floor && .venv/bin/python -m bench.gpu --float32 --host-floor

N points uniform on S^9 (d = 10), ReLU ResNet of `depth`, alpha 0.1, NNGP and NTK, symmetric
(`engine.analytic_kernels`: the upper triangle's tiles, mirrored; the diagonal from the diagonal
recursion), tiles dealt round-robin over `jax.local_devices()` (engine.tiling). Printed, then as one
JSON line:

- the devices (platform, kind) and where the result is written: host memory, or `.npy` memory maps in
  a temporary directory (`--out auto`: memory when the result takes under half the available RAM; at
  N = 50000 one float64 kernel is 20 GB, both 40 GB);
- compile_s: the first tile on each device and the diagonal (XLA compilation), apart from run_s, the
  whole matrix once compiled; entries per second;
- with --float32: the float32 matrix's max abs error and max relative error against float64, on the
  first --check-rows rows (computed again in float64; relative: |K32 - K64| / |K64| over all those
  entries, large near K's zeros, then over those with |K64| >= 1e-2 max |K64|; and max abs / max |K64|);
- with --host-floor: the host's share alone, host_floor_s: the same tiles' bytes written into fresh
  output arrays the same way (mirrored; by every thread when the tiles come from a GPU, else by the
  calling thread: `engine.tiling.fill_tiles`), with no device work. run_s near
  host_floor_s: the host's copies bound the run, not the device.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.scale import points

ALPHA = 0.1


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (bytes)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


@contextmanager
def outputs(kernels: tuple[str, ...], n: int, dtype: np.dtype,
            where: str) -> Iterator[tuple[dict[str, np.ndarray], str]]:
    """Fresh (n, n) output arrays of each kernel, and a line saying where they live (memmaps: removed after)."""
    if where == "memory":
        yield {k: np.empty((n, n), dtype) for k in kernels}, "host memory (numpy arrays)"
        return
    with tempfile.TemporaryDirectory(prefix="reskernel-gpu-") as folder:
        arrays = {k: np.lib.format.open_memmap(f"{folder}/{k}.npy", mode="w+", dtype=dtype, shape=(n, n))
                  for k in kernels}
        yield arrays, f".npy memory maps in {folder} (removed after)"
        for array in arrays.values():
            array.flush()
        del arrays


def host_floor(plan: Any, out: dict[str, np.ndarray], workers: int) -> float:
    """Seconds to write the plan's tiles into `out` with no device work: each tile a ready host array,
    mirrored and written as `analytic_kernels` writes them, then the diagonal overwritten."""
    from engine.tiling import fill_tiles, off_host, spread_over

    ready = {k: np.ones((plan.b1, plan.b2), plan.dtype) for k in plan.kernels}

    def compute(block: tuple[int, int], device: object) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
        i, j = block
        ni, nj = min(plan.b1, plan.shape[0] - i), min(plan.b2, plan.shape[1] - j)
        return block, {k: v[:ni, :nj] for k, v in ready.items()}

    start = time.perf_counter()
    fill_tiles(plan.blocks(), compute, out, symmetric=True, workers=workers,
               threaded_writes=off_host(spread_over(None)))  # written as the run writes them
    idx = np.arange(plan.shape[0])
    for values in out.values():
        values[idx, idx] = 1.0
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    import jax

    from engine import Architecture, GramPlan, analytic_kernels
    from engine import analytic as engine_analytic
    from engine.tiling import spread_over, tile_devices

    if args.tile is not None:
        if args.tile < 16 or args.tile & (args.tile - 1):
            raise SystemExit("--tile must be a power of two >= 16")
        engine_analytic.TILE = args.tile  # the tiles' edge for this process (the engine's default: 512)
    dtype = np.dtype("float32" if args.float32 else "float64")
    kernels = tuple(args.kernels)
    devices = tile_devices()
    workers = args.workers or os.cpu_count() or 1
    x = points(args.n)
    arch = Architecture("resnet", args.depth, alpha=ALPHA)
    plan = GramPlan.of(x, arch=arch, kernels=kernels, dtype=str(dtype))
    n = args.n
    result_bytes = len(kernels) * n * n * dtype.itemsize
    where = args.out if args.out != "auto" else "memory" if result_bytes < available_bytes() / 2 else "memmap"
    report: dict[str, Any] = {
        "n": n, "depth": args.depth, "alpha": ALPHA, "kernels": list(kernels), "dtype": str(dtype),
        "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in devices], "workers": workers,
        "tile": [plan.b1, plan.b2], "tiles": len(plan.blocks()), "method": plan.method, "jax": jax.__version__,
        "result_gb": result_bytes / 1e9,
    }
    print(f"devices: {', '.join(report['devices'])}; {workers} threads; N = {n}, depth {args.depth}, "
          f"{'/'.join(kernels)}, {dtype}; tiles {plan.b1} x {plan.b2}, {report['tiles']} of them")

    start = time.perf_counter()  # compilation: one tile on each device, and the diagonal
    for device in spread_over(None):
        plan.compute((0, 0), device)
    plan.diagonal()
    report["compile_s"] = time.perf_counter() - start
    start = time.perf_counter()
    plan.compute((0, 0), spread_over(None)[0])
    report["one_tile_s"] = time.perf_counter() - start

    with outputs(kernels, n, dtype, where) as (out, place):
        report["result_in"] = place
        start = time.perf_counter()
        analytic_kernels(x, arch=arch, kernels=kernels, dtype=str(dtype), out=out, workers=workers)
        report["run_s"] = time.perf_counter() - start
        report["entries_per_s"] = n * n / report["run_s"]
        print(f"result in {place}, {result_bytes / 1e9:.2f} GB; compile {report['compile_s']:.2f} s "
              f"(one tile after: {report['one_tile_s'] * 1e3:.1f} ms); run {report['run_s']:.2f} s "
              f"({report['entries_per_s'] / 1e6:.0f} M entries/s)")
        if args.float32:
            rows = min(args.check_rows, n)
            start = time.perf_counter()
            exact = analytic_kernels(x[:rows], x, arch=arch, kernels=kernels, dtype="float64", workers=workers)
            report["check_s"] = time.perf_counter() - start
            for k in kernels:
                diff = np.abs(out[k][:rows].astype(np.float64) - exact[k])
                scale = np.abs(exact[k])
                report[f"{k}_max_abs_error"] = float(diff.max())
                report[f"{k}_max_rel_error"] = float(np.max(diff[scale > 0] / scale[scale > 0]))
                report[f"{k}_max_abs_over_max"] = float(diff.max() / scale.max())
                large = scale >= 1e-2 * scale.max()  # away from K's zeros, where |K32 - K64| / |K64| blows up
                report[f"{k}_max_rel_error_large"] = float(np.max(diff[large] / scale[large]))
                print(f"float32 {k} against float64 (first {rows} rows x {n}): max abs error "
                      f"{report[f'{k}_max_abs_error']:.2e}, max relative {report[f'{k}_max_rel_error']:.2e} "
                      f"({report[f'{k}_max_rel_error_large']:.2e} where |K| >= 1e-2 max |K|), "
                      f"max abs / max |K| {report[f'{k}_max_abs_over_max']:.2e}")
    del out  # its memory goes back before the floor's fresh arrays are taken
    if args.host_floor:
        with outputs(kernels, n, dtype, where) as (fresh, _):
            report["host_floor_s"] = host_floor(plan, fresh, workers)
        print(f"host floor (the same bytes written, no device work): {report['host_floor_s']:.2f} s "
              f"= {report['host_floor_s'] / report['run_s']:.0%} of the run")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--depth", type=int, default=15)
    parser.add_argument("--float32", action="store_true", help="float32, with its error against float64")
    parser.add_argument("--host-floor", action="store_true", help="also time the host's writes of the same bytes")
    parser.add_argument("--kernels", nargs="+", default=["nngp", "ntk"], choices=["nngp", "ntk"])
    parser.add_argument("--tile", type=int, default=None, help="tile edge, a power of two (engine default 512)")
    parser.add_argument("--out", choices=["auto", "memory", "memmap"], default="auto")
    parser.add_argument("--check-rows", type=int, default=2048, help="rows checked in float64 (--float32)")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    report = run(parser.parse_args())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
