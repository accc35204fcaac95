"""The paper's experiments as named, parameterised computations that return plain data
(one module per experiment; `registry` for the parameters, scales and cost estimates).

`run(name, scale, overrides)` runs one; `EXPERIMENTS[name]` describes it. Importing this
package does not import JAX (the service's API process lists the experiments); each
experiment imports the engine when it runs. Setups: shared/docs/kernels.md section 6.
"""

from __future__ import annotations

from typing import Any

from engine.experiments import (
    beyond_ntk,
    bounds,
    conv_spectra,
    digits,
    finite_vs_infinite,
    interpolation,
    kernel_shapes,
    learning_curves,
    lowest_loss,
    nngp_vs_ntk,
    rkhs_vs_curvature,
    smoothness_generalization,
    spectra,
    spiky_or_stable,
)
from engine.experiments.common import PUBLISHED_MU, PUBLISHED_TABLE1, Progress, architectures
from engine.experiments.registry import COST_KEYS, SCALES, Experiment, run_experiment

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    *(m.EXPERIMENT for m in (kernel_shapes, interpolation, finite_vs_infinite, beyond_ntk)), lowest_loss.FIG4,
    lowest_loss.FIG5, *(m.EXPERIMENT for m in (bounds, spectra, digits, rkhs_vs_curvature, spiky_or_stable,
                                                learning_curves, conv_spectra, nngp_vs_ntk,
                                                smoothness_generalization)))}

__all__ = ["COST_KEYS", "EXPERIMENTS", "PUBLISHED_MU", "PUBLISHED_TABLE1", "SCALES", "Experiment", "architectures",
           "run"]


def run(name: str, scale: str = "quick", overrides: dict[str, Any] | None = None,
        progress: Progress | None = None) -> dict[str, Any]:
    """Run one experiment; the result carries its name, scale and parameters."""
    return run_experiment(EXPERIMENTS, name, scale, overrides, progress)
