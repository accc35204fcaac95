"""Benchmark: analytic NNGP + NTK of a ReLU convolutional ResNet (pool readout, float64) against
neural-tangents, measured side by side in the same run.

    python bench/conv.py                     # N = 128 images 8x8x1, depth 5, 3x3 filters (issue 22)
    python bench/conv.py --n 32 --no-peer

Ours and the peer each run in their own process (clean peak memory: anonymous memory above the
level before the timed calls). Compilation is timed apart: the first call's time less a steady
call's. A second architecture (new alpha and depth) then runs in our process, and the number of
compiled tiles before and after it is reported (equal: no recompilation). The answers are
checked against each other before the times are printed. Prints a markdown table for RESULTS.md.
"""

from __future__ import annotations

import json
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

from common import bench_parser, peak_extra_memory, peer_python, run_child, serve_child  # noqa: E402

SPEC = {"kind": "conv-resnet", "activation": "relu", "sigma_w": 1.0, "sigma_v": 1.0, "alpha": 0.5, "sigma_b": 0.0,
        "filter_size": [3, 3], "readout": "pool"}
NT_VENV = Path("/work/nt-venv/bin/python")


def images(n: int, shape: tuple[int, ...]) -> np.ndarray:
    """The benchmark's inputs (bench/peer_conv.py rebuilds them from the same formula)."""
    return np.random.default_rng(0).standard_normal((n, *shape))


def ours_child(spec_json: str, n: str, repeats: str, save: str) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    from engine.conv import recursion
    from engine.conv.analytic import conv_kernels
    from engine.conv.architecture import ConvArchitecture

    spec = json.loads(spec_json)
    x = images(int(n), tuple(spec.pop("input_shape")))
    arch = ConvArchitecture.from_dict(spec)
    start = time.perf_counter()
    conv_kernels(x, arch=arch)
    first = time.perf_counter() - start
    times: list[float] = []

    def timed() -> dict[str, np.ndarray]:
        for _ in range(int(repeats)):
            start = time.perf_counter()
            result = conv_kernels(x, arch=arch)  # returns numpy arrays: every tile is done
            times.append(time.perf_counter() - start)
        return result

    result, memory = peak_extra_memory(timed)
    np.savez(save, **result)
    compiled = recursion.tile._cache_size()
    other = arch.replace(alpha=0.3, depth=arch.depth + 2)
    start = time.perf_counter()
    conv_kernels(x, arch=other)
    other_s = time.perf_counter() - start
    return {"first_call_s": first, "median_s": float(np.median(times)), "min_s": min(times),
            "peak_extra_bytes": memory, "compiled_before": compiled, "compiled_after": recursion.tile._cache_size(),
            "other_arch_s": other_s, "other_arch": f"alpha {other.alpha}, depth {other.depth}",
            "jax": jax.__version__, "workers": os.cpu_count()}


def main() -> None:
    parser = bench_parser(__doc__ or "")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--shape", type=int, nargs="+", default=[8, 8, 1], help="H W C (or P C)")
    parser.add_argument("--repeats", type=int, default=3, help="our timed calls")
    parser.add_argument("--peer-repeats", type=int, default=1, help="the peer's timed calls (each ~1-3 min)")
    args = parser.parse_args()
    if args.child:
        serve_child(args.child, {"ours": ours_child})
        return
    spec = {**SPEC, "depth": args.depth, "input_shape": args.shape}
    if len(args.shape) == 2:
        spec["filter_size"] = [3]
    tmp = Path(tempfile.mkdtemp())
    env_note = f"load average {os.getloadavg()[0]:.1f} at the start"
    ours = run_child(sys.executable, [__file__, "--child", "ours", json.dumps(spec), str(args.n), str(args.repeats),
                                      str(tmp / "ours.npz")])
    print("ours", json.dumps(ours), flush=True)
    peer = None
    if not args.no_peer:
        python = str(NT_VENV) if NT_VENV.exists() else peer_python()
        if python is not None:
            peer = run_child(python, [str(HERE / "peer_conv.py"), json.dumps(spec), str(args.n),
                                      str(args.peer_repeats), str(tmp / "peer.npz")])
            print("peer", json.dumps(peer), flush=True)
            a, b = np.load(tmp / "ours.npz"), np.load(tmp / "peer.npz")
            for name in ("nngp", "ntk"):
                err = float(np.max(np.abs(a[name] - b[name])) / np.max(np.abs(b[name])))
                print(f"{name}: max relative difference ours vs peer {err:.2e}")
                assert err < 1e-8, f"ours and the peer disagree on {name}: {err:.2e}"
    mib = 2**20
    shape = "x".join(map(str, args.shape))
    print(f"\n{platform.machine()}, {os.cpu_count()} cores, float64, CPU, jax {ours['jax']}; {env_note}")
    print("| N | input | depth | ours s (median / min) | ours compile s | ours peak MiB | NT s (median / min) | "
          "NT compile s | NT peak MiB | NT / ours | new alpha, depth: s, compiled tiles before -> after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    nt = ("-",) * 4 if peer is None else (
        f"{peer['median_s']:.1f} / {peer['min_s']:.1f}", f"{peer['first_call_s'] - peer['median_s']:.1f}",
        f"{peer['peak_extra_bytes'] / mib:.0f}", f"**{peer['median_s'] / ours['median_s']:.1f}x**")
    print(f"| {args.n} | {shape} | {args.depth} | {ours['median_s']:.2f} / {ours['min_s']:.2f} | "
          f"{ours['first_call_s'] - ours['median_s']:.1f} | {ours['peak_extra_bytes'] / mib:.0f} | {nt[0]} | {nt[1]} | "
          f"{nt[2]} | {nt[3]} | {ours['other_arch']}: {ours['other_arch_s']:.2f} s, {ours['compiled_before']} -> "
          f"{ours['compiled_after']} |")


if __name__ == "__main__":
    main()
