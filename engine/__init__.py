"""reskernel's engine: kernels, networks and the smoothness analysis of ResNets.

Names are loaded on first use (PEP 562), so `import engine.architectures` stays free of
JAX (the service's API process relies on that).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names' real types for the type checker; at run time they load on first use
    from engine.analytic import KERNELS as KERNELS
    from engine.analytic import GramPlan as GramPlan
    from engine.analytic import analytic_diagonal as analytic_diagonal
    from engine.analytic import analytic_kernels as analytic_kernels
    from engine.architectures import ACTIVATIONS as ACTIVATIONS
    from engine.architectures import Architecture as Architecture
    from engine.blocked_factor import NotPositiveDefinite as NotPositiveDefinite
    from engine.blocked_factor import blocked_cho_solve as blocked_cho_solve
    from engine.blocked_factor import blocked_cholesky as blocked_cholesky
    from engine.blocked_factor import blocked_solve as blocked_solve
    from engine.blocked_regression import blocked_gram_regression as blocked_gram_regression
    from engine.blocked_regression import blocked_kernel_regression as blocked_kernel_regression
    from engine.blocked_regression import fill_gram as fill_gram
    from engine.bounds import jacobian_bounds as jacobian_bounds
    from engine.empirical import empirical_nngp as empirical_nngp
    from engine.empirical import empirical_ntk as empirical_ntk
    from engine.empirical import input_jacobian_norms as input_jacobian_norms
    from engine.networks import apply as apply
    from engine.networks import ensemble_member as ensemble_member
    from engine.networks import init_params as init_params
    from engine.nystrom import nystrom_regression as nystrom_regression
    from engine.regression import Prediction as Prediction
    from engine.regression import gram_regression as gram_regression
    from engine.regression import kernel_regression as kernel_regression
    from engine.smoothness import circle_grid as circle_grid
    from engine.smoothness import circle_interpolation as circle_interpolation
    from engine.smoothness import circle_points as circle_points
    from engine.smoothness import mu_curvature as mu_curvature
    from engine.smoothness import mu_rkhs as mu_rkhs
    from engine.smoothness import paper_target as paper_target
    from engine.smoothness import paper_train_angles as paper_train_angles
    from engine.spectra import circle_spectrum as circle_spectrum
    from engine.spectra import gram_spectrum as gram_spectrum
    from engine.spectra import kernel_profile as kernel_profile
    from engine.sphere import funk_hecke as funk_hecke
    from engine.sphere import sphere_spectrum as sphere_spectrum
    from engine.sphere_sets import sphere_grid as sphere_grid
    from engine.sphere_smoothness import mu_curvature_sphere as mu_curvature_sphere
    from engine.sphere_smoothness import mu_rkhs_sphere as mu_rkhs_sphere
    from engine.sphere_smoothness import sphere_interpolation as sphere_interpolation
    from engine.tiling import Cancelled as Cancelled
    from engine.training import lr_bound as lr_bound
    from engine.training import train as train

# Bump when a change alters any computed number: the service's cached results are keyed by it.
NUMERICS_VERSION = "5"

_EXPORTS = {
    "Architecture": "architectures",
    "ACTIVATIONS": "architectures",
    "KERNELS": "analytic",
    "GramPlan": "analytic",
    "Cancelled": "tiling",
    "analytic_kernels": "analytic",
    "analytic_diagonal": "analytic",
    "Prediction": "regression",
    "kernel_regression": "regression",
    "nystrom_regression": "nystrom",
    "gram_regression": "regression",
    "blocked_cholesky": "blocked_factor",
    "blocked_solve": "blocked_factor",
    "blocked_cho_solve": "blocked_factor",
    "NotPositiveDefinite": "blocked_factor",
    "blocked_gram_regression": "blocked_regression",
    "blocked_kernel_regression": "blocked_regression",
    "fill_gram": "blocked_regression",
    "mu_curvature": "smoothness",
    "mu_rkhs": "smoothness",
    "circle_interpolation": "smoothness",
    "circle_grid": "smoothness",
    "circle_points": "smoothness",
    "paper_target": "smoothness",
    "paper_train_angles": "smoothness",
    "kernel_profile": "spectra",
    "circle_spectrum": "spectra",
    "gram_spectrum": "spectra",
    "sphere_spectrum": "sphere",
    "funk_hecke": "sphere",
    "sphere_grid": "sphere_sets",
    "sphere_interpolation": "sphere_smoothness",
    "mu_curvature_sphere": "sphere_smoothness",
    "mu_rkhs_sphere": "sphere_smoothness",
    "jacobian_bounds": "bounds",
    "init_params": "networks",
    "ensemble_member": "networks",
    "apply": "networks",
    "empirical_ntk": "empirical",
    "empirical_nngp": "empirical",
    "input_jacobian_norms": "empirical",
    "train": "training",
    "lr_bound": "training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(f"engine.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
