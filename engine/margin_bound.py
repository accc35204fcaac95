"""The spectrally-normalised margin bound of Bartlett, Foster & Telgarsky (NeurIPS 2017,
arXiv:1706.08498), evaluated for a classifier made of C scalar networks, one per class.

BFT bound networks F_A(x) = sigma_L(A_L sigma_(L-1)(... sigma_1(A_1 x))), each sigma_i rho_i-Lipschitz
with sigma_i(0) = 0. The networks of `engine.networks` (no biases) are such chains with rho_i = 1
(`chain`): the MLP's matrices c W (ReLU after each, none after the readout); a ResNet's blocks
h <- h + V' phi(W' h) fused as z_1 = sigma([I; W'_1] U' x), z_l = sigma([I; W'_l][I, V'_(l-1)] z_(l-1)),
f = w' [I, V'_L] z_L, sigma = identity on the first n coordinates and ReLU on the last n (every primed
matrix with its multiplier, alpha in V'). C class networks F = (f_1, ..., f_C) are one chain whose
first matrix stacks the classes' first matrices and whose other matrices are block-diagonal in them.

With s_i = ||A_i||_2 (spectral norm), b_i = ||(A_i - M_i)^T||_(2,1) (the sum of the 2-norms of the
rows of A_i - M_i), M_i the same network's matrices at initialisation (drawn independently of the data),
R_A = prod_i s_i (sum_i (b_i / s_i)^(2/3))^(3/2), W the largest dimension of any A_i, ||X||_2 =
sqrt(sum_j ||x_j||^2) over the n training points, margins m_j = F(x_j)_(y_j) - max_(k != y_j) F(x_j)_k and
hat R_gamma the fraction of training points with m_j <= gamma, `bound` is

    hat R_gamma + 8 / n + 48 ln(n) sqrt(ln(2 W^2)) ||X||_2 R_A / (gamma n) + 3 sqrt(ln(2 / delta) / (2 n)):

the margin bound Pr[argmax F(x) != y] <= hat R_gamma + 2 Rad(F_gamma) + 3 sqrt(ln(2 / delta) / (2 n))
(Mohri, Rostamizadeh & Talwalkar, Foundations of ML, 2nd ed., Thm 3.3, as BFT's Lemma 3.1 uses it),
Dudley's entropy integral Rad <= 4 a / sqrt(n) + (12 / n) int_a^sqrt(n) sqrt(ln N(eps)) d eps at a =
1 / sqrt(n) (BFT, appendix), and BFT's covering bound ln N(H_X, eps) <= ||X||_2^2 ln(2 W^2) R_A^2 / eps^2
for the network's outputs (their Theorem 3.3), the ramp loss of margin gamma being 2 / gamma-Lipschitz
in them. gamma and the s_i, b_i are the trained network's own; BFT's Theorem 1.1 pays for choosing them
after training with a union bound, which only adds to the bound, so `bound` is a lower estimate of what
that theorem certifies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from engine.architectures import Architecture
from engine.networks import scales

DUDLEY, COVERING_TO_MARGIN, MARGIN_FACTOR = 12.0, 2.0, 2.0  # the constants: 48 = 2 x 12 x 2


def chain(arch: Architecture, params: Mapping[str, ArrayLike], input_dim: int,
          parametrization: str = "ntk") -> list[np.ndarray]:
    """The matrices A_1 .. A_(L+1) of one scalar network as a BFT chain (module docstring), multipliers
    included: the MLP's (n, d), (n, n) x (L - 1), (1, n); the ResNet's (2n, d), (2n, 2n) x (L - 1), (1, 2n).
    Networks with biases are refused (BFT's chain has none)."""
    if any(name.startswith("b") for name in params):
        raise ValueError("the margin bound is for networks without biases (sigma_b = 0, not 'pytorch')")
    p = {name: np.asarray(value, dtype=np.float64) for name, value in params.items()}
    width = p["w"].shape[-1]
    c = scales(arch, width, input_dim, parametrization)
    if arch.kind == "mlp":
        return [c["W1"] * p["W1"], *(c["W"] * w for w in p["W"]), c["w"] * p["w"][None, :]]
    eye = np.eye(width)
    up = [np.vstack([eye, c["W"] * w]) for w in p["W"]]  # h -> (h, W' h)
    down = [np.hstack([eye, c["V"] * v]) for v in p["V"]]  # (h, a) -> h + V' a
    out = [up[0] @ (c["U"] * p["U"])]
    out += [up[layer] @ down[layer - 1] for layer in range(1, arch.depth)]
    return [*out, c["w"] * p["w"][None, :] @ down[-1]]


def chain_apply(arch: Architecture, matrices: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The chain's output for x (N, d) -> (N, rows of the last matrix): ReLU after every matrix but the
    last (the ResNet's: on the second half of the coordinates only)."""
    h = x.T
    for a in matrices[:-1]:
        h = a @ h
        half = h.shape[0] // 2 if arch.kind == "resnet" else 0
        h[half:] = np.maximum(h[half:], 0.0)
    return (matrices[-1] @ h).T


def class_norms(trained: list[list[np.ndarray]], initial: list[list[np.ndarray]]) -> dict[str, Any]:
    """Spectral norms s_i and (2,1) distances b_i of the chain of C class networks (module docstring):
    trained[c], initial[c] the chains of class c. Returns {"spectral": (L + 1,), "distance": (L + 1,),
    "max_dimension": W}."""
    layers = len(trained[0])
    spectral, distance = np.zeros(layers), np.zeros(layers)
    for i in range(layers):
        blocks = [chain[i] for chain in trained]
        # the stacked first matrix; every later one is block-diagonal: its norm is its largest block's
        spectral[i] = (np.linalg.norm(np.vstack(blocks), 2) if i == 0
                       else max(np.linalg.norm(b, 2) for b in blocks))
        distance[i] = sum(float(np.sum(np.linalg.norm(b - m[i], axis=1))) for b, m in zip(blocks, initial, strict=True))
    rows = sum(b.shape[0] for b in (chain[0] for chain in trained))
    widest = max(max(a.shape) for a in trained[0][1:]) * len(trained)
    return {"spectral": spectral, "distance": distance, "max_dimension": int(max(rows, widest, trained[0][0].shape[1]))}


def margins(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """F(x_j)_(y_j) - max_(k != y_j) F(x_j)_k: outputs (n, C), labels (n,) ints -> (n,)."""
    n = len(labels)
    own = outputs[np.arange(n), labels]
    others = outputs.copy()
    others[np.arange(n), labels] = -np.inf
    return own - others.max(axis=1)


def spectral_margin_bound(norms: dict[str, Any], x_train: np.ndarray, outputs: np.ndarray, labels: np.ndarray, *,
                          margin_quantile: float = 0.1, delta: float = 0.05) -> dict[str, float]:
    """The bound of the module docstring for a classifier with the chain norms `norms` (`class_norms`),
    its training inputs x_train (n, d), outputs (n, C) and labels (n,). gamma: the `margin_quantile`
    quantile of the margins of the correctly classified training points (ValueError when none is).
    Returns every term: bound, train_margin_error (hat R_gamma), complexity, confidence, gamma, r_a,
    lipschitz (prod s_i), x_norm (||X||_2), max_dimension (W), n, delta."""
    n = len(labels)
    m = margins(outputs, labels)
    if not np.any(m > 0):
        raise ValueError("no training point is classified correctly: the margin gamma is undefined")
    gamma = float(np.quantile(m[m > 0], margin_quantile))
    s, b = norms["spectral"], norms["distance"]
    lipschitz = float(np.prod(s))
    r_a = lipschitz * float(np.sum((b / s) ** (2 / 3))) ** 1.5
    x_norm = float(np.linalg.norm(x_train))
    w = norms["max_dimension"]
    constant = MARGIN_FACTOR * DUDLEY * COVERING_TO_MARGIN
    complexity = 8 / n + constant * math.log(n) * math.sqrt(math.log(2 * w * w)) * x_norm * r_a / (gamma * n)
    confidence = 3 * math.sqrt(math.log(2 / delta) / (2 * n))
    train_error = float(np.mean(m <= gamma))
    return {"bound": train_error + complexity + confidence, "train_margin_error": train_error,
            "complexity": complexity, "confidence": confidence, "gamma": gamma, "r_a": r_a, "lipschitz": lipschitz,
            "x_norm": x_norm, "max_dimension": float(w), "n": float(n), "delta": delta}
