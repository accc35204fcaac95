"""POST /v1/empirical-kernels and POST /v1/train with the convolutional kinds, through HTTP: the mean
empirical NTK of wide conv nets against POST /v1/kernels' analytic NTK (Monte Carlo), training
(the loss falls, lr "auto" from the conv step bound), the cost model, and a problem+json naming
the field for what the finite conv nets do not take.

Monte Carlo tolerance: one network's NTK is off its limit by a few percent at these widths (relative
Frobenius error, ~1/sqrt(width) fluctuation plus an O(1/width) bias; tests/engine/test_conv_networks.py
measured 2-16% at width 256), so the mean of N_INIT networks is within ~sqrt(mean e_i^2 / N_INIT) of
it (the test measures that spread from its own networks and requires it small). TOL = 0.15 is over
3 of those spreads, and under what a real bug costs: without the 1/|window| of the conv fan-in the
kernel is off by > 100%, with zero padding in place of circular by 20-50%, and the NTK of a dense
network in place of the conv net's by far more (checked below: the kernels of another architecture
are further than TOL).
"""

import math

import numpy as np
import pytest
from test_conv_api import assert_problem

from engine.conv.architecture import PARAMETRIZATIONS
from service.operations.empirical_kernels import EmpiricalKernelsRequest
from service.operations.empirical_kernels import cost as empirical_cost
from service.operations.train import TrainRequest
from service.operations.train import cost as train_cost

pytestmark = pytest.mark.anyio
N_INIT, TOL = 8, 0.15
IMAGE_RESNET = {"kind": "conv-resnet", "depth": 2, "alpha": 0.5, "filter_size": [3, 3], "readout": "pool"}
SIGNAL_CNN = {"kind": "cnn", "depth": 2, "filter_size": [3], "readout": "flatten", "sigma_b": 0.3}
# (architecture, inputs (N, *S, C), width)
MC_CASES = {"image-conv-resnet": (IMAGE_RESNET, (3, 4, 4, 1), 256), "signal-cnn": (SIGNAL_CNN, (3, 6, 2), 512)}


def inputs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


async def analytic_ntk(api, x, architecture):
    response = await api.post("/v1/kernels", json={"x": x.tolist(), "architecture": architecture, "kernels": ["ntk"]})
    assert response.status_code == 200, response.text
    return np.array(response.json()["ntk"])


@pytest.mark.parametrize("name", MC_CASES)
async def test_mean_empirical_ntk_converges_to_the_analytic_ntk(api, name):
    architecture, shape, width = MC_CASES[name]
    x = inputs(shape)
    body = {"architecture": architecture, "width": width, "n_init": N_INIT, "seed": 4, "x": x.tolist(),
            "kernels": ["ntk", "nngp"]}
    response = await api.post("/v1/empirical-kernels", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    ntks = np.array(result["ntk"])
    assert ntks.shape == (N_INIT, 3, 3) and result["shape"] == [3, 3]
    np.testing.assert_allclose(result["ntk_mean"], ntks.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ntks, np.swapaxes(ntks, 1, 2), rtol=1e-10)  # x2 null: K(x, x)
    assert np.array(result["nngp"]).shape == (3, 3)

    analytic = await analytic_ntk(api, x, architecture)
    norm = np.linalg.norm(analytic)
    each = np.array([np.linalg.norm(k - analytic) / norm for k in ntks])
    spread = math.sqrt(np.mean(each**2) / N_INIT)  # the mean's standard deviation, bias included
    error = np.linalg.norm(ntks.mean(0) - analytic) / norm
    print(f"{name}: error {error:.4f}, networks {np.round(each, 3)}, spread {spread:.4f}")
    assert spread <= TOL / 3, f"the networks' spread {spread:.3f} no longer justifies TOL"
    assert error <= TOL, f"{name}: mean of {N_INIT} empirical NTKs off the analytic NTK by {error:.3f} (relative)"
    # the tolerance tells architectures apart: another depth's (or readout's) analytic NTK is further away
    other = {**architecture, "depth": 4} if architecture["kind"] == "conv-resnet" else {**architecture,
                                                                                          "readout": "pool"}
    assert np.linalg.norm(ntks.mean(0) - await analytic_ntk(api, x, other)) / norm > TOL


async def test_x2_and_the_job_id(api):
    x, x2 = inputs((3, 6, 2)), inputs((2, 6, 2), seed=1)
    body = {"architecture": SIGNAL_CNN, "width": 16, "n_init": 2, "x": x.tolist(), "x2": x2.tolist()}
    first = await api.post("/v1/empirical-kernels", json=body)
    assert first.status_code == 200, first.text
    assert np.array(first.json()["ntk"]).shape == (2, 3, 2)
    # the same numbers as images (6 x 1 pixels, a 3 x 1 filter) are another request
    images = {**body, "architecture": {**SIGNAL_CNN, "filter_size": [3, 1]}, "x": x.reshape(3, 6, 1, 2).tolist(),
              "x2": x2.reshape(2, 6, 1, 2).tolist()}
    second = await api.post("/v1/empirical-kernels", json=images)
    assert second.status_code == 200, second.text
    assert first.headers["etag"] != second.headers["etag"]
    # circular padding along an axis of length 1 changes nothing: the same kernels
    np.testing.assert_allclose(second.json()["ntk"], first.json()["ntk"], rtol=1e-10)


@pytest.mark.parametrize("architecture", [IMAGE_RESNET, {**IMAGE_RESNET, "kind": "cnn", "readout": "flatten"}],
                         ids=["conv-resnet", "cnn"])
async def test_training_a_conv_net_lowers_the_loss(api, architecture):
    x = inputs((8, 4, 4, 1))
    y = np.tanh(x.mean(axis=(1, 2, 3)) * 3)
    body = {"architecture": architecture, "width": 32, "x_train": x.tolist(), "y_train": y.tolist(),
            "x_test": x[:2].tolist(), "steps": 60, "seed": 2, "return_ntk": True, "track_ntk": True}
    response = await api.post("/v1/train", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    loss = np.array(result["loss"])[0]
    assert loss[-1] < 0.5 * loss[0], loss
    # lr "auto": half the bound 2 / (lambda_min + lambda_max) of the initial network's empirical NTK on x_train,
    # which the response returns (ntk_initial): the bound recomputed from it, not from the engine
    eig = np.linalg.eigvalsh(np.array(result["ntk_initial"])[0])
    assert result["lr_bound"] == pytest.approx(2 / (max(eig[0], 0) + eig[-1]), rel=1e-8)
    assert result["lr"] == pytest.approx(result["lr_bound"] / 2, rel=1e-12)
    assert np.array(result["ntk_final"]).shape == (1, 8, 8) and np.array(result["ntk_drift"]).shape == (1, 21)
    assert np.array(result["predictions"]).shape == (21, 1, 2)  # 21 records x 1 network x 2 test inputs


async def test_adam_in_batches_with_a_given_lr(api):
    x = inputs((6, 6, 2))
    body = {"architecture": SIGNAL_CNN, "width": 16, "n_init": 2, "x_train": x.tolist(), "y_train": [0.5] * 6,
            "optimizer": "adam", "lr": 0.01, "steps": 40, "batch_size": 3}
    response = await api.post("/v1/train", json=body)
    assert response.status_code == 200, response.text
    loss = np.array(response.json()["loss"])
    assert loss.shape == (2, 21) and np.all(loss[:, -1] < loss[:, 0])


IMAGES = inputs((3, 4, 4, 1)).tolist()
NETS = {"architecture": IMAGE_RESNET, "width": 8}
BAD = [
    ("jacobian_norms", "empirical-kernels", {**NETS, "x": IMAGES, "jacobian_norms": True}, "jacobian_norms"),
    ("jacobian_norms", "train", {**NETS, "x_train": IMAGES, "y_train": [0.0] * 3, "jacobian_norms": True},
     "jacobian_norms"),
    ("parametrization", "empirical-kernels", {**NETS, "x": IMAGES, "parametrization": "standard"}, "parametrization"),
    ("parametrization", "train", {**NETS, "x_train": IMAGES, "y_train": [0.0] * 3, "lr": 0.1,
                                  "parametrization": "xavier"}, "parametrization"),
    ("points for a conv kind", "empirical-kernels", {**NETS, "x": [[1.0, 2.0, 3.0]]}, "x"),
    ("rank 3 for 2-D filters", "train", {**NETS, "x_train": inputs((3, 4, 1)).tolist(), "y_train": [0.0] * 3},
     "x_train"),
    ("filter larger than the image", "empirical-kernels", {**NETS, "x": inputs((2, 2, 4, 1)).tolist()}, "x"),
    ("x2 of another shape", "empirical-kernels", {**NETS, "x": IMAGES, "x2": inputs((2, 4, 5, 1)).tolist()}, "x2"),
    ("x_test of another shape", "train", {**NETS, "x_train": IMAGES, "y_train": [0.0] * 3,
                                          "x_test": inputs((2, 4, 4, 2)).tolist()}, "x_test"),
    ("images for a dense kind", "train", {"architecture": {"kind": "resnet", "depth": 2}, "width": 8,
                                          "x_train": IMAGES, "y_train": [0.0] * 3}, "x_train"),
    ("too many weights", "empirical-kernels", {"architecture": {**IMAGE_RESNET, "filter_size": [4, 4]},
                                               "width": 6000, "x": IMAGES}, "width"),
    ("y_train of another length", "train", {**NETS, "x_train": IMAGES, "y_train": [0.0] * 2}, "body"),
    ("a bad conv key", "train", {**NETS, "architecture": {**IMAGE_RESNET, "readout": "max"}, "x_train": IMAGES,
                                 "y_train": [0.0] * 3}, "architecture.readout"),
]


@pytest.mark.parametrize(("operation", "body", "field"), [b[1:] for b in BAD], ids=[f"{b[1]}: {b[0]}" for b in BAD])
async def test_bad_requests_name_the_field(api, operation, body, field):
    problem = assert_problem(await api.post(f"/v1/{operation}", json=body), 422, field)
    if field == "parametrization":
        assert str(list(PARAMETRIZATIONS)) in problem["errors"][0]["message"], problem


def test_cost_counts_the_conv_weights_and_positions():
    """The weights of a conv-resnet (stem, two convs a block, readout) and of a cnn with a flatten
    readout, counted by hand; the work grows with the positions P (each weight applied at every
    position) and the NTK's position pairs (P^2)."""
    x = inputs((4, 8, 8, 3))
    body = {"architecture": {**IMAGE_RESNET, "sigma_b": 0.1}, "width": 16, "x": x}
    request = EmpiricalKernelsRequest.model_validate(body)
    weights = 9 * 3 * 16 + 2 * 2 * 9 * 16 * 16 + 16 + (2 * 16 + 1)
    assert f"{weights} weights" in empirical_cost(request).memory[2].formula
    cnn = TrainRequest.model_validate({"architecture": {**SIGNAL_CNN, "sigma_b": 0.0}, "width": 16,
                                       "x_train": inputs((4, 6, 2)), "y_train": [0.0] * 4, "lr": 0.1})
    weights = 3 * 2 * 16 + 1 * 3 * 16 * 16 + 16 * 6
    assert any(f"{weights} weights" in term.formula for term in train_cost(cnn).memory)
    ntk = empirical_cost(request).compute[1]
    small = empirical_cost(EmpiricalKernelsRequest.model_validate({**body, "x": x[:, :4, :4]})).compute[1]
    assert "NTKs" in ntk.formula and ntk.amount > 4 * small.amount  # 4x the positions, 16x the position pairs
