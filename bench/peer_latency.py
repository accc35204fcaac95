"""Run by bench/latency.py with neural-tangents' python. Prints one JSON line.

    python peer_latency.py alphas N DEPTH ALPHA...          # a new kernel_fn (jit) per alpha: first-call seconds
    python peer_latency.py numerical ACT N DEPTH REPEATS SAVE.npz   # ElementwiseNumerical(deg=25)
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from common import circle, timings  # noqa: E402
from neural_tangents import stax  # noqa: E402


def resnet(depth: int, alpha: float, nonlinearity):
    block = stax.serial(
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Dense(512, W_std=1.0), nonlinearity, stax.Dense(512, W_std=alpha)),
                      stax.Identity()),
        stax.FanInSum())
    _, _, kernel_fn = stax.serial(stax.Dense(512, W_std=1.0), stax.repeat(block, depth), stax.Dense(1, W_std=1.0))
    return jax.jit(kernel_fn, static_argnames="get")


def alphas(n: str, depth: str, *values: str) -> dict:
    x = jax.numpy.asarray(circle(int(n)))
    seconds = []
    for alpha in values:
        kernel_fn = resnet(int(depth), float(alpha), stax.Relu())
        start = time.perf_counter()
        jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds}


def numerical(activation: str, n: str, depth: str, repeats: str, save: str) -> dict:
    fn = {"tanh": jax.numpy.tanh, "softplus": jax.nn.softplus, "sigmoid": jax.nn.sigmoid}[activation]
    kernel_fn = resnet(int(depth), 0.1, stax.ElementwiseNumerical(fn=fn, deg=25))
    x = jax.numpy.asarray(circle(int(n)))

    def run():
        return jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))

    first = timings(run, 1)["min_s"]
    stats = timings(run, int(repeats))
    nngp, ntk = run()
    np.savez(save, nngp=np.asarray(nngp), ntk=np.asarray(ntk))
    return {"first_call_s": first, **stats}


if __name__ == "__main__":
    print(json.dumps({"alphas": alphas, "numerical": numerical}[sys.argv[1]](*sys.argv[2:])))
