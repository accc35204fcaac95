"""engine.margin_bound: the BFT chains reproduce the networks (`engine.networks.apply`), the class
norms equal those of the explicitly built stacked / block-diagonal matrices (scipy), the margins a
loop's, and the bound its formula evaluated by hand on a small case."""

import math

import numpy as np
import pytest
from scipy.linalg import block_diag

from engine import Architecture, init_params
from engine.margin_bound import chain, chain_apply, class_norms, margins, spectral_margin_bound
from engine.networks import apply


def unit(rows, d, seed):
    x = np.random.default_rng(seed).standard_normal((rows, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("arch", [Architecture("mlp", 1), Architecture("mlp", 4), Architecture("resnet", 1, alpha=0.7),
                                  Architecture("resnet", 3, alpha=0.2), Architecture("resnet", 2, alpha=0.0)])
@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
def test_the_chain_is_the_network(arch, parametrization):
    params = init_params(arch, 12, 5, 3, parametrization)
    matrices = chain(arch, params, 5, parametrization)
    assert len(matrices) == arch.depth + 1
    rows = 12 if arch.kind == "mlp" else 24
    assert matrices[0].shape == (rows, 5) and matrices[-1].shape == (1, rows)
    x = unit(9, 5, 4)
    want = np.asarray(apply(arch, params, x, parametrization))
    np.testing.assert_allclose(chain_apply(arch, matrices, x)[:, 0], want, rtol=1e-10, atol=1e-12)


def test_networks_with_biases_are_refused():
    arch = Architecture("mlp", 2, sigma_b=0.1)
    with pytest.raises(ValueError, match="without biases"):
        chain(arch, init_params(arch, 4, 3, 0), 3)


@pytest.mark.parametrize("arch", [Architecture("mlp", 3), Architecture("resnet", 2, alpha=0.5)])
def test_class_norms_are_those_of_the_whole_chain(arch):
    """The C class networks as one chain: the first matrices stacked, the others block-diagonal."""
    trained = [chain(arch, init_params(arch, 6, 4, seed), 4) for seed in (1, 2, 3)]
    initial = [chain(arch, init_params(arch, 6, 4, seed), 4) for seed in (11, 12, 13)]
    norms = class_norms(trained, initial)
    whole = [np.vstack([t[0] for t in trained])] + [block_diag(*[t[i] for t in trained])
                                                    for i in range(1, len(trained[0]))]
    start = [np.vstack([m[0] for m in initial])] + [block_diag(*[m[i] for m in initial])
                                                    for i in range(1, len(initial[0]))]
    np.testing.assert_allclose(norms["spectral"], [np.linalg.svd(a, compute_uv=False)[0] for a in whole], rtol=1e-10)
    distance = [sum(np.linalg.norm(row) for row in (a - m)) for a, m in zip(whole, start, strict=True)]
    np.testing.assert_allclose(norms["distance"], distance, rtol=1e-10)
    assert norms["max_dimension"] == max(max(a.shape) for a in whole)


def test_margins_are_the_gap_to_the_best_other_class():
    outputs = np.random.default_rng(5).standard_normal((12, 4))
    labels = np.random.default_rng(6).integers(0, 4, 12)
    want = [outputs[i, y] - max(outputs[i, k] for k in range(4) if k != y) for i, y in enumerate(labels)]
    np.testing.assert_allclose(margins(outputs, labels), want, rtol=1e-15)


def test_the_bound_is_its_formula():
    """A hand-built case: two layers of known norms, ten training points of known margins."""
    norms = {"spectral": np.array([2.0, 3.0]), "distance": np.array([1.0, 0.5]), "max_dimension": 7}
    x = unit(10, 3, 7) * 2.0  # ||X||_2 = sqrt(10 x 4)
    labels = np.arange(10) % 2
    outputs = np.zeros((10, 2))
    outputs[np.arange(10), labels] = np.linspace(-0.5, 4.0, 10)  # margins: the same values
    terms = spectral_margin_bound(norms, x, outputs, labels, margin_quantile=0.25, delta=0.1)
    positive = np.linspace(-0.5, 4.0, 10)[np.linspace(-0.5, 4.0, 10) > 0]
    gamma = float(np.quantile(positive, 0.25))
    r_a = 6.0 * ((1.0 / 2.0) ** (2 / 3) + (0.5 / 3.0) ** (2 / 3)) ** 1.5
    complexity = 8 / 10 + 48 * math.log(10) * math.sqrt(math.log(2 * 49)) * math.sqrt(40.0) * r_a / (gamma * 10)
    hat_r = float(np.mean(np.linspace(-0.5, 4.0, 10) <= gamma))
    assert terms["gamma"] == pytest.approx(gamma) and terms["r_a"] == pytest.approx(r_a, rel=1e-12)
    assert terms["lipschitz"] == pytest.approx(6.0) and terms["train_margin_error"] == pytest.approx(hat_r)
    assert terms["complexity"] == pytest.approx(complexity, rel=1e-12)
    assert terms["bound"] == pytest.approx(hat_r + complexity + 3 * math.sqrt(math.log(2 / 0.1) / 20), rel=1e-12)
    wrong = np.zeros((10, 2))
    wrong[np.arange(10), 1 - labels] = 1.0
    with pytest.raises(ValueError, match="no training point is classified correctly"):
        spectral_margin_bound(norms, x, wrong, labels)
