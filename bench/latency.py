"""Benchmark: interactive latency, the issue's "Performance" list, beside neural-tangents.

    python bench/latency.py                      # everything, the peer included
    python bench/latency.py --only engine http   # some sections (engine, http, activations, small,
                                                 # train, restart, reproduce)

Each measurement runs in its own process (fresh compilation state, no persistent cache unless
the section is about it). Float64, ReLU ResNet alpha = 0.1, sigma_w = sigma_v = 1, d = 2, the
benchmark's points on the unit circle (bench/common.py), both kernels, unless said otherwise.
Medians (and minima) over repeats; timings on a shared machine are noisy.
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import ALPHA, bench_parser, circle, peer_python, run_child, serve_child, timings  # noqa: E402


def start_service(data_dir: str):
    """bench/service.py's `start_service` (that file's name hides behind the `service` package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_service", HERE / "service.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.start_service(data_dir)


BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"  # one event per XLA compilation
SECTIONS = ("engine", "http", "activations", "small", "train", "restart", "reproduce")


def stats(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times)}


# ---- children: our side -------------------------------------------------------------------

def engine_child(n: str, depth: str, calls: str) -> dict:
    """A new alpha on every call, against one architecture called again and again."""
    from engine import Architecture, analytic_kernels

    x, depth, calls = circle(int(n)), int(depth), int(calls)
    arch = Architecture("resnet", depth, alpha=ALPHA)
    first = timings(lambda: analytic_kernels(x, arch=arch), 1)["min_s"]
    repeated = timings(lambda: analytic_kernels(x, arch=arch), calls)
    fresh = []
    for i in range(calls):
        other = arch.replace(alpha=0.2 + 0.013 * i)
        start = time.perf_counter()
        analytic_kernels(x, arch=other)
        fresh.append(time.perf_counter() - start)
    return {"first_call_s": first, "repeated": repeated, "new_alpha": stats(fresh)}


def activation_child(activation: str, n: str, depth: str, repeats: str, save: str = "") -> dict:
    from engine import Architecture, analytic_kernels

    x = circle(int(n))
    arch = Architecture("resnet", int(depth), activation=activation, alpha=ALPHA)
    first = timings(lambda: analytic_kernels(x, arch=arch), 1)["min_s"]
    out = timings(lambda: analytic_kernels(x, arch=arch), int(repeats))
    if save:
        np.savez(save, **analytic_kernels(x, arch=arch))
    return {"first_call_s": first, **out}


def train_child(width: str) -> dict:
    """Second and later runs change lr, steps, seed or alpha: their time, and the first step's."""
    import jax

    from engine import Architecture, circle_points, paper_target, paper_train_angles, train

    compiled = [0]
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiled.__setitem__(0, compiled[0] + (event == BACKEND_COMPILE)))
    b = paper_train_angles(50)
    x, y, width = circle_points(b), paper_target(b), int(width)
    arch = Architecture("resnet", 5, alpha=ALPHA)
    run = {"width": width, "n_init": 2, "record_every": 10}
    start = time.perf_counter()
    train(arch, x, y, lr=0.03, steps=100, seed=0, **run)
    first = time.perf_counter() - start
    changes = [dict(lr=0.02, steps=100, seed=0, arch=arch), dict(lr=0.02, steps=250, seed=0, arch=arch),
               dict(lr=0.02, steps=250, seed=7, arch=arch),
               dict(lr=0.02, steps=250, seed=7, arch=arch.replace(alpha=0.5))]
    later, before = [], compiled[0]
    for change in changes:
        start = time.perf_counter()
        train(change.pop("arch"), x, y, **change, **run)
        later.append(time.perf_counter() - start)
    step = []
    for i in range(5):  # one step, new lr each time: the fixed latency of a train call
        start = time.perf_counter()
        train(arch.replace(alpha=0.05 * (i + 1)), x, y, lr=0.01 + 0.001 * i, steps=1, seed=i, **run)
        step.append(time.perf_counter() - start)
    return {"first_s": first, "later_s": later, "one_step": stats(step), "compiled_first": before,
            "compiled_later": compiled[0] - before}


def reference_row(activation: str, n: int, depth: int, alpha: float, nodes: int) -> dict:
    """Row 0 of the NNGP and NTK on the benchmark's circle points (the Gram matrix is circulant,
    so the row is all of it), by the recursions of shared/docs/kernels.md in numpy, each T and
    Tdot by a tensor Gauss-Hermite rule of nodes^2 points in the Cholesky coordinates of the pair
    (u = sqrt(S) z1, v = sqrt(S) (rho z1 + sqrt(1 - rho^2) z2)). Independent of the engine's code."""
    phi = {"tanh": np.tanh, "softplus": lambda u: np.logaddexp(u, 0.0), "sigmoid": lambda u: 0.5 * (1 + np.tanh(u / 2))}
    dphi = {"tanh": lambda u: 1 - np.tanh(u) ** 2, "softplus": lambda u: 0.5 * (1 + np.tanh(u / 2)),
            "sigmoid": lambda u: 0.25 * (1 - np.tanh(u / 2) ** 2)}
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    z1, z2, ww = z[:, None], z[None, :], w[:, None] * w[None, :]

    def dual(f, s, rho):  # rho (m,) -> (m,), both variances s
        r = rho[:, None, None]
        u = np.sqrt(s) * z1
        v = np.sqrt(s) * (r * z1 + np.sqrt(np.maximum(1 - r * r, 0.0)) * z2)
        return np.sum(f(u)[None] * f(v) * ww, axis=(1, 2))

    x = circle(n)
    rho0 = np.clip(x @ x[0], -1.0, 1.0)
    k, th, kd = 0.5 * rho0, 0.5 * rho0, 0.5  # q = x.x'/d with |x| = 1, d = 2
    c = alpha**2
    for _ in range(depth):
        s, sd = k, kd  # sigma_w = 1, no biases
        t, tdot = dual(phi[activation], sd, s / sd), dual(dphi[activation], sd, s / sd)
        th = th + c * (t + tdot * (s + th))
        k = k + c * t
        kd = kd + c * dual(phi[activation], sd, np.ones(1))[0]
    return {"nngp": k, "ntk": k + th}


# ---- sections ------------------------------------------------------------------------------

def section_engine(me, peer, out) -> None:
    ours = run_child(me[0], [*me[1:], "--child", "engine", "64", "5", "20"])
    line = (f"Engine, N = 64, depth 5 (`analytic_kernels`): first call {ours['first_call_s']:.2f} s (compilation); "
            f"a repeated call median {ours['repeated']['median_s'] * 1e3:.2f} ms (min "
            f"{ours['repeated']['min_s'] * 1e3:.2f}); a new alpha on every call median "
            f"{ours['new_alpha']['median_s'] * 1e3:.2f} ms (min {ours['new_alpha']['min_s'] * 1e3:.2f}), "
            f"{ours['new_alpha']['median_s'] / ours['repeated']['median_s']:.2f}x the repeated call.")
    if peer:
        theirs = run_child(peer, [str(HERE / "peer_latency.py"), "alphas", "64", "5", "0.2", "0.3", "0.4", "0.5",
                                  "0.6"])["seconds"]
        line += (f" neural-tangents, a new alpha per call (new jitted kernel_fn): median "
                 f"{statistics.median(theirs):.2f} s "
                 f"(min {min(theirs):.2f}): **{statistics.median(theirs) / ours['new_alpha']['median_s']:.0f}x** ours.")
    out.append(line)


def section_small(me, peer, out) -> None:
    ours = run_child(me[0], [*me[1:], "--child", "activation", "relu", "128", "5", "200"])
    line = (f"N = 128, depth 5, repeated calls: ours median {ours['median_s'] * 1e3:.2f} ms "
            f"(min {ours['min_s'] * 1e3:.2f})")
    if peer:
        theirs = run_child(peer, [str(HERE / "peer_analytic.py"), "128", "5", "repeat", "200"])
        line += (f", neural-tangents jitted (stax.repeat) median {theirs['median_s'] * 1e3:.2f} ms "
                 f"(min {theirs['min_s'] * 1e3:.2f}): ours **{theirs['median_s'] / ours['median_s']:.2f}x** its speed")
    out.append(line + ".")


def section_activations(me, peer, out, tmp: str) -> None:
    relu = run_child(me[0], [*me[1:], "--child", "activation", "relu", "1024", "5", "5"])
    gelu = run_child(me[0], [*me[1:], "--child", "activation", "gelu", "1024", "5", "5"])
    out.append(f"N = 1024, depth 5: ReLU median {relu['median_s']:.3f} s (min {relu['min_s']:.3f}), gelu (closed form) "
               f"median {gelu['median_s']:.3f} s (min {gelu['min_s']:.3f}): gelu / ReLU = "
               f"**{gelu['median_s'] / relu['median_s']:.2f}**.")
    rows = ["| activation | ours median s (min) | ours first call s | rel. error | peer deg=25 median s (min) "
            "| peer rel. error | speed-up |", "|---|---|---|---|---|---|---|"]
    checks = []
    for activation in ("tanh", "softplus", "sigmoid"):
        ours = run_child(me[0], [*me[1:], "--child", "activation", activation, "256", "5", "3",
                                 f"{tmp}/{activation}.npz"])
        fine = reference_row(activation, 256, 5, ALPHA, 200)
        finer = reference_row(activation, 256, 5, ALPHA, 280)
        checks.append(max(np.max(np.abs(fine[k] - finer[k])) / np.max(np.abs(finer[k])) for k in fine))
        got = np.load(f"{tmp}/{activation}.npz")
        err = max(np.max(np.abs(got[k][0] - finer[k])) / np.max(np.abs(finer[k])) for k in finer)
        row = (f"| {activation} | {ours['median_s']:.3f} ({ours['min_s']:.3f}) | {ours['first_call_s']:.1f} "
               f"| {err:.1e} |")
        if peer:
            theirs = run_child(peer, [str(HERE / "peer_latency.py"), "numerical", activation, "256", "5", "2",
                                      f"{tmp}/peer-{activation}.npz"])
            peer_got = np.load(f"{tmp}/peer-{activation}.npz")
            peer_err = max(np.max(np.abs(peer_got[k][0] - finer[k])) / np.max(np.abs(finer[k])) for k in finer)
            row += (f" {theirs['median_s']:.2f} ({theirs['min_s']:.2f}) | {peer_err:.1e} | "
                    f"**{theirs['median_s'] / ours['median_s']:.0f}x** |")
        else:
            row += " - | - | - |"
        rows.append(row)
    out.append("Activations by quadrature, N = 256, depth 5 (relative error = max-abs error / max-abs entry of "
               "the first row, both kernels, against a numpy Gauss-Hermite recursion with 280^2 nodes per entry; "
               f"its own change from 200^2 nodes: {max(checks):.1e}):\n\n" + "\n".join(rows))


def section_train(me, out) -> None:
    ours = run_child(me[0], [*me[1:], "--child", "train", "256"])
    later = ", ".join(f"{t:.2f}" for t in ours["later_s"])
    out.append(f"`train`, width 256, 50 points, 2 networks, record every 10 steps: first run (100 steps) "
               f"{ours['first_s']:.2f} s with compilation; then new lr (100 steps), new steps (250), new seed, new "
               f"alpha: {later} s, XLA compilations: {ours['compiled_first']} in the first run, "
               f"{ours['compiled_later']} in all later ones; one step with a new alpha, lr and seed each time "
               f"(the fixed latency of a call): median {ours['one_step']['median_s']:.3f} s "
               f"(min {ours['one_step']['min_s']:.3f}).")


def _smoothness_body(alphas) -> dict:
    return {"architectures": [{"kind": "resnet", "depth": 5, "alpha": float(a)} for a in alphas], "n_train": 6,
            "n_grid": 4096}


def section_http(out) -> None:
    import httpx

    with tempfile.TemporaryDirectory() as data_dir:
        start = time.perf_counter()
        process, base = start_service(data_dir)
        ready = time.perf_counter() - start
        try:
            with httpx.Client(base_url=base, timeout=600) as http:
                first = _post(http, "/v1/smoothness", _smoothness_body([0.123]))
                times = [_post(http, "/v1/smoothness", _smoothness_body([0.2 + 0.0137 * i])) for i in range(15)]
                sweeps = [_post(http, "/v1/smoothness", _smoothness_body(np.linspace(0.01, 1.0, 50) + 1e-4 * (i + 1)))
                          for i in range(7)]
                kernels = [_post(http, "/v1/kernels", {"x": circle(3).tolist(), "architecture": {
                    "kind": "resnet", "depth": 5 + i, "alpha": 0.05 * (i + 1)}}) for i in range(10)]
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    out.append(f"HTTP (`reskernel serve`, one local worker, warm-up on; ready after {ready:.1f} s): the first "
               f"`/v1/smoothness` after start {first:.2f} s; one architecture never seen before (6 samples, "
               f"4096-point grid), 15 requests: median **{statistics.median(times):.3f} s** (min {min(times):.3f}); "
               f"a 50-alpha sweep in one request (50 new architectures each time, JSON answer of 4.1 MB), 7 "
               f"requests: median **{statistics.median(sweeps):.2f} s** (min {min(sweeps):.2f}, max "
               f"{max(sweeps):.2f}); `/v1/kernels`, 3 points, a new depth and "
               f"alpha each time: median {statistics.median(kernels):.3f} s.")


def _post(http, path: str, body: dict) -> float:
    start = time.perf_counter()
    response = http.post(path, json=body)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200 and response.headers["x-cache"] == "miss", response.text[:300]
    return elapsed


def section_restart(out) -> None:
    """Start, run requests, wait for the warm-up, stop; start again on the same data directory and
    run requests of the same kinds with new numbers: the JAX cache gains no file."""
    import httpx

    with tempfile.TemporaryDirectory() as data_dir:
        cache = Path(data_dir) / "jax-cache"
        seen = []
        for run in range(2):
            process, base = start_service(data_dir)
            try:
                before = len(list(cache.glob("*"))) if cache.exists() else 0
                with httpx.Client(base_url=base, timeout=600) as http:
                    first = _post(http, "/v1/smoothness", _smoothness_body([0.3 + run]))
                    _post(http, "/v1/kernels", {"x": circle(40).tolist(), "architecture": {
                        "kind": "mlp", "depth": 3 + run, "activation": "tanh"}})
                    if run == 0:  # let the warm-up finish writing
                        stable, count = 0, -1
                        while stable < 3:
                            time.sleep(2)
                            now = len(list(cache.glob("*")))
                            stable, count = (stable + 1, now) if now == count else (0, now)
                after = len(list(cache.glob("*")))
                seen.append((first, before, after))
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(60)
    (first0, _, files0), (first1, before1, after1) = seen
    out.append(f"Worker restart: first run wrote {files0} compiled functions to `DATA_DIR/jax-cache` (first "
               f"`/v1/smoothness` {first0:.2f} s); after a restart on the same data directory, requests of the same "
               f"kinds with new depth and alpha: first `/v1/smoothness` {first1:.2f} s, cache files {before1} -> "
               f"{after1} (**{after1 - before1} new compilations**).")


ORIGINAL_EIGHT = ["kernel-shapes", "interpolation", "finite-vs-infinite", "beyond-ntk", "bounds", "spectra", "digits",
                  "rkhs-vs-curvature"]  # the "all eight" (lowest-loss and scalar-angle came later)


def _reproduce(names: list[str], env: dict, out: str) -> tuple[float, float, int, float]:
    """`reskernel reproduce NAMES` in a child: wall s, CPU s (user + system of it and its workers),
    exit code, and the 1-minute load average when it started."""
    load = os.getloadavg()[0]
    before = os.times()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "service.cli", "reproduce", "--out", out, *names], env=env,
                          check=False, capture_output=True, cwd=HERE.parent)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, done.returncode, load


def section_reproduce(out) -> None:
    """All ten experiments, and the original eight, each with an empty compilation cache (a fresh
    XDG_CACHE_HOME) and then run again on the cache the first run filled."""
    rows = []
    for label, names in (("all ten", []), ("the original eight", ORIGINAL_EIGHT)):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "XDG_CACHE_HOME": f"{tmp}/cache"}
            cold = _reproduce(names, env, f"{tmp}/cold")
            warm = _reproduce(names, env, f"{tmp}/warm")
        rows.append(f"{label}: **{cold[0]:.0f} s** with an empty compilation cache ({cold[1]:.0f} CPU s, load "
                    f"average {cold[3]:.1f} at the start), **{warm[0]:.0f} s** run again on the cache the first "
                    f"filled ({warm[1]:.0f} CPU s, load {warm[3]:.1f}); exit codes {cold[2]}, {warm[2]}")
    out.append("`reskernel reproduce` (quick, 2 experiments at once, `--jobs 2`): " + "; ".join(rows) + ".")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args()
    if args.child:
        serve_child(args.child, {"engine": engine_child, "activation": activation_child, "train": train_child})
        return
    me = [sys.executable, str(Path(__file__).resolve())]
    peer = None if args.no_peer else peer_python()
    import jax

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.default_backend()}), float64; peer: {'neural-tangents 0.6.5 on jax 0.4.23' if peer else 'none'}")
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for section in args.only:
            printed = len(out)
            if section == "engine":
                section_engine(me, peer, out)
            elif section == "small":
                section_small(me, peer, out)
            elif section == "activations":
                section_activations(me, peer, out, tmp)
            elif section == "train":
                section_train(me, out)
            elif section == "http":
                section_http(out)
            elif section == "restart":
                section_restart(out)
            else:
                section_reproduce(out)
            for line in out[printed:]:
                print("\n- " + line, flush=True)


if __name__ == "__main__":
    main()
