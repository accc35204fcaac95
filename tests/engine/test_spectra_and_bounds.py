import math

import numpy as np
import pytest

from engine import Architecture, circle_grid, circle_spectrum, gram_spectrum, jacobian_bounds, kernel_profile


def test_profile_matches_published_shape():
    # kernels.md section 6: alpha = 0.1, L = 5 (unnormalised): 1.0508, 0.0081, -1.0010
    profile = kernel_profile(Architecture("resnet", 5, alpha=0.1), [0.0, math.pi / 2, math.pi])
    np.testing.assert_allclose(profile, [1.0508, 0.0081, -1.0010], atol=5e-5)
    normalized = kernel_profile(Architecture("mlp", 5), circle_grid(64), normalize=True)
    assert normalized.max() == pytest.approx(1.0, abs=1e-14)


def test_spectrum_of_the_linear_limit():
    # alpha = 0: NTK = 2 sigma_w^2 q = cos(angle), so only the first harmonic, |c_1| = 1/2
    spectrum = circle_spectrum(Architecture("resnet", 3, alpha=0.0), 64, normalize=False)
    expected = np.zeros(33)
    expected[1] = 0.5
    np.testing.assert_allclose(spectrum["magnitudes"], expected, atol=1e-15)


def test_gram_spectrum():
    gram = np.array([[2.0, 1.0], [1.0, 2.0]])
    out = gram_spectrum(gram=gram)
    np.testing.assert_allclose(out["eigenvalues"], [3.0, 1.0])
    assert out["condition"] == pytest.approx(3.0)
    assert gram_spectrum(gram=np.ones((2, 2)))["condition"] == math.inf
    with pytest.raises(ValueError, match="gram"):
        gram_spectrum(gram=np.ones((2, 3)))


@pytest.mark.parametrize("depth", [1, 5, 15, 100])
def test_alpha_threshold(depth):
    out = jacobian_bounds(Architecture("resnet", depth), width=64, input_dim=2)
    threshold = (3 ** (1 - 1 / depth) - 1) / 9
    assert out["alpha_threshold"] == pytest.approx(threshold, rel=1e-12)
    at = jacobian_bounds(Architecture("resnet", depth, alpha=threshold), width=64, input_dim=2)
    assert at["ratio_to_mlp"] == pytest.approx(1.0, rel=1e-10)


def test_bounds_closed_form():
    out = jacobian_bounds(Architecture("resnet", 2, alpha=0.5, sigma_w=2.0, sigma_v=0.5), width=8, input_dim=2)
    front = 1 + 2 * math.sqrt(4)
    assert out["bound_resnet"] == pytest.approx(2 * 2.0 * front * (1 + 9 * 0.5 * 0.5 * 2.0) ** 2)
    assert out["bound_mlp"] == pytest.approx(2 * 4.0 * front * (3 * 2.0))
    mlp = jacobian_bounds(Architecture("mlp", 5), width=8, input_dim=2)
    assert mlp["ratio_to_mlp"] == 1.0 and jacobian_bounds(Architecture("resnet", 50), 8, 2)["alpha_threshold"] < 2 / 9
    with pytest.raises(ValueError, match="width"):
        jacobian_bounds(Architecture("mlp", 5), width=0, input_dim=2)
