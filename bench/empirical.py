"""Benchmark: the empirical NTK of a finite ResNet against neural-tangents' empirical_ntk_fn
(its three implementations), and training throughput against a minimal hand-written GD loop.

    python bench/empirical.py                     # N in {64, 256}, training width 2000 x 30 inits
    python bench/empirical.py --train-width 500 --train-inits 4

Network: ReLU ResNet, width 512, depth 5, alpha 0.1, d = 2, float64, scalar output, the same
weights in both libraries. Each measurement runs in its own process (peak memory: anonymous
memory above the level before the call). Prints markdown for RESULTS.md.
"""

from __future__ import annotations

import os
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

WIDTH, DEPTH = 512, 5
IMPLEMENTATIONS = {1: "Jacobian contraction", 2: "NTK-vector products", 3: "structured derivatives"}


def _arch():
    from engine import Architecture

    return Architecture("resnet", DEPTH, alpha=ALPHA, sigma_w=SIGMA_W)


def ours_child(n: int, repeats: int, weights: str, save: str | None) -> dict:
    from engine.empirical import empirical_ntk
    from engine.networks import init_params

    arch = _arch()
    params = init_params(arch, WIDTH, 2, seed=0)
    leaves = [params["U"].T] + [m for layer in range(DEPTH) for m in (params["W"][layer].T, params["V"][layer].T)]
    np.savez(weights, *[np.asarray(a) for a in [*leaves, params["w"][:, None]]])
    x = circle(n)
    compile_and_run = timings(lambda: empirical_ntk(arch, params, x), 1)["min_s"]
    result, memory = peak_extra_memory(lambda: empirical_ntk(arch, params, x))
    stats = timings(lambda: empirical_ntk(arch, params, x), repeats)
    if save:
        np.save(save, result)
    return {"first_call_s": compile_and_run, **stats, "peak_extra_bytes": memory}


def train_child(kind: str, width: int, inits: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from engine import paper_target, paper_train_angles
    from engine.networks import forward, init_params
    from engine.smoothness import circle_points
    from engine.training import train

    arch, angles = _arch(), paper_train_angles(10)
    x, y = circle_points(angles), paper_target(angles)
    if kind == "ours":
        train(arch, x, y, width=width, n_init=inits, lr=0.05, steps=2, record_every=2)  # compile
        start = time.perf_counter()
        run = train(arch, x, y, width=width, n_init=inits, lr=0.05, steps=steps, record_every=steps)
        return {"seconds": time.perf_counter() - start, "final_loss": float(run["loss"][:, -1].mean())}
    with jax.enable_x64(True):  # the minimal loop: init, then a jitted scan of GD steps per network
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        loss = lambda p: 0.5 * jnp.sum((forward(arch, p, xj)[0] - yj) ** 2)  # noqa: E731

        @jax.jit
        def gd(params):
            step = lambda p, _: (jax.tree.map(lambda a, g: a - 0.05 * g, p, jax.grad(loss)(p)), None)  # noqa: E731
            return jax.lax.scan(step, params, None, length=steps)[0]

        gd(jax.tree.map(lambda a: a[0], init_params(arch, width, 2, seed=0, n_init=inits)))  # compile
        start = time.perf_counter()
        ensemble = init_params(arch, width, 2, seed=0, n_init=inits)
        losses = [float(loss(gd(jax.tree.map(lambda a, i=i: a[i], ensemble)))) for i in range(inits)]
        return {"seconds": time.perf_counter() - start, "final_loss": float(np.mean(losses))}


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-width", type=int, default=2000)
    parser.add_argument("--train-inits", type=int, default=30)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--no-train", action="store_true")
    args = parser.parse_args()
    if args.child:
        serve_child(args.child, {
            "ours": lambda n, repeats, weights, save=None: ours_child(int(n), int(repeats), weights, save),
            "train": lambda kind, width, inits, steps: train_child(kind, int(width), int(inits), int(steps)),
        })
        return

    me = [sys.executable, str(Path(__file__).resolve())]
    peer = None if args.no_peer else peer_python()
    print(f"# {os.cpu_count()} cores, float64, ReLU ResNet width {WIDTH}, depth {DEPTH}, alpha {ALPHA}, d=2; "
          f"peer: {'neural-tangents 0.6.5 empirical_ntk_fn (jit)' if peer else 'not available'}")
    with tempfile.TemporaryDirectory() as tmp:
        weights = f"{tmp}/weights.npz"
        print("\n| N | ours median s (min) | ours peak MiB | peer implementation | peer median s (min) "
              "| peer peak MiB | peer / ours time |\n|---|---|---|---|---|---|---|")
        for n in args.sizes:
            ours = run_child(me[0], [*me[1:], "--child", "ours", str(n), str(args.repeats), weights, f"{tmp}/ours.npy"])
            cells = (f"| {n} | {ours['median_s']:.4f} ({ours['min_s']:.4f}) "
                     f"| {ours['peak_extra_bytes'] / 2**20:.0f} |")
            if not peer:
                print(cells + " - | - | - | - |")
                continue
            for implementation, name in IMPLEMENTATIONS.items():
                theirs = run_child(peer, [str(HERE / "peer_empirical.py"), str(n), str(implementation),
                                          str(args.repeats), weights, f"{tmp}/peer.npy"])
                error = np.abs(np.load(f"{tmp}/ours.npy") - np.load(f"{tmp}/peer.npy")).max()
                error /= np.abs(np.load(f"{tmp}/peer.npy")).max()
                print(f"{cells} {name} (agreement {error:.0e}) | {theirs['median_s']:.4f} ({theirs['min_s']:.4f}) "
                      f"| {theirs['peak_extra_bytes'] / 2**20:.0f} | {theirs['median_s'] / ours['median_s']:.1f}x |",
                      flush=True)
    if not args.no_train:
        config = [str(args.train_width), str(args.train_inits), str(args.train_steps)]
        ours = run_child(me[0], [*me[1:], "--child", "train", "ours", *config])
        hand = run_child(me[0], [*me[1:], "--child", "train", "hand", *config])
        steps = args.train_steps
        print(f"\nTraining, width {args.train_width}, depth {DEPTH}, {args.train_inits} initialisations, "
              f"{steps} GD steps on the 10-sample set (init included, compilation excluded): "
              f"ours {ours['seconds']:.2f} s ({steps / ours['seconds']:.2f} steps/s for the ensemble), "
              f"hand-written loop {hand['seconds']:.2f} s; "
              f"overhead {100 * (ours['seconds'] / hand['seconds'] - 1):+.1f}% "
              f"(final losses {ours['final_loss']:.4g} and {hand['final_loss']:.4g})")


if __name__ == "__main__":
    main()
