"""Benchmark: analytic NNGP + NTK of the ReLU ResNet (alpha = 0.1, d = 2, float64) against
neural-tangents, measured side by side in the same run.

    python bench/analytic.py                       # the issue's grid, the peer, N = 20000, the size sweep
    python bench/analytic.py --sizes 1024 --depths 5 --no-big --no-sweep

Each configuration runs in its own process (ours and the peer's) so peak memory is clean:
peak anonymous memory above the level before the timed call, results included. The peer's
venv comes from shared/peers/neural_tangents_venv.sh. Prints a markdown table for RESULTS.md.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import (  # noqa: E402
    ALPHA,
    SIGMA_W,
    bench_parser,
    circle,
    peak_extra_memory,
    peer_python,
    run_child,
    serve_child,
    timings,
)


def ours_child(n: int, depth: int, repeats: int, save: str | None) -> dict:
    import jax

    from engine import Architecture, analytic_kernels

    arch = Architecture("resnet", depth, alpha=ALPHA, sigma_w=SIGMA_W)
    x = circle(n)
    compile_and_run = timings(lambda: analytic_kernels(x, arch=arch), 1)["min_s"]
    result, memory = peak_extra_memory(lambda: analytic_kernels(x, arch=arch))
    stats = timings(lambda: analytic_kernels(x, arch=arch), repeats)
    if save:
        np.savez(save, **result)
    return {"first_call_s": compile_and_run, **stats, "peak_extra_bytes": memory, "jax": jax.__version__}


def big_child(n: int, depth: int, directory: str) -> dict:
    from engine import Architecture, analytic_kernels

    arch = Architecture("resnet", depth, alpha=ALPHA, sigma_w=SIGMA_W)
    out = {k: np.lib.format.open_memmap(f"{directory}/{k}.npy", mode="w+", dtype=np.float64, shape=(n, n))
           for k in ("nngp", "ntk")}
    start = time.perf_counter()
    _, memory = peak_extra_memory(lambda: analytic_kernels(circle(n), arch=arch, out=out))
    for array in out.values():
        array.flush()
    seconds = time.perf_counter() - start
    check = np.load(f"{directory}/ntk.npy", mmap_mode="r")
    return {"seconds": seconds, "peak_extra_anon_bytes": memory, "finite": bool(np.isfinite(check[::997]).all()),
            "file_bytes": sum(os.path.getsize(f"{directory}/{k}.npy") for k in out)}


def sweep_child(depth: int) -> dict:
    from engine import Architecture, analytic_kernels
    from engine import analytic as module

    arch = Architecture("resnet", depth, alpha=ALPHA, sigma_w=SIGMA_W)
    sizes = [int(n) for n in np.unique(np.geomspace(10, 5000, 20).astype(int))]
    start = time.perf_counter()
    for n in sizes:
        analytic_kernels(circle(n), arch=arch)
    return {"sizes": sizes, "tile_compilations": module._tile._cache_size(),
            "diagonal_compilations": module._diagonal._cache_size(), "seconds": time.perf_counter() - start}


def memory_ratio(ours: int, theirs: int) -> str:
    """ours / theirs, or "-" when the peer's peak is under 1 MiB (below what polling resolves)."""
    return f"{ours / theirs:.2f}" if theirs >= 2**20 else "-"


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f}"


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 15])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big", type=int, default=20000, help="N for the to-disk run (0: skip)")
    parser.add_argument("--no-big", dest="big", action="store_const", const=0)
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    if args.child:
        serve_child(args.child, {
            "ours": lambda n, depth, repeats, save=None: ours_child(int(n), int(depth), int(repeats), save),
            "big": lambda n, depth, directory: big_child(int(n), int(depth), directory),
            "sweep": lambda depth: sweep_child(int(depth)),
        })
        return

    me = [sys.executable, str(Path(__file__).resolve())]
    peer = None if args.no_peer else peer_python()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, float64, ReLU ResNet "
          f"alpha={ALPHA}, d=2; peer: {'neural-tangents 0.6.5 (stax.repeat, jit)' if peer else 'not available'}")
    with tempfile.TemporaryDirectory() as tmp:
        if peer:  # check the answers agree before timing anything
            n, depth = args.sizes[0], args.depths[-1]
            run_child(me[0], [*me[1:], "--child", "ours", str(n), str(depth), "1", f"{tmp}/ours.npz"])
            run_child(peer, [str(HERE / "peer_analytic.py"), str(n), str(depth), "repeat", "1", f"{tmp}/peer.npz"])
            a, b = np.load(f"{tmp}/ours.npz"), np.load(f"{tmp}/peer.npz")
            for k in ("nngp", "ntk"):
                err = np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()
                print(f"agreement N={n} L={depth} {k}: max-abs error / max-abs entry = {err:.1e}")
        print("\n| N | L | ours median s (min) | ours peak GiB | peer median s (min) | peer peak GiB "
              "| speed-up | memory ratio |\n|---|---|---|---|---|---|---|---|")
        for n in args.sizes:
            for depth in args.depths:
                ours = run_child(me[0], [*me[1:], "--child", "ours", str(n), str(depth), str(args.repeats)])
                row = (f"| {n} | {depth} | {ours['median_s']:.3f} ({ours['min_s']:.3f}) "
                       f"| {gib(ours['peak_extra_bytes'])} |")
                if peer:
                    theirs = run_child(peer, [str(HERE / "peer_analytic.py"), str(n), str(depth), "repeat",
                                              str(args.repeats)])
                    row += (f" {theirs['median_s']:.3f} ({theirs['min_s']:.3f}) | {gib(theirs['peak_extra_bytes'])} |"
                            f" {theirs['median_s'] / ours['median_s']:.1f}x |"
                            f" {memory_ratio(ours['peak_extra_bytes'], theirs['peak_extra_bytes'])} |")
                else:
                    row += " - | - | - | - |"
                print(row, flush=True)
        if args.big:
            big = run_child(me[0], [*me[1:], "--child", "big", str(args.big), "15", tmp])
            print(f"\nN={args.big}, L=15, both kernels into .npy memory maps: {big['seconds']:.1f} s, "
                  f"peak anonymous memory {gib(big['peak_extra_anon_bytes'])} GiB above start, "
                  f"{gib(big['file_bytes'])} GiB on disk, finite: {big['finite']}")
    if not args.no_sweep:
        sweep = run_child(me[0], [*me[1:], "--child", "sweep", "15"])
        print(f"\n{len(sweep['sizes'])} sizes from {sweep['sizes'][0]} to {sweep['sizes'][-1]} (L=15): "
              f"{sweep['tile_compilations']} tile compilations, {sweep['diagonal_compilations']} diagonal "
              f"compilations, {sweep['seconds']:.1f} s in all")


if __name__ == "__main__":
    main()
