"""Writes kernels_neural_tangents_extra.json: analytic NNGP / NTK Gram matrices computed by
neural-tangents 0.6.5 for the cases kernels_neural_tangents.json lacks: biases (sigma_b > 0),
sigma_v != 1, and every activation (relu, erf, linear, gelu in closed form; tanh, softplus,
sigmoid by neural-tangents' Gauss-Hermite quadrature, `ElementwiseNumerical`).

Not run by the tests. Run it with neural-tangents' own python (shared/peers/):

    python "$(bash ../shared/peers/neural_tangents_venv.sh)" tests/data/make_reference_kernels.py

The networks are those of shared/reference/README.md, in stax form below. For the quadrature
activations the script computes each case at two quadrature degrees and records the larger
relative difference as the case's `accuracy` (the tests' tolerance uses it).
"""

import json
import math
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

WIDTH = 512  # irrelevant to the analytic kernels
DEGREES = (160, 240)  # quadrature degrees of ElementwiseNumerical (the result at the higher is kept)


def activation(name, deg):
    closed = {"relu": stax.Relu, "erf": stax.Erf, "linear": stax.Identity, "gelu": lambda: stax.Gelu(approximate=False)}
    if name in closed:
        return closed[name]()
    fn = {"tanh": jnp.tanh, "softplus": jax.nn.softplus, "sigmoid": jax.nn.sigmoid}[name]
    return stax.ElementwiseNumerical(fn, deg=deg)


def dense(std, b_std):
    return stax.Dense(WIDTH, W_std=std, b_std=b_std or None)


def network(arch, deg):
    sw, sv, sb, alpha = arch["sigma_w"], arch["sigma_v"], arch["sigma_b"], arch.get("alpha", 1.0)
    phi = activation(arch["activation"], deg)
    readout = stax.Dense(1, W_std=sw, b_std=sb or None)
    if arch["kind"] == "resnet":
        branch = stax.serial(dense(sw, sb), phi, stax.Dense(WIDTH, W_std=alpha * sv))
        block = stax.serial(stax.FanOut(2), stax.parallel(branch, stax.Identity()), stax.FanInSum())
        return stax.serial(stax.Dense(WIDTH, W_std=1.0), *[block] * arch["depth"], readout)
    layers = [dense(sw, sb), phi]
    for _ in range(arch["depth"] - 1):
        layers += [dense(sw, sb), phi]
    return stax.serial(*layers, readout)


def circle(angles):
    b = np.asarray(angles, dtype=np.float64)
    return np.stack([np.cos(b), np.sin(b)], axis=-1)


RNG = np.random.default_rng(2026)
# repeated (correlation exactly 1), nearly antipodal and generic points on the unit circle
CIRCLE = circle([0.0, 0.7, 0.7, math.pi - 1e-9, -2.2, 2.9])
GAUSS1, GAUSS2 = RNG.normal(size=(5, 3)), RNG.normal(size=(4, 3))

ARCHS = [
    {"kind": "resnet", "depth": 3, "activation": "relu", "alpha": 0.5, "sigma_w": 1.2, "sigma_v": 0.7, "sigma_b": 0.4},
    {"kind": "resnet", "depth": 5, "activation": "relu", "alpha": 0.1, "sigma_w": 1.0, "sigma_v": 1.0, "sigma_b": 0.3},
    {"kind": "resnet", "depth": 4, "activation": "erf", "alpha": 0.3, "sigma_w": 1.1, "sigma_v": 1.3, "sigma_b": 0.5},
    {"kind": "resnet", "depth": 3, "activation": "linear", "alpha": 0.8, "sigma_w": 0.9, "sigma_v": 1.5,
     "sigma_b": 0.3},
    {"kind": "resnet", "depth": 2, "activation": "gelu", "alpha": 0.6, "sigma_w": 1.0, "sigma_v": 1.2, "sigma_b": 0.2},
    {"kind": "resnet", "depth": 2, "activation": "tanh", "alpha": 0.7, "sigma_w": 1.3, "sigma_v": 0.8, "sigma_b": 0.3},
    {"kind": "resnet", "depth": 2, "activation": "softplus", "alpha": 0.4, "sigma_w": 1.0, "sigma_v": 1.1,
     "sigma_b": 0.2},
    {"kind": "resnet", "depth": 2, "activation": "sigmoid", "alpha": 0.9, "sigma_w": 1.2, "sigma_v": 1.4,
     "sigma_b": 0.5},
    {"kind": "mlp", "depth": 3, "activation": "relu", "sigma_w": 1.3, "sigma_v": 1.0, "sigma_b": 0.5},
    {"kind": "mlp", "depth": 2, "activation": "erf", "sigma_w": 1.4, "sigma_v": 1.0, "sigma_b": 0.3},
    {"kind": "mlp", "depth": 2, "activation": "linear", "sigma_w": 1.1, "sigma_v": 1.0, "sigma_b": 0.7},
    {"kind": "mlp", "depth": 2, "activation": "gelu", "sigma_w": 1.2, "sigma_v": 1.0, "sigma_b": 0.4},
    {"kind": "mlp", "depth": 2, "activation": "tanh", "sigma_w": 1.5, "sigma_v": 1.0, "sigma_b": 0.2},
    {"kind": "mlp", "depth": 2, "activation": "softplus", "sigma_w": 1.0, "sigma_v": 1.0, "sigma_b": 0.6},
    {"kind": "mlp", "depth": 2, "activation": "sigmoid", "sigma_w": 1.3, "sigma_v": 1.0, "sigma_b": 0.3},
]


def kernels(arch, x1, x2, deg):
    kernel_fn = network(arch, deg)[2]
    out = kernel_fn(jnp.asarray(x1), None if x2 is None else jnp.asarray(x2), ("nngp", "ntk"))
    return {name: np.asarray(value) for name, value in zip(("nngp", "ntk"), out, strict=True)}


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main(path):
    cases = []
    for arch in ARCHS:
        quadrature = arch["activation"] in ("tanh", "softplus", "sigmoid")
        for label, x1, x2 in (("circle", CIRCLE, None), ("gauss", GAUSS1, GAUSS2)):
            coarse = kernels(arch, x1, x2, DEGREES[0]) if quadrature else None
            fine = kernels(arch, x1, x2, DEGREES[1])
            accuracy = max(rel(coarse[k], fine[k]) for k in fine) if quadrature else 0.0
            name = f"{arch['kind']}-{arch['activation']}-L{arch['depth']}-b{arch['sigma_b']:g}-{label}"
            cases.append({"name": name, "architecture": arch, "x1": x1.tolist(),
                          "x2": None if x2 is None else x2.tolist(), "accuracy": accuracy,
                          "nngp": fine["nngp"].tolist(), "ntk": fine["ntk"].tolist()})
            print(name, "quadrature degrees differ by", accuracy, file=sys.stderr)
    document = {
        "source": "neural-tangents 0.6.5 on jax 0.4.23, float64, by tests/data/make_reference_kernels.py",
        "conventions": "networks of shared/reference/README.md; quadrature activations by ElementwiseNumerical "
                       f"at deg {DEGREES[1]}; accuracy = relative change from deg {DEGREES[0]}",
        "cases": cases,
    }
    Path(path).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("kernels_neural_tangents_extra.json"))
