"""Run by bench/analytic.py with neural-tangents' python: times its analytic kernel_fn.

Usage: python peer_analytic.py N DEPTH FORM REPEATS [SAVE.npz]; prints one JSON line.
FORM is "repeat" (stax.repeat, its best form) or "serial" (the block written out L times).
The inputs are the benchmark's circle points, rebuilt from the same formula.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from common import ALPHA, SIGMA_W, circle, peak_extra_memory, timings  # noqa: E402
from neural_tangents import stax  # noqa: E402


def main():
    n, depth, form, repeats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    block = stax.serial(
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Dense(512, W_std=SIGMA_W), stax.Relu(), stax.Dense(512, W_std=ALPHA)),
                      stax.Identity()),
        stax.FanInSum())
    body = stax.repeat(block, depth) if form == "repeat" else stax.serial(*[block] * depth)
    _, _, kernel_fn = stax.serial(stax.Dense(512, W_std=1.0), body, stax.Dense(1, W_std=SIGMA_W))
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    x = jax.numpy.asarray(circle(n))

    def run():
        return jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))

    compile_and_run = timings(run, 1)["min_s"]
    result, memory = peak_extra_memory(run)
    stats = timings(run, repeats)
    if len(sys.argv) > 5:
        np.savez(sys.argv[5], nngp=np.asarray(result[0]), ntk=np.asarray(result[1]))
    print(json.dumps({"first_call_s": compile_and_run, **stats, "peak_extra_bytes": memory, "jax": jax.__version__}))


if __name__ == "__main__":
    main()
