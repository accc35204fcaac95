"""The sphere experiments and smoothness-generalization through the Python client (conv-spectra goes
the same way): arrays come back as numpy, equal to the engine's run of the same parameters."""

import numpy as np

from engine.experiments import run
from service.client import Client


def test_client_runs_the_new_experiments(server):
    cases = {"spiky-or-stable": ({"depths": [1, 3], "alphas": [], "gammas": [0.5], "k_max": 8, "n_angles": 33,
                                  "kernels": ["nngp"]}, "half_width_nngp"),
             "learning-curves": ({"n_trains": [4, 8], "depth": 1, "alphas": [], "kernels": ["nngp"],
                                  "sphere_dims": [3], "target_degrees": [1], "target_powers": [1.0], "draws": 1,
                                  "n_test": 10, "k_max": 8}, "theory_nngp"),
             "nngp-vs-ntk": ({"depths": [1], "alphas": [], "n_trains": [6], "n_grid": 64, "sphere_dims": [3],
                              "n_points": 8, "sphere_grid": 64, "sphere_bandwidth": 0.4}, "mu_rkhs"),
             "smoothness-generalization": ({"depths": [1], "alphas": [], "kernels": ["nngp"], "n_train": 50,
                                            "n_test": 10, "splits": 2, "gradient_points": 2, "k_max": 8,
                                            "conv_depths": [1], "conv_alphas": [], "conv_n_train": 10,
                                            "conv_n_test": 2, "conv_gradient_points": 1, "sphere_n_train": 20,
                                            "sphere_n_test": 10, "width": 8, "n_init": 1, "steps": 3,
                                            "lr_fraction": 0.1, "net_depths": [1], "net_alphas": [],
                                            "bootstrap": 10}, "digits_nngp_mu")}
    with Client(server) as rk:
        for name, (parameters, array) in cases.items():
            result = rk.run(f"experiments/{name}", {"parameters": parameters})
            assert isinstance(result[array], np.ndarray), name
            np.testing.assert_allclose(result[array], run(name, "quick", parameters)[array], rtol=1e-12, atol=1e-15)
            assert result["labels"]["experiment"] == name
