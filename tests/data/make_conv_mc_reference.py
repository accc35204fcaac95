"""Writes conv_mc_reference.json: neural-tangents 0.6.5's analytic NNGP / NTK of small conv
ResNets and CNNs (circular padding, stride 1, NTK parametrisation) on 3 inputs each, and, for
the same architectures at width 3, one finite network of neural-tangents (its `init_fn`
weights, renamed to engine.conv.networks' layout) with its `apply_fn` outputs.

The tests check engine.conv's finite networks against both: the forward pass on the same
weights (the semantics: padding offsets, orientation, fan-ins, flatten order), and the
empirical NTK / NNGP at large width against the analytic kernels (Monte Carlo).

Not run by the tests. Run it with neural-tangents' own python (shared/peers/):

    /work/nt-venv/bin/python tests/data/make_conv_mc_reference.py
"""

import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

WIDTH = 512  # irrelevant to the analytic kernels
FINITE_WIDTH = 3  # the finite network whose outputs the forward test compares

CASES = [  # (name, architecture as engine.conv's dict form, input shape (*spatial, C))
    ("signal-resnet-pool", {"kind": "conv-resnet", "depth": 2, "activation": "relu", "sigma_w": 1.2,
                            "sigma_v": 0.9, "alpha": 0.8, "sigma_b": 0.3, "filter_size": [3], "readout": "pool"},
     (8, 2)),
    ("signal-cnn-flatten", {"kind": "cnn", "depth": 2, "activation": "relu", "sigma_w": 1.4, "sigma_v": 1.0,
                            "alpha": 1.0, "sigma_b": 0.0, "filter_size": [4], "readout": "flatten"}, (6, 2)),
    ("image-resnet-flatten", {"kind": "conv-resnet", "depth": 2, "activation": "relu", "sigma_w": 1.0,
                              "sigma_v": 1.1, "alpha": 0.6, "sigma_b": 0.0, "filter_size": [3, 2],
                              "readout": "flatten"}, (4, 4, 2)),
    ("image-cnn-pool", {"kind": "cnn", "depth": 2, "activation": "relu", "sigma_w": 1.3, "sigma_v": 1.0,
                        "alpha": 1.0, "sigma_b": 0.2, "filter_size": [3, 3], "readout": "pool"}, (4, 4, 1)),
    ("image-resnet-pool-erf", {"kind": "conv-resnet", "depth": 1, "activation": "erf", "sigma_w": 1.0,
                               "sigma_v": 1.0, "alpha": 1.0, "sigma_b": 0.4, "filter_size": [2, 3],
                               "readout": "pool"}, (3, 5, 2)),
]


def conv(width, q, std, b_std):
    return stax.Conv(width, tuple(q), W_std=std, b_std=b_std or None, padding="CIRCULAR",
                     parameterization="ntk")


def network(a, width):
    phi = {"relu": stax.Relu, "erf": stax.Erf}[a["activation"]]()
    q, sb = a["filter_size"], a["sigma_b"]
    readout = stax.GlobalAvgPool() if a["readout"] == "pool" else stax.Flatten()
    if a["kind"] == "conv-resnet":
        block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(
            conv(width, q, a["sigma_w"], sb), phi, conv(width, q, a["alpha"] * a["sigma_v"], 0.0))), stax.FanInSum())
        layers = [conv(width, q, 1.0, 0.0), *[block] * a["depth"]]
    else:
        layers = [layer for _ in range(a["depth"]) for layer in (conv(width, q, a["sigma_w"], sb), phi)]
    return stax.serial(*layers, readout, stax.Dense(1, W_std=a["sigma_w"], b_std=sb or None,
                                                    parameterization="ntk"))


def rename(a, params):
    """neural-tangents' nested parameters -> engine.conv.networks' dict (lists of floats)."""
    out, biases = {}, []
    if a["kind"] == "conv-resnet":
        out["U"] = params[0][0]
        blocks = params[1:1 + a["depth"]]
        out["W"] = np.stack([b[1][1][0][0] for b in blocks])
        out["V"] = np.stack([b[1][1][2][0] for b in blocks])
        biases = [b[1][1][0][1] for b in blocks]
    else:
        convs = params[0:2 * a["depth"]:2]
        out["W1"] = convs[0][0]
        out["W"] = np.stack([c[0] for c in convs[1:]]) if len(convs) > 1 else np.zeros((0, *convs[0][0].shape[:-2],
                                                                                          FINITE_WIDTH, FINITE_WIDTH))
        biases = [c[1] for c in convs]
    w, b_out = params[-1]
    out["w"] = np.asarray(w)[:, 0]
    if a["sigma_b"] > 0:
        out["b"] = np.stack([np.asarray(b).reshape(-1) for b in biases])
        out["b_out"] = np.asarray(b_out).reshape(())
    return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in out.items()}


def main(path: Path) -> None:
    import neural_tangents

    rng = np.random.default_rng(2026)
    cases = []
    for name, arch, shape in CASES:
        x = rng.normal(size=(3, *shape))
        _, _, kernel_fn = network(arch, WIDTH)
        k = kernel_fn(x, None, ("nngp", "ntk"))
        init_fn, apply_fn, _ = network(arch, FINITE_WIDTH)
        _, params = init_fn(jax.random.PRNGKey(7), x.shape)
        f = np.asarray(apply_fn(params, x))[:, 0]
        cases.append({"name": name, "architecture": arch, "x": x.tolist(),
                      "nngp": np.asarray(k.nngp).tolist(), "ntk": np.asarray(k.ntk).tolist(),
                      "finite": {"width": FINITE_WIDTH, "params": rename(arch, params), "f": f.tolist()}})
        print(name, "nngp diag", np.diag(np.asarray(k.nngp)), "ntk diag", np.diag(np.asarray(k.ntk)))
    doc = {"source": f"neural-tangents {neural_tangents.__version__}, jax {jax.__version__}, float64; "
                     "tests/data/make_conv_mc_reference.py", "cases": cases}
    path.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("conv_mc_reference.json"))
