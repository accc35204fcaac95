"""Benchmark: the rates behind the admission cost model (`service/operations/cost.py`).

    python bench/cost.py              # all rates, 3 repeats each, medians
    python bench/cost.py --repeats 5

Measures, on this machine, with compilation excluded (a warm-up call first):
analytic kernel entry-layers per second (ReLU, N = 2048, L = 15) and each activation's
slowdown against ReLU (closed forms at N = 1024, L = 15; quadrature at N = 64, L = 5),
a training chunk's effective flop rate and per-parameter step cost, a conv net's (the rate of
its convolutions), the random
initialisation's cost per parameter, and the dense linear algebra constants. Prints the
constants to paste into `service/operations/cost.py`.

The constants come from the process's CPU time, not the wall clock: this VM is shared, and under
load the wall clock of the same call varied 5x while its CPU time did not. CPU seconds are the wall
time on one core, so for work that uses both cores the estimates are up to 2x high (never low).
Both are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median_time(fn, repeats: int, warm=None) -> float:
    """Median CPU seconds of fn() over `repeats` calls after one warm-up call (`warm`, default fn);
    prints the median wall time beside it."""
    (warm or fn)()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(f"    wall {statistics.median(walls):.4g} s, cpu {statistics.median(cpus):.4g} s")
    return statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-quadrature", action="store_true")
    args = parser.parse_args()
    import jax
    import jax.numpy as jnp

    from engine import Architecture, analytic_kernels
    from engine.conv.architecture import ConvArchitecture
    from engine.networks import init_ensemble
    from engine.training import State, _chunk, train
    from service.operations.cost import step_flops, tile_entries

    rng = np.random.default_rng(0)
    out: dict[str, float] = {}

    def kernel_rate(activation: str, n: int, depth: int, repeats: int = args.repeats) -> float:
        x = rng.normal(size=(n, 3))
        arch = Architecture("resnet", depth, activation=activation, alpha=0.1)
        # the warm-up compiles the same tile shape on fewer points
        seconds = median_time(lambda: analytic_kernels(x, arch=arch), repeats,
                              lambda: analytic_kernels(x[: min(n, 600)], arch=arch))
        rate = tile_entries(n, None, activation) * depth / seconds
        print(f"analytic {activation:9s} N={n:5d} L={depth:3d}: {seconds:8.3f} s, {rate:.3g} entry-layers/s")
        return rate

    relu = kernel_rate("relu", 2048, 15)
    out["KERNEL_ENTRY_LAYERS_PER_S"] = relu
    for act in ("erf", "linear"):
        out[f"factor {act}"] = relu / kernel_rate(act, 1024, 15)
    if not args.skip_quadrature:
        for act in ("tanh", "gelu", "softplus", "sigmoid"):
            out[f"factor {act}"] = relu / kernel_rate(act, 64, 5, 1)

    # training: t(step) = step_flops(B) / FLOPS + P * SECONDS_PER_PARAMETER_STEP, fitted on B = 1 and B = 256
    width, depth, steps = 512, 5, 20
    arch = Architecture("resnet", depth, alpha=0.1)
    params_count = 2 * depth * width**2 + 3 * width
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.PRNGKey(0), 1)
        params = init_ensemble(arch, width, 2, keys)
        state = State(params, None, None, jnp.zeros(1), jnp.zeros(1, jnp.int32))
        per_step = {}
        for batch in (1, 256):
            x = jnp.asarray(rng.normal(size=(batch, 2)))
            y = jnp.asarray(rng.normal(size=batch))

            def run(x=x, y=y):
                jax.block_until_ready(_chunk(state, keys, x, y, 1e-3, arch=arch, parametrization="ntk",
                                             optimizer="gd", batch_size=None, length=steps).params)

            per_step[batch] = median_time(run, args.repeats) / steps
            print(f"train chunk width {width} depth {depth} batch {batch:3d}: {per_step[batch] * 1e3:.2f} ms/step")
        per_param = per_step[1] / params_count
        flops = step_flops(arch, width, 256, params_count) / max(per_step[256] - params_count * per_param, 1e-9)
        out["NETWORK_FLOPS"] = flops
        out["SECONDS_PER_PARAMETER_STEP"] = per_param
        big = 2000
        seconds = median_time(lambda: jax.block_until_ready(
            init_ensemble(arch, big, 2, jax.random.split(jax.random.PRNGKey(1), 2))), args.repeats)
        out["INIT_SECONDS_PER_PARAMETER"] = seconds / (2 * (2 * depth * big**2 + 3 * big))

    # conv nets: 3 forward passes a step, each weight at P positions (engine.conv.networks' layout: a cnn of depth 2,
    # filter 3, one input channel, the pool readout), at the rate of XLA's float64 convolutions
    conv_width, positions, batch, conv_steps = 128, 8, 32, 100
    conv = ConvArchitecture("cnn", 2, filter_size=(3,))
    conv_params = 3 * conv_width + 3 * conv_width**2 + conv_width
    xs, ys = rng.normal(size=(batch, positions, 1)), np.zeros(batch)
    seconds = median_time(lambda: train(conv, xs, ys, width=conv_width, steps=conv_steps, lr=0.01), args.repeats)
    out["CONV_FLOPS"] = conv_steps * 6 * batch * positions * conv_params / seconds
    print(f"train cnn width {conv_width} P {positions} batch {batch}: {seconds / conv_steps * 1e3:.2f} ms/step")

    import scipy.linalg
    n = 2000
    a = rng.normal(size=(n, n))
    spd = a @ a.T + n * np.eye(n)
    out["MATMUL_FLOPS"] = 2 * n**3 / median_time(lambda: a @ a, args.repeats)
    out["CHOLESKY_S_PER_N3"] = median_time(lambda: scipy.linalg.cho_factor(spd, lower=True), args.repeats) / n**3
    out["EIGVALSH_S_PER_N3"] = median_time(lambda: np.linalg.eigvalsh(spd), args.repeats) / n**3
    out["EIGH_S_PER_N3"] = median_time(lambda: np.linalg.eigh(spd), args.repeats) / n**3
    out["LSTSQ_S_PER_N3"] = median_time(lambda: np.linalg.lstsq(spd, a[:, 0], rcond=1e-13), args.repeats) / n**3
    b = rng.normal(size=(200, 200, 201))
    out["ELEMENTWISE_S"] = median_time(lambda: np.cos(b * 0.5).sum(-1), args.repeats) / b.size
    print()
    for name, value in out.items():
        print(f"{name} = {value:.3g}")


if __name__ == "__main__":
    main()
