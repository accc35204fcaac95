"""Benchmark: the service's cost over the engine, and cache hits, on loopback.

    python bench/service.py                     # N = 1024, depths 5 and 15
    python bench/service.py --n 1024 --depths 15 --repeats 5

Starts `reskernel serve` (its own Dask LocalCluster, one worker) on a free port with a fresh
data directory. The reference is the engine called directly in a child process of this run,
on the same inputs. Compilation is excluded on both sides (one warm-up request / call on
other points of the same size). A "cold" request is a cache miss: new points each time (the
circle rotated), answered as JSON or as .npz (Accept: application/x-npz). Hits repeat one
request: latency p50 / p99 over sequential requests, and throughput with 8 concurrent clients.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import ALPHA, SIGMA_W, bench_parser, run_child, serve_child  # noqa: E402

NPZ = {"Accept": "application/x-npz"}


def points(n: int, shift: float) -> np.ndarray:
    b = 2 * np.pi * np.arange(n) / n - np.pi + shift
    return np.stack([np.cos(b), np.sin(b)], 1)


def architecture(depth: int) -> dict:
    return {"kind": "resnet", "depth": depth, "alpha": ALPHA, "sigma_w": SIGMA_W}


def engine_child(n: str, depth: str, repeats: str) -> dict:
    from engine import Architecture, analytic_kernels

    arch = Architecture.from_dict(architecture(int(depth)))
    analytic_kernels(points(int(n), 0.5), arch=arch)  # compile
    times = []
    for i in range(int(repeats)):
        x = points(int(n), 0.01 * (i + 1))
        start = time.perf_counter()
        analytic_kernels(x, arch=arch)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "RESKERNEL_DATA_DIR": data_dir, "RESKERNEL_WAIT_S": "300"}
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port),
                                "--log-level", "warning"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("reskernel serve did not become ready")


def timed_post(http: httpx.Client, body: dict, headers: dict | None = None) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = http.post("/v1/kernels", json=body, headers=headers)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.text[:300]
    return elapsed, response


def cold(http: httpx.Client, n: int, depth: int, repeats: int, headers: dict | None, offset: float) -> dict:
    times = []
    for i in range(repeats):
        body = {"x": points(n, 0.01 * (i + 1) + offset).tolist(), "architecture": architecture(depth)}
        elapsed, response = timed_post(http, body, headers)
        assert response.headers["x-cache"] == "miss"
        times.append(elapsed)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def hits(base: str, body: dict, headers: dict | None, count: int, clients: int = 8) -> dict:
    with httpx.Client(base_url=base, timeout=300) as http:
        timed_post(http, body, headers)
        latencies = []
        for _ in range(count):
            elapsed, response = timed_post(http, body, headers)
            assert response.headers["x-cache"] == "hit"
            latencies.append(elapsed)
    latencies.sort()
    per_client = max(count // clients, 1)

    def client():
        with httpx.Client(base_url=base, timeout=300) as http:
            for _ in range(per_client):
                timed_post(http, body, headers)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    throughput = clients * per_client / (time.perf_counter() - start)
    return {"p50_s": latencies[len(latencies) // 2], "p99_s": latencies[min(int(0.99 * len(latencies)),
                                                                           len(latencies) - 1)],
            "per_s": throughput}


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 15])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hits", type=int, default=200)
    args = parser.parse_args()
    if args.child:
        return serve_child(args.child, {"engine": engine_child})

    print(f"# reskernel service benchmark, N = {args.n}, python {sys.version.split()[0]}, {os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        process, base = start_service(data_dir)
        try:
            with httpx.Client(base_url=base, timeout=600) as http:
                for depth in args.depths:
                    engine = run_child(sys.executable, [__file__, "--child", "engine", str(args.n), str(depth),
                                                        str(args.repeats)])
                    timed_post(http, {"x": points(args.n, 0.5).tolist(), "architecture": architecture(depth)})
                    as_json = cold(http, args.n, depth, args.repeats, None, 0.0)
                    as_npz = cold(http, args.n, depth, args.repeats, NPZ, 0.1)
                    big = {"x": points(args.n, 0.01).tolist(), "architecture": architecture(depth)}
                    rows.append((depth, engine, as_json, as_npz, hits(base, big, None, args.hits // 4),
                                 hits(base, big, NPZ, args.hits // 4)))
            small = {"x": points(4, 0.0).tolist(), "architecture": architecture(5)}
            small_hits = hits(base, small, None, args.hits)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)

    print("\n| depth | engine median s (min) | service cold, JSON | overhead | service cold, .npz | overhead |"
          " hit JSON p50 / p99 s | hit .npz p50 / p99 s | hit / cold (npz) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for depth, engine, as_json, as_npz, hit_json, hit_npz in rows:
        e = engine["median_s"]
        print(f"| {depth} | {e:.3f} ({engine['min_s']:.3f}) | {as_json['median_s']:.3f} ({as_json['min_s']:.3f}) | "
              f"{as_json['median_s'] / e - 1:+.0%} | {as_npz['median_s']:.3f} ({as_npz['min_s']:.3f}) | "
              f"{as_npz['median_s'] / e - 1:+.0%} | {hit_json['p50_s']:.4f} / {hit_json['p99_s']:.4f} | "
              f"{hit_npz['p50_s']:.4f} / {hit_npz['p99_s']:.4f} | 1/{as_npz['median_s'] / hit_npz['p50_s']:.0f} |")
    print(f"\nSmall request (4 points) cache hit: p50 {small_hits['p50_s'] * 1e3:.2f} ms, "
          f"p99 {small_hits['p99_s'] * 1e3:.2f} ms, {small_hits['per_s']:.0f} requests/s with 8 clients.")
    for depth, _, _, _, hit_json, hit_npz in rows:
        print(f"N = {args.n} hits, depth {depth}: {hit_json['per_s']:.1f} JSON / s, {hit_npz['per_s']:.1f} .npz / s "
              f"with 8 clients")


if __name__ == "__main__":
    main()
