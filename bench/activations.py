"""tanh, softplus and sigmoid on points of different norms (Mehler's series, `engine.mehler`) against
neural-tangents' `ElementwiseNumerical(deg=25)` in the same run, and the depth-1000 tanh spectrum.

    .venv/bin/python bench/activations.py [--n 256] [--depth 5] [--peer /work/nt-venv/bin/python] [--no-spectrum]

Points: N in R^3, directions uniform, norms uniform in [0.5, 2] (seeded). ResNet alpha = 0.1, sigma_w =
sigma_v = 1, both kernels, float64. Times: wall seconds of the kernel call after a first call that compiles
(median and min of 3), the peer's likewise (bench/peer_activations.py, a subprocess). Accuracy: the largest
error over 64 entries (rows 0..7 x columns 0..7 of the Gram, and parallel / antipodal pairs), relative to the
largest entry, against an independent numpy recursion whose T and Tdot are tensor Gauss-Hermite rules in the
pair's Cholesky coordinates (`reference_entries`), itself checked against a finer rule.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import timings  # noqa: E402

ACTIVATIONS = ("tanh", "softplus", "sigmoid")
PHI = {"tanh": np.tanh, "softplus": lambda u: np.logaddexp(u, 0.0), "sigmoid": lambda u: 0.5 * (1 + np.tanh(u / 2))}
DPHI = {"tanh": lambda u: 1 - np.tanh(u) ** 2, "softplus": lambda u: 0.5 * (1 + np.tanh(u / 2)),
        "sigmoid": lambda u: 0.25 * (1 - np.tanh(u / 2) ** 2)}


def points(n: int, d: int = 3, seed: int = 0) -> np.ndarray:
    """n points of R^d with directions uniform and norms uniform in [0.5, 2]; the last two rows are
    2 x row 0 and -0.7 x row 1 (parallel and antipodal pairs of different norms)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x *= rng.uniform(0.5, 2.0, (n, 1)) / np.linalg.norm(x, axis=1, keepdims=True)
    x[-2], x[-1] = 2.0 * x[0], -0.7 * x[1]
    return x


def reference_entries(activation: str, x: np.ndarray, pairs: list[tuple[int, int]], depth: int,
                      alpha: float, nodes: int) -> dict[str, np.ndarray]:
    """NNGP and NTK of the ResNet (sigma_w = sigma_v = 1, no biases) at the given pairs, by the recursions of
    shared/docs/kernels.md in numpy: T and Tdot of a pair by a tensor Gauss-Hermite rule of nodes^2 points in
    the Cholesky coordinates u = a z1, v = b z1 + c z2 (independent of the engine)."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    z1, z2, ww = z[:, None], z[None, :], w[:, None] * w[None, :]
    phi, dphi, c2 = PHI[activation], DPHI[activation], alpha**2

    def dual(f, s11, s12, s22):
        a = np.sqrt(s11)
        b = s12 / a
        c = np.sqrt(max(s22 - b * b, 0.0))
        return float(np.sum(f(a * z1) * f(b * z1 + c * z2) * ww))

    d = x.shape[1]
    out = {"nngp": [], "ntk": []}
    for i, j in pairs:
        k11, k22, k12 = x[i] @ x[i] / d, x[j] @ x[j] / d, x[i] @ x[j] / d
        th = k12
        for _ in range(depth):
            t, tdot = dual(phi, k11, k12, k22), dual(dphi, k11, k12, k22)
            th = th + c2 * (t + tdot * (k12 + th))
            k12 = k12 + c2 * t
            k11, k22 = k11 + c2 * dual(phi, k11, k11, k11), k22 + c2 * dual(phi, k22, k22, k22)
        out["nngp"].append(k12)
        out["ntk"].append(k12 + th)
    return {k: np.array(v) for k, v in out.items()}


def accuracy(activation: str, x: np.ndarray, got: dict[str, np.ndarray], depth: int) -> tuple[float, float]:
    """(max relative error of `got` at the checked pairs, the reference's own change 200^2 -> 280^2 nodes)."""
    n = x.shape[0]
    pairs = [(i, j) for i in range(8) for j in range(8)] + [(0, n - 2), (1, n - 1), (n - 2, n - 2)]
    fine = reference_entries(activation, x, pairs, depth, 0.1, 280)
    coarse = reference_entries(activation, x, pairs, depth, 0.1, 200)
    err = ref = 0.0
    for name in ("nngp", "ntk"):
        values = np.array([got[name][i, j] for i, j in pairs])
        scale = np.max(np.abs(fine[name]))
        err = max(err, float(np.max(np.abs(values - fine[name])) / scale))
        ref = max(ref, float(np.max(np.abs(coarse[name] - fine[name])) / scale))
    return err, ref


def ours(activation: str, x: np.ndarray, depth: int) -> tuple[dict[str, float], dict[str, np.ndarray], str]:
    from engine import Architecture, analytic_kernels, dual_plan

    arch = Architecture("resnet", depth, activation, alpha=0.1)
    q = np.einsum("ij,ij->i", x, x) / x.shape[1]
    path = dict(dual_plan.layer_methods(arch, None, None, float(q.max())))
    first = timings(lambda: analytic_kernels(x, arch=arch), 1)["min_s"]
    stats = timings(lambda: analytic_kernels(x, arch=arch), 3)
    return {"first_call_s": first, **stats}, analytic_kernels(x, arch=arch), str(path)


def spectrum_seconds(depth: int, n_grid: int) -> str:
    from engine import Architecture, circle_spectrum

    lines = []
    for alpha in (0.1, 1.0):
        arch = Architecture("resnet", depth, "tanh", alpha=alpha)
        layers: list[int] = []
        start, cpu = time.perf_counter(), time.process_time()
        circle_spectrum(arch, n_grid, progress=lambda done, total, seen=layers: seen.append(done))
        lines.append(f"tanh ResNet alpha {alpha} depth {depth}, n_grid {n_grid}: {time.perf_counter() - start:.1f} s "
                     f"wall ({time.process_time() - cpu:.1f} CPU s), {len(layers)} progress reports")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--peer", default="/work/nt-venv/bin/python")
    parser.add_argument("--no-spectrum", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    x = points(args.n)
    print(f"N = {args.n}, depth {args.depth}, points of R^3 with norms in [0.5, 2]; wall s median (min) of 3")
    print("| activation | path | ours s | rel. error | peer deg=25 s | peer rel. error | peer / ours |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", x)
        for activation in ACTIVATIONS:
            stats, got, path = ours(activation, x, args.depth)
            err, ref = accuracy(activation, x, got, args.depth)
            row = (f"| {activation} | {path} | {stats['median_s']:.3f} ({stats['min_s']:.3f}) | {err:.1e} "
                   f"(reference {ref:.0e}) |")
            if args.no_peer:
                print(row + " - | - | - |")
                continue
            done = subprocess.run([args.peer, str(HERE / "peer_activations.py"), activation, str(args.depth), "3",
                                   f"{tmp}/x.npy", f"{tmp}/peer.npz"], capture_output=True, text=True, check=True)
            peer = json.loads(done.stdout.strip().splitlines()[-1])
            peer_err, _ = accuracy(activation, x, dict(np.load(f"{tmp}/peer.npz")), args.depth)
            print(row + f" {peer['median_s']:.3f} ({peer['min_s']:.3f}) | {peer_err:.1e} | "
                  f"**{peer['median_s'] / stats['median_s']:.1f}x** |", flush=True)
    if not args.no_spectrum:
        print(spectrum_seconds(1000, 65536))


if __name__ == "__main__":
    main()
