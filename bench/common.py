"""Helpers shared by the benchmark scripts: timing, peak memory, the peer's venv."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# The benchmarked network: ReLU ResNet, alpha = 0.1, sigma_w = sigma_v = 1, on the circle.
ALPHA, SIGMA_W = 0.1, 1.0


def circle(n: int) -> np.ndarray:
    """(n, 2) equispaced points on the unit circle (shared by ours and the peer's scripts)."""
    b = 2 * np.pi * np.arange(n) / n - np.pi + 0.1234
    return np.stack([np.cos(b), np.sin(b)], 1)


PEER_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "peers" / "neural_tangents_venv.sh"


def anon_rss_bytes() -> int:
    """Anonymous resident memory of this process (file-backed pages, e.g. memmaps, excluded)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("RssAnon not found in /proc/self/status")


def peak_extra_memory(fn: Callable[[], object], interval: float = 0.002) -> tuple[object, int]:
    """Run fn; return (its result, peak anonymous memory above the level before the call)."""
    base, peak, done = anon_rss_bytes(), [0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], anon_rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], anon_rss_bytes())
    return result, max(peak[0] - base, 0)


def timings(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median and minimum wall time of fn over `repeats` calls (fn must block until done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def peer_python() -> str | None:
    """The neural-tangents venv's python (built once by shared/peers), or None if unavailable."""
    if not PEER_SCRIPT.exists():
        return None
    try:
        out = subprocess.run(["bash", str(PEER_SCRIPT)], check=True, capture_output=True, text=True, timeout=1800)
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.strip().splitlines()[-1]


def run_child(python: str, args: list[str]) -> dict:
    """Run a benchmark child process; its last stdout line is a JSON object of figures."""
    out = subprocess.run([python, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark script has: --no-peer, and the hidden --child."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-peer", action="store_true", help="skip neural-tangents")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser


def serve_child(child: list[str], children: dict[str, Callable[..., dict]]) -> None:
    """Run one measurement in this (child) process, `--child NAME ARGS...`; print it as JSON."""
    name, *args = child
    print(json.dumps(children[name](*args)))
