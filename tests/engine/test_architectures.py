import pytest

from engine import ACTIVATIONS, Architecture


def test_round_trip_and_defaults():
    arch = Architecture.from_dict({"kind": "resnet", "depth": 5, "alpha": 0.1})
    assert arch.to_dict() == {"kind": "resnet", "depth": 5, "activation": "relu", "sigma_w": 1.0,
                              "sigma_v": 1.0, "alpha": 0.1, "sigma_b": 0.0}
    assert Architecture.from_dict(arch.to_dict()) == arch
    assert hash(arch) == hash(Architecture("resnet", 5, alpha=0.1))


@pytest.mark.parametrize(("spec", "field"), [
    ({"kind": "cnn", "depth": 2}, "kind"),
    ({"kind": "mlp", "depth": 0}, "depth"),
    ({"kind": "mlp", "depth": 2.5}, "depth"),
    ({"kind": "mlp", "depth": True}, "depth"),
    ({"kind": "mlp", "depth": 2, "activation": "swish"}, "activation"),
    ({"kind": "mlp", "depth": 2, "sigma_w": -1.0}, "sigma_w"),
    ({"kind": "mlp", "depth": 2, "sigma_w": 0.0}, "sigma_w"),
    ({"kind": "mlp", "depth": 2, "sigma_v": float("nan")}, "sigma_v"),
    ({"kind": "resnet", "depth": 2, "alpha": -0.1}, "alpha"),
    ({"kind": "resnet", "depth": 2, "sigma_b": "1"}, "sigma_b"),
    ({"kind": "resnet", "depth": 2, "width": 3}, "width"),
    ({"kind": "resnet"}, "depth"),
])
def test_bad_specs_name_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        Architecture.from_dict(spec)


def test_activation_list():
    assert {"relu", "erf", "tanh", "gelu", "softplus", "sigmoid", "linear"} == set(ACTIVATIONS)


@pytest.mark.parametrize(("spec", "match"), [
    ({"kind": "resnet", "depth": 2, "alpha": 1e200}, r"alpha must be >= 0 and <= 100, got 1e\+200"),
    ({"kind": "mlp", "depth": 2, "sigma_w": 101.0}, "sigma_w must be > 0 and <= 100"),
    ({"kind": "mlp", "depth": 10_001}, r"depth must be an integer in \[1, 10000\]"),
    ({"kind": "resnet", "depth": 500, "alpha": 3.0}, "would overflow float64 at layer 402 .* use depth <= 401"),
    ({"kind": "mlp", "depth": 1000}, "would underflow float64 at layer 997 .* use depth <= 996"),
])
def test_numbers_are_bounded(spec, match):
    with pytest.raises(ValueError, match=match):
        Architecture.from_dict(spec)


def test_the_named_layer_is_where_the_kernel_leaves_float64():
    """The refusal's layer against the engine's own kernels (JAX): one layer less is
    accepted and its NTK of a unit input is already beyond 1e299 (NNGP below 1e-299)."""
    import numpy as np

    from engine import analytic_diagonal

    unit = np.array([[1.0, 1.0]])  # x.x/d = 1
    big = analytic_diagonal(unit, arch=Architecture("resnet", 401, alpha=3.0))["ntk"][0]
    small = analytic_diagonal(unit, arch=Architecture("mlp", 996))["nngp"][0]
    assert 1e299 < big <= 1e300 and 1e-300 <= small < 1e-299
