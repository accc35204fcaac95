"""Run by bench/activations.py with neural-tangents' python: its `ElementwiseNumerical(deg=25)` ResNet
(the ResNet of bench/peer_latency.py, alpha = 0.1) on the points saved in POINTS.npy. Prints one JSON line.

    python peer_activations.py ACT DEPTH REPEATS POINTS.npy SAVE.npz
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from common import timings  # noqa: E402
from neural_tangents import stax  # noqa: E402
from peer_latency import resnet  # noqa: E402


def main() -> None:
    activation, depth, repeats, points, save = sys.argv[1:6]
    fn = {"tanh": jax.numpy.tanh, "softplus": jax.nn.softplus, "sigmoid": jax.nn.sigmoid}[activation]
    kernel_fn = resnet(int(depth), 0.1, stax.ElementwiseNumerical(fn=fn, deg=25))
    x = jax.numpy.asarray(np.load(points))

    def run():
        return jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))

    first = timings(run, 1)["min_s"]
    stats = timings(run, int(repeats))
    nngp, ntk = run()
    np.savez(save, nngp=np.asarray(nngp), ntk=np.asarray(ntk))
    print(json.dumps({"first_call_s": first, **stats}))


if __name__ == "__main__":
    main()
