"""Run by bench/empirical.py with neural-tangents' python: times empirical_ntk_fn.

Usage: python peer_empirical.py N IMPLEMENTATION REPEATS PARAMS.npz [SAVE.npy]; prints one JSON line.
The network is the benchmark's ResNet (width 512, depth 5, alpha 0.1) as a stax.serial; its
weights are loaded from PARAMS.npz (ours, transposed to neural-tangents' layout) so both
libraries differentiate the same function.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax

jax.config.update("jax_enable_x64", True)

import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from common import ALPHA, SIGMA_W, circle, peak_extra_memory, timings  # noqa: E402
from neural_tangents import stax  # noqa: E402

WIDTH, DEPTH = 512, 5


def main():
    n, implementation, repeats, weights = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    block = stax.serial(
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Dense(WIDTH, W_std=SIGMA_W, b_std=None), stax.Relu(),
                                  stax.Dense(WIDTH, W_std=ALPHA, b_std=None)), stax.Identity()),
        stax.FanInSum())
    init_fn, apply_fn, _ = stax.serial(stax.Dense(WIDTH, W_std=1.0, b_std=None), *[block] * DEPTH,
                                       stax.Dense(1, W_std=SIGMA_W, b_std=None))
    _, params = init_fn(jax.random.PRNGKey(0), (-1, 2))
    leaves, tree = jax.tree_util.tree_flatten(params)
    ours = np.load(weights)
    ours = [ours[f"arr_{i}"] for i in range(len(ours.files))]
    assert [leaf.shape for leaf in leaves] == [a.shape for a in ours], "parameter layouts differ"
    params = jax.tree_util.tree_unflatten(tree, [jax.numpy.asarray(a) for a in ours])
    ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                         implementation=nt.NtkImplementation(implementation)))
    x = jax.numpy.asarray(circle(n))

    def run():
        return jax.block_until_ready(ntk_fn(x, None, params))

    compile_and_run = timings(run, 1)["min_s"]
    result, memory = peak_extra_memory(run)
    stats = timings(run, repeats)
    if len(sys.argv) > 5:
        np.save(sys.argv[5], np.asarray(result).reshape(n, n))
    print(json.dumps({"first_call_s": compile_and_run, **stats, "peak_extra_bytes": memory}))


if __name__ == "__main__":
    main()
