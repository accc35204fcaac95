"""engine.profile: the circle's and the sphere's kernel as one row of distinct correlations, layer by layer,
with progress; and the cost model's charge for it (service.operations.spectrum), which counts the same
entries and names the paths the engine takes."""

import numpy as np
import pytest

from engine import Architecture, analytic_kernels, circle_spectrum, dual_plan, profile
from engine.smoothness import circle_grid, circle_points
from engine.spectra import kernel_profile
from service.operations import cost as cost_module
from service.operations.spectrum import SpectrumRequest, cost


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_the_profile_is_the_gram_row(activation):
    """The same numbers as analytic_kernels' row of the anchor against the circle's points."""
    arch = Architecture("resnet", 6, activation, alpha=0.6)
    a = np.linspace(-3.0, 3.0, 41)
    anchor = np.array([[1.0, 0.0]])
    row = analytic_kernels(anchor, np.concatenate([anchor, circle_points(a)]), arch=arch, kernels=("ntk",))["ntk"][0]
    np.testing.assert_allclose(kernel_profile(arch, a), row[1:], rtol=1e-13)
    np.testing.assert_allclose(kernel_profile(arch, a, normalize=True), row[1:] / row[0], rtol=1e-13)


def test_progress_is_reported_per_layer():
    reports = []
    arch = Architecture("resnet", 30, "tanh", alpha=0.3)
    out = circle_spectrum(arch, 64, progress=lambda done, depth: reports.append((done, depth)))
    assert reports == [(layer, 30) for layer in range(1, 31)]
    deep = []
    circle_spectrum(Architecture("resnet", 450, "tanh", alpha=0.05), 16, progress=lambda d, n: deep.append(d))
    assert deep == list(range(3, 451, 3)) and len(deep) <= profile.REPORTS  # every ceil(450 / 200) = 3 layers
    assert out["profile"][np.argmin(np.abs(out["angles"]))] == 1.0


def test_the_cost_model_counts_the_entries_the_engine_computes():
    """Distinct correlations of the grid (cos is even), padded to rows: the model's term and the engine's."""
    for n_grid in (64, 1024, 65536):
        distinct = np.unique(np.cos(np.abs(circle_grid(n_grid)))).size
        assert distinct == n_grid // 2 + 1
        assert cost_module.PROFILE_ROW == profile.ROW
        request = SpectrumRequest.model_validate({"architecture": {"kind": "resnet", "depth": 3}, "n_grid": n_grid})
        (term,) = [t for t in cost(request).compute if t.formula.startswith("profile: ")]
        assert term.formula.startswith(f"profile: {profile.entries(distinct)} distinct correlations")


def test_the_deep_tanh_spectrum_is_predicted_from_the_engines_paths():
    """Depth 1000, n_grid 65536: the model charges each layer's path as engine.dual_plan plans it (the
    engine's own decision, tests/engine/test_dual_plan.py), in seconds now, not the hour of the 16-row tiles; the
    variances that outgrow the interpolants (alpha = 1: hundreds) keep the per-entry quadrature and are refused."""
    for alpha, admitted in ((0.1, True), (1.0, False)):
        arch = {"kind": "resnet", "depth": 1000, "activation": "tanh", "alpha": alpha}
        body = {"architecture": arch, "n_grid": 65536}
        request = SpectrumRequest.model_validate(body)
        (term,) = [t for t in cost(request).compute if t.formula.startswith("profile: ")]
        paths = dual_plan.layer_methods(Architecture("resnet", 1000, "tanh", alpha=alpha), 0.5, 0.5)
        factor = sum(n * {"chebyshev 32": cost_module.ACTIVATION_FACTOR["tanh"],
                          "chebyshev 128": cost_module.CHEBYSHEV_128_FACTOR["tanh"],
                          "quadrature": cost_module.FALLBACK_FACTOR["tanh"]}[p] for p, n in paths.items())
        assert term.amount == pytest.approx(profile.entries(32769) * factor / cost_module.KERNEL_ENTRY_LAYERS_PER_S)
        assert (cost(request).total("compute") < 3600) == admitted
