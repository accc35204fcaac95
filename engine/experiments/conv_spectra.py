"""Spectra and condition numbers of convolutional Gram matrices, with and without skips
(Barzilai, Geifman, Galun & Basri, ICLR 2023), on scikit-learn's 8x8 digits as images.

Barzilai et al. claim that with ReLU the NNGP and NTK of convolutional ResNets have the eigenvalue
decay of the same network without skips, and that their Gram matrices are better conditioned at
finite depth. Here: for a seeded subset of `n_images` digits, centred (the subset's mean image
subtracted, `center`) and each scaled to unit mean square pixel, shape (N, 8, 8, 1), the Gram
matrix of each kernel for the CNN and for conv-ResNets over alpha (`engine.conv`), divided by its
mean diagonal; its eigenvalues e_1 >= ... >= e_N; the condition number e_1 / e_N; and the decay
exponent, the least-squares slope of log e_i against log i over the ranks `fit_ranks`
(`engine.sphere.decay_exponent`), with its standard error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments import parameters as P
from engine.experiments.common import BYTES, Progress, Steps
from engine.experiments.registry import Experiment, ParameterError

DIGITS = 1797  # images in scikit-learn's digits
PIXELS = 64
SINGULAR = 2.2e-16  # e_N <= this x N x e_1: numerically singular (eigvalsh's rounding is about N eps e_1)


def networks(depth: int, alphas: list[float], filter_size: int, readout: str) -> list[tuple[str, Any]]:
    """The compared networks at one depth: the CNN, then a conv-ResNet per alpha (ReLU)."""
    from engine.conv.architecture import ConvArchitecture

    size = (filter_size, filter_size)
    return [("CNN", ConvArchitecture("cnn", depth, filter_size=size, readout=readout))] + [
        (f"conv-ResNet alpha={a:g}", ConvArchitecture("conv-resnet", depth, alpha=a, filter_size=size, readout=readout))
        for a in alphas]


def digit_images(n_images: int, seed: int, center: bool = True) -> np.ndarray:
    """(n_images, 8, 8, 1) digits, a seeded subset without replacement, the subset's mean image
    subtracted if `center`, each then scaled to unit mean square pixel (x.x' / 64 = 1 on the
    diagonal, as the dense kernels' q = x.x' / d)."""
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.float64)
    pick = np.sort(np.random.default_rng(seed).choice(len(data), n_images, replace=False))
    x = data[pick]
    if center:
        x = x - x.mean(axis=0)
    x /= np.sqrt(np.mean(x * x, axis=1, keepdims=True))
    return x.reshape(n_images, 8, 8, 1)


def gram_matrices(x: np.ndarray, arch: Any, kernels: list[str]) -> dict[str, np.ndarray]:
    """{kernel: (N, N) Gram matrix} of the analytic conv kernels (`engine.conv`)."""
    from engine.conv.analytic import conv_kernels

    out = conv_kernels(x, arch=arch, kernels=tuple(kernels))
    return {k: np.asarray(out[k], dtype=np.float64) for k in kernels}


def conv_spectra(*, depths: list[int], alphas: list[float], n_images: int, filter_size: int, readouts: list[str],
                 kernels: list[str], fit_ranks: list[int], center: bool, seed: int,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Eigenvalues, condition numbers and eigenvalue decay exponents of the CNN's and conv-ResNets'
    NTK and NNGP Gram matrices on scikit-learn's 8x8 digits, against depth (Barzilai et al. 2023).
    Arrays: depths (D,), eigenvalues_<kernel> (readouts, networks, D, N) in decreasing order, of the
    Gram divided by its mean diagonal; condition_<kernel> (readouts, networks, D): e_1 / e_N (0 where
    e_N <= N eps e_1: numerically singular); exponent_<kernel>, exponent_se_<kernel> (readouts, networks, D)."""
    from engine.sphere import decay_exponent

    x = digit_images(n_images, seed, center)
    labels = [label for label, _ in networks(depths[0], alphas, filter_size, readouts[0])]
    shape = (len(readouts), len(labels), len(depths))
    eig = {k: np.zeros((*shape, n_images)) for k in kernels}
    cond = {k: np.zeros(shape) for k in kernels}
    slope = {k: np.zeros(shape) for k in kernels}
    se = {k: np.zeros(shape) for k in kernels}
    step = Steps(len(readouts) * len(depths) * len(labels), progress)
    for r, readout in enumerate(readouts):
        for j, depth in enumerate(depths):
            for c, (label, arch) in enumerate(networks(depth, alphas, filter_size, readout)):
                grams = gram_matrices(x, arch, kernels)
                for k in kernels:
                    g = grams[k] / np.mean(np.diag(grams[k]))
                    e = np.linalg.eigvalsh(0.5 * (g + g.T))[::-1]
                    eig[k][r, c, j] = e
                    cond[k][r, c, j] = e[0] / e[-1] if e[-1] > SINGULAR * n_images * e[0] else 0.0
                    fit = decay_exponent(np.concatenate([[0.0], e]), fit_ranks[0], fit_ranks[1])
                    slope[k][r, c, j] = fit["value"] if fit["value"] is not None else 0.0
                    se[k][r, c, j] = fit["standard_error"] if fit["standard_error"] is not None else 0.0
                step(f"{readout} L={depth} {label}")
    out: dict[str, Any] = {"depths": np.array(depths, dtype=float)}
    tables: dict[str, list[dict[str, Any]]] = {}
    for k in kernels:
        out |= {f"eigenvalues_{k}": eig[k], f"condition_{k}": cond[k], f"exponent_{k}": slope[k],
                f"exponent_se_{k}": se[k]}
        for r, readout in enumerate(readouts):
            tables[f"{readout}_{k}_condition"] = [
                {"L": depth, **{label: float(cond[k][r, c, j]) if cond[k][r, c, j] > 0 else "singular"
                                for c, label in enumerate(labels)}} for j, depth in enumerate(depths)]
            tables[f"{readout}_{k}_decay_exponent"] = [
                {"L": depth, **{label: f"{slope[k][r, c, j]:.3f} +- {se[k][r, c, j]:.3f}"
                                for c, label in enumerate(labels)}} for j, depth in enumerate(depths)]
    out["tables"] = tables
    out["labels"] = {"curves": labels, "depths": depths, "kernels": kernels, "readouts": readouts,
                     "fit_ranks": fit_ranks, "dataset": "scikit-learn digits (8x8), as images (N, 8, 8, 1)"}
    return out


DECLARED = {
    "depths": P.depths(max_items=8, maximum=100),
    "alphas": P.alphas(4),
    "n_images": P.Parameter("int", "Digits in the Gram matrices (a seeded subset).", minimum=8, maximum=DIGITS),
    "filter_size": P.Parameter("int", "Square filter q x q of every convolution.", minimum=1, maximum=8),
    "readouts": P.Parameter("str", "Readouts before the dense output layer (global average pooling, flatten).",
                            choices=("pool", "flatten"), list=True, max_items=2, unique=True),
    "kernels": P.Parameter("str", "Kernels analysed.", choices=("ntk", "nngp"), list=True, max_items=2, unique=True),
    "fit_ranks": P.Parameter("int", "First and last rank i of the fit of log e_i against log i.", minimum=1,
                             maximum=DIGITS, list=True, min_items=2, max_items=2, unique=True),
    "center": P.Parameter("bool", "Subtract the subset's mean image before scaling each image."),
    "seed": P.SEED,
}


def _rules(p: dict[str, Any]) -> None:
    lo, hi = p["fit_ranks"]
    if not lo < hi <= p["n_images"] or hi - lo < 2:
        raise ParameterError(f"fit_ranks must be [first, last] with first < last - 1 and last <= n_images "
                             f"({p['n_images']}), got {p['fit_ranks']}", "fit_ranks")


def cost(p: dict[str, Any]) -> dict[str, int]:
    nets = 1 + len(p["alphas"])
    pairs = sum((p["n_images"] * PIXELS) ** 2 if r == "pool" else p["n_images"] ** 2 * PIXELS for r in p["readouts"])
    window = p["filter_size"] ** 2
    curves = len(p["readouts"]) * len(p["kernels"]) * nets * len(p["depths"])
    return {"kernel_entry_layers": nets * pairs * window * sum(p["depths"]), "training_weight_steps": 0,
            "output_bytes": BYTES * (len(p["depths"]) + curves * (p["n_images"] + 3))}


EXPERIMENT = Experiment(
    "conv-spectra", "Conv Gram spectra and conditioning with and without skips (Barzilai et al. 2023)",
    conv_spectra, DECLARED,
    {"depths": [1, 2, 4, 8], "alphas": [1.0, 0.1], "n_images": 64, "filter_size": 3, "readouts": ["pool", "flatten"],
     "kernels": ["ntk", "nngp"], "fit_ranks": [4, 32], "center": True, "seed": 0}, cost,
    paper={"depths": [1, 2, 4, 8, 16, 32], "n_images": 256, "fit_ranks": [4, 128]}, rules=_rules)
