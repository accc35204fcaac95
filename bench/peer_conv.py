"""Run by bench/conv.py with neural-tangents' python: times NT's analytic kernel_fn of a conv net.

Usage: python peer_conv.py SPEC_JSON N REPEATS SAVE.npz; prints one JSON line. The network is
built by tests/data/make_conv_reference.py's `nt_kernel_fn` (the one the tests' reference
values come from); the inputs are `images(N)` of bench/conv.py's formula.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "data")]

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from common import peak_extra_memory, timings  # noqa: E402
from make_conv_reference import nt_kernel_fn  # noqa: E402


def images(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *shape))


def main() -> None:
    spec, n, repeats, save = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    shape = tuple(spec.pop("input_shape"))
    kernel_fn = jax.jit(nt_kernel_fn(spec), static_argnames="get")
    x = jax.numpy.asarray(images(n, shape))

    def run():  # type: ignore[no-untyped-def]
        return jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))

    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    result, memory = peak_extra_memory(run)
    stats = timings(run, repeats)
    np.savez(save, nngp=np.asarray(result[0]), ntk=np.asarray(result[1]))
    print(json.dumps({"first_call_s": first, **stats, "peak_extra_bytes": memory, "jax": jax.__version__}))


if __name__ == "__main__":
    main()
