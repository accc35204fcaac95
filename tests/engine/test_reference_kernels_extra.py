"""Analytic kernels with biases, sigma_v != 1 and every activation against neural-tangents.

Reference: tests/data/kernels_neural_tangents_extra.json, written by neural-tangents 0.6.5
(tests/data/make_reference_kernels.py, run by hand in its own venv). tanh, softplus and
sigmoid are its Gauss-Hermite quadrature, converged to each case's recorded `accuracy`.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from engine import ACTIVATIONS, Architecture, analytic_kernels

DATA = json.loads((Path(__file__).parents[1] / "data" / "kernels_neural_tangents_extra.json").read_text())
CASES = DATA["cases"]


def rel_err(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


def test_the_cases_cover_every_activation_with_biases_and_sigma_v():
    for kind in ("resnet", "mlp"):
        covered = {c["architecture"]["activation"] for c in CASES
                   if c["architecture"]["kind"] == kind and c["architecture"]["sigma_b"] > 0}
        assert covered == set(ACTIVATIONS), kind
    assert any(c["architecture"]["kind"] == "resnet" and c["architecture"]["sigma_v"] != 1 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_against_neural_tangents(case):
    arch = Architecture.from_dict(case["architecture"])
    got = analytic_kernels(case["x1"], case["x2"], arch=arch)
    tolerance = max(1e-6, 100 * case["accuracy"])
    for name in ("nngp", "ntk"):
        assert rel_err(got[name], case[name]) < tolerance, (name, rel_err(got[name], case[name]))
