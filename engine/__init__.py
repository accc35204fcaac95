"""reskernel's engine: kernels, networks and the smoothness analysis of ResNets.

Names are loaded on first use (PEP 562), so `import engine.architectures` stays free of
JAX (the service's API process relies on that).
"""

from importlib import import_module

# Bump when a change alters any computed number: the service's cached results are keyed by it.
NUMERICS_VERSION = "3"

_EXPORTS = {
    "Architecture": "architectures",
    "ACTIVATIONS": "architectures",
    "KERNELS": "analytic",
    "Cancelled": "analytic",
    "analytic_kernels": "analytic",
    "analytic_diagonal": "analytic",
    "Prediction": "regression",
    "kernel_regression": "regression",
    "gram_regression": "regression",
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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(f"engine.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
