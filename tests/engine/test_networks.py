"""Initialisations against their definitions: sample statistics of wide layers (Glorot's
std sqrt(2 / (fan_in + fan_out)), torch.nn.Linear's uniform bounds)."""

import math

import numpy as np
import pytest

from engine import Architecture
from engine.empirical import empirical_ntk
from engine.networks import init_params, scales


def test_xavier_is_glorot_gaussian():
    arch = Architecture("resnet", 2, alpha=0.5, sigma_v=1.5)
    n, d = 500, 2
    params = init_params(arch, n, d, seed=0, parametrization="xavier")
    expected = {"U": math.sqrt(2 / (d + n)), "W": 1 / math.sqrt(n), "V": 1.5 / math.sqrt(n),
                "w": math.sqrt(2 / (n + 1))}
    for name, std in expected.items():
        assert np.std(params[name]) == pytest.approx(std, rel=0.05), name  # >= 1000 samples each
    assert math.sqrt(2 / (d + n)) == pytest.approx(0.063, abs=5e-4)  # the paper's first layer
    assert scales(arch, n, d, "xavier") == {"U": 1.0, "W": 1.0, "V": 0.5, "w": 1.0}


def test_pytorch_is_uniform_with_every_bias():
    n, d = 400, 1
    for arch in (Architecture("resnet", 2, alpha=0.1), Architecture("mlp", 2)):
        params = init_params(arch, n, d, seed=1, parametrization="pytorch")
        fan_in = {"U": d, "W1": d, "W": n, "V": n, "w": n, "bU": d, "bV": n, "b_out": n}
        assert {"b", "b_out"} <= set(params) and ({"bU", "bV"} <= set(params)) == (arch.kind == "resnet")
        for name, value in params.items():
            rows = [(value[0], d), (value[1:], n)] if (name == "b" and arch.kind == "mlp") else \
                [(value, n if name == "b" else fan_in[name])]
            for sample, fan in rows:
                bound = 1 / math.sqrt(fan)
                assert np.max(np.abs(sample)) <= bound, name
                if np.size(sample) >= 300:
                    assert np.std(sample) == pytest.approx(bound / math.sqrt(3), rel=0.1), name


@pytest.mark.parametrize("arch", [Architecture("resnet", 2, alpha=0.3), Architecture("mlp", 2)], ids=str)
def test_pytorch_biases_in_the_structured_ntk(arch):
    """The U and V biases of the "pytorch" ResNet in the structured NTK (and so in training's
    gradients) against autodiff Jacobians, on 1-D inputs (the paper's Fig. 5)."""
    params = init_params(arch, 12, 1, seed=2, parametrization="pytorch")
    x = np.linspace(-np.pi, np.pi, 5)[:, None]
    fast = empirical_ntk(arch, params, x, parametrization="pytorch")
    reference = empirical_ntk(arch, params, x, parametrization="pytorch", method="jacobian")
    assert np.max(np.abs(fast - reference)) <= 1e-10 * np.max(np.abs(reference))


@pytest.mark.parametrize("parametrization", ["ntk", "pytorch"])
def test_ensemble_members_are_the_ensembles_networks(parametrization):
    from engine.networks import ensemble_member, ensemble_members

    arch = Architecture("mlp", 3, sigma_b=0.3)
    ensemble = init_params(arch, 8, 2, 7, parametrization, n_init=3)
    members = list(ensemble_members(arch, 8, 2, 7, 3, parametrization))
    assert len(members) == 3
    for i, member in enumerate(members):
        expected = ensemble_member(ensemble, i)
        assert member.keys() == expected.keys()
        for name, value in member.items():
            np.testing.assert_array_equal(value, np.asarray(expected[name]))
