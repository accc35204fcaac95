"""The persistent compilation cache: a second process compiles nothing the first compiled."""

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import jax
import numpy as np
from engine.compilation import enable_compilation_cache
counts = {"requests": 0, "hits": 0}
def listen(event, **kwargs):
    if event == "/jax/compilation_cache/compile_requests_use_cache":
        counts["requests"] += 1
    elif event == "/jax/compilation_cache/cache_hits":
        counts["hits"] += 1
jax.monitoring.register_event_listener(listen)
enable_compilation_cache(sys.argv[1])
from engine import Architecture, analytic_kernels
x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
analytic_kernels(x, arch=Architecture("resnet", int(sys.argv[2]), alpha=float(sys.argv[3])))
print(json.dumps(counts))
"""


def run(cache, depth, alpha):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache), str(depth), str(alpha)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_compiles_nothing_again(tmp_path):
    first = run(tmp_path, 5, 0.1)
    assert first["requests"] > 0 and first["hits"] < first["requests"]
    second = run(tmp_path, 7, 0.3)  # another depth and alpha: the same compiled code
    assert second["requests"] == first["requests"] and second["hits"] == second["requests"]
    assert any(tmp_path.iterdir())
