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
