"""Tiles spread over several JAX devices (engine.tiling): the same numbers, bit for bit, as on one
device, and every device gets tiles.

JAX fixes its devices when it starts, so the two-device cases run in a child process started with
XLA_FLAGS=--xla_force_host_platform_device_count=2 (two CPU devices, the stand-in for two GPUs).
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.tiling import fill_tiles, spread_over

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json
import numpy as np
import jax
from engine import Architecture, analytic_kernels
from engine import analytic
from engine.conv import analytic as conv
from engine.conv.architecture import ConvArchitecture

analytic.TILE = 128          # N = 600: 5 x 5 tiles (15 in the upper triangle)
conv.TILE_ENTRIES = 1 << 10  # 4 x 4 signals a tile (36 pixel pairs each)
devices = jax.local_devices()
calls = []


def recording(fn):
    def run(*args, **static):
        out = fn(*args, **static)
        inputs = sorted({str(d) for a in args if isinstance(a, jax.Array) for d in a.devices()})
        outputs = sorted({str(d) for v in out.values() for d in v.devices()})
        calls.append({"inputs": inputs, "outputs": outputs, "placed": all(isinstance(a, jax.Array) for a in args)})
        return out
    return run


analytic._tile = recording(analytic._tile)
conv.tile = recording(conv.tile)


def run(fn, *args, **kw):
    calls.clear()
    out = fn(*args, **kw)
    return out, list(calls)


rng = np.random.default_rng(11)
x, x2 = rng.normal(size=(600, 10)), rng.normal(size=(300, 10))
report = {"devices": [str(d) for d in devices], "cases": {}}
for name, arch in (("relu", Architecture("resnet", 6, alpha=0.1)),
                   ("erf", Architecture("mlp", 4, activation="erf"))):
    for pair in ("symmetric", "x1x2"):
        args = (x,) if pair == "symmetric" else (x, x2)
        one, _ = run(analytic_kernels, *args, arch=arch, devices=devices[:1])
        both, spread = run(analytic_kernels, *args, arch=arch, devices=devices, workers=1)
        default, _ = run(analytic_kernels, *args, arch=arch)
        report["cases"][f"{name} {pair}"] = {
            "equal": all(np.array_equal(both[k], one[k]) for k in ("nngp", "ntk")),
            "equal_default": all(np.array_equal(default[k], one[k]) for k in ("nngp", "ntk")),
            "calls": spread,
        }
images = rng.normal(size=(20, 6, 2))
carch = ConvArchitecture("conv-resnet", 3, filter_size=(3,), alpha=0.3)
one, _ = run(conv.conv_kernels, images, arch=carch, devices=devices[:1])
both, spread = run(conv.conv_kernels, images, arch=carch, devices=devices)
report["cases"]["conv symmetric"] = {"equal": all(np.array_equal(both[k], one[k]) for k in ("nngp", "ntk")),
                                     "equal_default": True, "calls": spread}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def two_devices() -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()}
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_child_sees_two_devices(two_devices):
    assert len(two_devices["devices"]) == 2, two_devices["devices"]


@pytest.mark.parametrize("case", ["relu symmetric", "relu x1x2", "erf symmetric", "erf x1x2", "conv symmetric"])
def test_two_devices_give_the_one_device_numbers_bit_for_bit(two_devices, case):
    result = two_devices["cases"][case]
    assert result["equal"], f"{case}: devices=both differs from devices=[first]"
    assert result["equal_default"], f"{case}: devices=None differs from devices=[first]"


@pytest.mark.parametrize("case", ["relu symmetric", "relu x1x2", "erf symmetric", "erf x1x2", "conv symmetric"])
def test_the_tiles_ran_on_both_devices(two_devices, case):
    calls = two_devices["cases"][case]["calls"]
    assert len(calls) > 2, f"{case}: only {len(calls)} tiles"
    for call in calls:
        assert call["placed"], "a tile's inputs were not placed on a device"
        assert len(call["inputs"]) == 1 and call["outputs"] == call["inputs"], call  # ran where its inputs lay
    ran_on = [call["outputs"][0] for call in calls]
    assert set(ran_on) == set(two_devices["devices"])
    counts = [ran_on.count(d) for d in two_devices["devices"]]
    assert max(counts) - min(counts) <= 1, counts  # round-robin: an even share each


@pytest.mark.parametrize("threaded_writes", [False, True])
def test_fill_tiles_deals_round_robin_with_a_thread_per_device(threaded_writes):
    """Two (stand-in) devices and workers=1: each device gets every other tile; every entry is
    written, mirrored below the diagonal, whichever thread writes."""
    seen, threads = [], set()

    def compute(block, device):
        seen.append((block, device))
        threads.add(threading.get_ident())
        i, j = block
        return block, {"k": 100.0 * i + j + np.add.outer(10.0 * np.arange(2), np.arange(2))}

    blocks = [(i, j) for i in range(0, 8, 2) for j in range(i, 8, 2)]
    result = {"k": np.full((8, 8), np.nan)}
    fill_tiles(blocks, compute, result, symmetric=True, workers=1, devices=["a", "b"],
               threaded_writes=threaded_writes)
    assert sorted(seen) == sorted((block, "ab"[k % 2]) for k, block in enumerate(blocks))
    upper = 100.0 * (np.arange(8)[:, None] // 2 * 2) + 10.0 * (np.arange(8)[:, None] % 2) + np.arange(8)[None, :]
    expected = np.where(np.arange(8)[:, None] <= np.arange(8)[None, :], upper, upper.T)
    np.testing.assert_array_equal(result["k"], expected)
    assert threading.get_ident() not in threads  # on a pool, not in the caller's thread


def test_one_device_gets_none_and_an_empty_list_is_refused():
    assert spread_over(None) == [None]  # this process has one (CPU) device: arrays go as they are
    with pytest.raises(ValueError, match="devices"):
        spread_over([])
