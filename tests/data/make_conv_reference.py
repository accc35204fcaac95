"""Reference NNGP / NTK of convolutional ResNets and CNNs from neural-tangents (the peer).

Run with the peer's venv (../shared/peers/neural_tangents_venv.sh builds it):
    /work/nt-venv/bin/python tests/data/make_conv_reference.py
It writes tests/data/conv_reference.json: per case the architecture (the engine's dict form),
the inputs and NT's kernels. The project's tests read the JSON; they never import NT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("conv_reference.json")


DEGREES = (160, 240)  # Gauss-Hermite degrees of ElementwiseNumerical (the result at the higher is kept)


def nt_kernel_fn(spec: dict, deg: int = DEGREES[1]):  # type: ignore[no-untyped-def]
    """neural-tangents' kernel_fn of a ConvArchitecture's dict form (engine/conv/architecture.py);
    tanh, softplus, sigmoid by NT's Gauss-Hermite quadrature of degree `deg`."""
    import jax
    import jax.numpy as jnp
    from neural_tangents import stax

    closed = {"relu": stax.Relu, "erf": stax.Erf, "linear": stax.Identity,
              "gelu": lambda: stax.Gelu(approximate=False)}
    if spec["activation"] in closed:
        phi = closed[spec["activation"]]()
    else:
        fn = {"tanh": jnp.tanh, "softplus": jax.nn.softplus, "sigmoid": jax.nn.sigmoid}[spec["activation"]]
        phi = stax.ElementwiseNumerical(fn, deg=deg)
    q = tuple(spec["filter_size"])
    sw, sv, alpha, sb = spec["sigma_w"], spec["sigma_v"], spec["alpha"], spec["sigma_b"]
    b_std = sb if sb > 0 else None

    def conv(w_std, bias):  # type: ignore[no-untyped-def]
        return stax.Conv(1, q, padding="CIRCULAR", W_std=w_std, b_std=bias, parameterization="ntk")

    readout = stax.GlobalAvgPool() if spec["readout"] == "pool" else stax.Flatten()
    if spec["kind"] == "conv-resnet":
        block = stax.serial(stax.FanOut(2), stax.parallel(
            stax.Identity(), stax.serial(conv(sw, b_std), phi, conv(alpha * sv, None))), stax.FanInSum())
        layers = [conv(1.0, None)] + [block] * spec["depth"]
    else:
        layers = [stax.serial(conv(sw, b_std), phi)] * spec["depth"]
    _, _, kernel_fn = stax.serial(*layers, readout, stax.Dense(1, W_std=sw, b_std=b_std))
    return kernel_fn


def arch(kind: str, depth: int, **kw: object) -> dict:
    spec = {"kind": kind, "depth": depth, "activation": "relu", "sigma_w": 1.0, "sigma_v": 1.0, "alpha": 1.0,
            "sigma_b": 0.0, "filter_size": [3, 3], "readout": "pool"}
    spec.update(kw)
    return spec


def cases() -> list[tuple[str, dict, tuple[int, ...], int | None, int]]:
    """(name, architecture, x shape, N2 or None (symmetric), seed)."""
    return [
        ("resnet_relu_img_pool", arch("conv-resnet", 2, alpha=0.1), (4, 5, 5, 2), None, 0),
        # the inputs of the first case, other numbers: the compiled tile is reused (tests/engine/test_conv_analytic.py)
        ("resnet_relu_img_pool_other_numbers", arch("conv-resnet", 4, alpha=0.7, sigma_w=1.2, sigma_v=0.8,
                                                    sigma_b=0.2), (4, 5, 5, 2), None, 0),
        ("resnet_relu_img_flatten_bias", arch("conv-resnet", 3, sigma_b=0.3, readout="flatten"), (4, 4, 6, 1), 3, 1),
        ("resnet_relu_alpha0", arch("conv-resnet", 2, alpha=0.0, sigma_b=0.2), (3, 4, 4, 1), None, 2),
        ("resnet_erf_signal", arch("conv-resnet", 4, activation="erf", filter_size=[3], sigma_w=1.3, sigma_v=0.7,
                                   alpha=0.5), (4, 9, 3), 2, 3),
        ("resnet_linear_nonsquare", arch("conv-resnet", 1, activation="linear", filter_size=[3, 2], sigma_b=0.5),
         (3, 5, 4, 2), None, 4),
        ("resnet_relu_signal_flatten_q1", arch("conv-resnet", 4, filter_size=[1], readout="flatten", alpha=1.0,
                                               sigma_w=1.4), (5, 7, 2), None, 5),
        ("cnn_relu_img_pool", arch("cnn", 3, sigma_w=1.5, sigma_b=0.1), (4, 4, 4, 3), None, 6),
        ("cnn_relu_signal_flatten", arch("cnn", 2, filter_size=[4], readout="flatten"), (4, 8, 1), 3, 7),
        ("cnn_erf_img_flatten", arch("cnn", 4, activation="erf", filter_size=[2, 3], sigma_w=2.0, sigma_b=0.5,
                                     readout="flatten"), (3, 4, 5, 2), None, 8),
        ("cnn_linear_signal_pool", arch("cnn", 1, activation="linear", filter_size=[5], sigma_b=1.0),
         (3, 6, 2), 2, 9),
        ("resnet_relu_img_pool_x2", arch("conv-resnet", 3, alpha=1.0, sigma_b=0.4, filter_size=[3, 3]),
         (3, 6, 6, 1), 4, 10),
        ("resnet_erf_img_pool_deep", arch("conv-resnet", 4, activation="erf", alpha=0.1, filter_size=[2, 2]),
         (3, 4, 4, 1), None, 11),
        ("resnet_tanh_signal", arch("conv-resnet", 2, activation="tanh", filter_size=[3], alpha=0.5, sigma_b=0.1),
         (3, 5, 2), None, 12),
        ("cnn_tanh_signal_flatten", arch("cnn", 2, activation="tanh", filter_size=[2], readout="flatten",
                                         sigma_w=1.2), (3, 6, 3), 2, 13),
    ]


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt

    only = set(sys.argv[1:])
    out = []
    for name, spec, shape, n2, seed in cases():
        if only and name not in only:
            continue
        rng = np.random.default_rng(seed)
        x1 = rng.standard_normal(shape)
        x2 = None if n2 is None else rng.standard_normal((n2, *shape[1:]))
        k = nt_kernel_fn(spec)(x1, x2, ("nngp", "ntk"))
        accuracy = 0.0
        if spec["activation"] in ("tanh", "softplus", "sigmoid"):
            coarse = nt_kernel_fn(spec, DEGREES[0])(x1, x2, ("nngp", "ntk"))
            accuracy = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                           for a, b in ((coarse.nngp, k.nngp), (coarse.ntk, k.ntk)))
        out.append({"name": name, "architecture": spec, "x1": x1.tolist(), "x2": None if x2 is None else x2.tolist(),
                    "accuracy": accuracy, "nngp": np.asarray(k.nngp).tolist(), "ntk": np.asarray(k.ntk).tolist()})
        print(name, accuracy, np.asarray(k.ntk)[0, :3], flush=True)
    OUT.write_text(json.dumps({
        "source": f"neural-tangents {nt.__version__} on jax {jax.__version__}, float64, by "
                  "tests/data/make_conv_reference.py",
        "conventions": "stax.Conv(padding='CIRCULAR', parameterization='ntk'); quadrature activations by "
                       f"ElementwiseNumerical at deg {DEGREES[1]}; accuracy = relative change from deg {DEGREES[0]}",
        "cases": out}, indent=None) + "\n")


if __name__ == "__main__":
    main()
