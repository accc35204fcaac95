"""Experiments through the API: listed, run as cached jobs, figures served; the CLI and the
API give the same data for the same parameters."""

import json

import pytest

from engine.experiments import EXPERIMENTS
from service.cli import main as cli

pytestmark = pytest.mark.anyio
TINY = {"depths": [3], "n_trains": [6], "alphas": [0.5, 0.1], "n_grid": 256}


async def test_listing(api):
    listed = (await api.get("/v1/experiments")).json()
    assert [e["name"] for e in listed] == list(EXPERIMENTS)
    finite = next(e for e in listed if e["name"] == "finite-vs-infinite")
    assert finite["quick"]["width"] < finite["paper"]["width"] == 2000 and finite["description"]
    assert finite["parameters"]["width"] == {"type": "int", "description": "Hidden width n of the finite networks.",
                                             "minimum": 1, "maximum": 10000, "nullable": False, "quick": 256,
                                             "paper": 2000}
    assert finite["parameters"]["lrs"]["type"] == "list[float]" and finite["parameters"]["lrs"]["max_items"] == 4
    assert finite["cost"]["quick"]["training_weight_steps"] < finite["cost"]["paper"]["training_weight_steps"]
    assert {"lowest-loss", "scalar-angle"} <= {e["name"] for e in listed}


async def test_cli_and_api_give_the_same_data(api, tmp_path):
    response = await api.post("/v1/experiments/interpolation", json={"parameters": TINY})
    assert response.status_code == 200 and response.headers["x-cache"] == "miss"
    again = await api.post("/v1/experiments/interpolation", json={"scale": "quick", "parameters": TINY})
    assert again.headers["x-cache"] == "hit"

    sets = [arg for key, value in TINY.items() for arg in ("--set", f"interpolation.{key}={json.dumps(value)}")]
    cli(["reproduce", "interpolation", "--out", str(tmp_path), *sets])
    from_cli = json.loads((tmp_path / "interpolation" / "data.json").read_text())
    assert response.json() == from_cli
    report = (tmp_path / "report.md").read_text()
    assert "interpolation/figure.png" in report and "does not apply" in report  # a 256-angle grid
    assert (tmp_path / "interpolation" / "figure.svg").exists() and (tmp_path / "interpolation" / "mu.csv").exists()

    job = response.headers["etag"].strip('"')
    png = await api.get(f"/v1/jobs/{job}/figure.png")
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    svg = await api.get(f"/v1/jobs/{job}/figure.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content[:1000]


async def test_bad_experiment_requests(api):
    for name, body, status, field in [
        ("fig-9", {}, 404, None),
        ("interpolation", {"parameters": {"depthz": [5]}}, 422, "parameters.depthz"),
        ("interpolation", {"parameters": {"depths": ["5"]}}, 422, "parameters.depths"),
        ("interpolation", {"scale": "huge"}, 422, "scale"),
        ("finite-vs-infinite", {"parameters": {"width": 10**6}}, 422, "parameters.width"),
        ("spectra", {"parameters": {"condition_depths": [10**6]}}, 422, "parameters.condition_depths"),
        ("rkhs-vs-curvature", {"parameters": {"cutoff": [[[[1]]]] * 3}}, 422, "parameters.cutoff"),
        ("digits", {"parameters": {"draws": 10**12}}, 422, "parameters.draws"),
        ("beyond-ntk", {"parameters": {"lrs": [0.1]}}, 422, "parameters.lrs"),
    ]:
        response = await api.post(f"/v1/experiments/{name}", json=body)
        assert response.status_code == status, (name, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        if field is not None:
            assert response.json()["errors"][0]["field"] == field, response.json()


async def test_figure_of_a_job_without_one(api):
    response = await api.post("/v1/bounds", json={"architecture": {"kind": "mlp", "depth": 2}, "width": 8,
                                                  "input_dim": 2})
    job = response.headers["etag"].strip('"')
    figure = await api.get(f"/v1/jobs/{job}/figure.png")
    assert figure.status_code == 404 and figure.headers["content-type"] == "application/problem+json"
    assert (await api.get(f"/v1/jobs/{job}/figure.gif")).status_code == 422


async def test_spiky_or_stable_over_http(api):
    """The sphere experiment through the API: the same numbers as the engine's run, its figure, and a
    bad parameter (gamma beyond its bound, sphere_dim below 2) a 422 naming it."""
    import numpy as np

    from engine.experiments import run

    tiny = {"depths": [1, 4], "alphas": [0.5], "gammas": [0.5], "k_max": 8, "n_angles": 33, "kernels": ["ntk"]}
    response = await api.post("/v1/experiments/spiky-or-stable", json={"parameters": tiny})
    assert response.status_code == 200, response.text
    body = response.json()
    direct = run("spiky-or-stable", "quick", tiny)
    np.testing.assert_allclose(body["half_width_ntk"], direct["half_width_ntk"], rtol=1e-12)
    assert body["tables"]["ntk_median_degree"] == direct["tables"]["ntk_median_degree"]
    assert body["labels"]["curves"] == ["MLP", "ResNet alpha=0.5", "ResNet alpha=L^-0.5"]
    job = response.headers["etag"].strip('"')
    png = await api.get(f"/v1/jobs/{job}/figure.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    for parameters, field in (({"gammas": [5.0]}, "parameters.gammas"), ({"sphere_dim": 1}, "parameters.sphere_dim")):
        refused = await api.post("/v1/experiments/spiky-or-stable", json={"parameters": parameters})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text


async def test_learning_curves_over_http(api):
    """The learning curves through the API equal the engine's run; bad targets are a 422 naming them."""
    import numpy as np

    from engine.experiments import run

    tiny = {"n_trains": [4, 8], "depth": 2, "alphas": [0.1], "kernels": ["ntk"], "sphere_dims": [3],
            "target_degrees": [1], "target_powers": [1.0], "draws": 1, "n_test": 20, "k_max": 8}
    response = await api.post("/v1/experiments/learning-curves", json={"parameters": tiny})
    assert response.status_code == 200, response.text
    body, direct = response.json(), run("learning-curves", "quick", tiny)
    np.testing.assert_allclose(body["measured_ntk"], direct["measured_ntk"], rtol=1e-12)
    np.testing.assert_allclose(body["theory_ntk"], direct["theory_ntk"], rtol=1e-12)
    for parameters, field in (({"target_degrees": [1, 500]}, "parameters.target_degrees"),
                              ({"target_powers": [1.0, 2.0]}, "parameters.target_powers")):
        refused = await api.post("/v1/experiments/learning-curves", json={"parameters": parameters})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text


async def test_conv_spectra_over_http(api):
    """The conv Gram spectra through the API equal the engine's run; fit ranks beyond the images are a
    422 naming them."""
    import numpy as np

    from engine.experiments import run

    tiny = {"depths": [1], "alphas": [1.0], "n_images": 8, "readouts": ["flatten"], "kernels": ["ntk"],
            "fit_ranks": [2, 6]}
    response = await api.post("/v1/experiments/conv-spectra", json={"parameters": tiny})
    assert response.status_code == 200, response.text
    body, direct = response.json(), run("conv-spectra", "quick", tiny)
    np.testing.assert_allclose(body["eigenvalues_ntk"], direct["eigenvalues_ntk"], rtol=1e-12, atol=1e-15)
    assert body["tables"]["flatten_ntk_condition"] == direct["tables"]["flatten_ntk_condition"]
    refused = await api.post("/v1/experiments/conv-spectra", json={"parameters": {**tiny, "fit_ranks": [2, 9]}})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "parameters.fit_ranks", refused.text


async def test_nngp_vs_ntk_over_http(api):
    """NNGP against NTK through the API equals the engine's run; a heat bandwidth that leaves too few
    harmonics for the samples, and a sphere without x_3, are a 422 naming the parameter."""
    import numpy as np

    from engine.experiments import run

    tiny = {"depths": [2], "alphas": [0.1], "n_trains": [6], "n_grid": 256, "sphere_dims": [3], "n_points": 10,
            "sphere_grid": 128, "sphere_bandwidth": 0.4}
    response = await api.post("/v1/experiments/nngp-vs-ntk", json={"parameters": tiny})
    assert response.status_code == 200, response.text
    body, direct = response.json(), run("nngp-vs-ntk", "quick", tiny)
    for key in ("mu_curvature", "mu_rkhs", "degree"):
        np.testing.assert_allclose(body[key], direct[key], rtol=1e-12)
    assert body["tables"]["mu"] == direct["tables"]["mu"]
    for parameters, field in (({**tiny, "n_points": 400}, "parameters.sphere_bandwidth"),
                              ({"sphere_dims": [2]}, "parameters.sphere_dims")):
        refused = await api.post("/v1/experiments/nngp-vs-ntk", json={"parameters": parameters})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text


async def test_smoothness_generalization_over_http(api):
    """smoothness-generalization through the API equals the engine's run; a split larger than the digits
    and a conv subset larger than its split are 422s naming the parameter."""
    import numpy as np

    from engine.experiments import run

    tiny = {"depths": [1], "alphas": [0.5], "kernels": ["ntk"], "n_train": 60, "n_test": 20, "splits": 2,
            "gradient_points": 3, "k_max": 16, "conv_depths": [1], "conv_alphas": [], "conv_n_train": 15,
            "conv_n_test": 5, "conv_gradient_points": 1, "sphere_n_train": 30, "sphere_n_test": 20, "width": 16,
            "n_init": 1, "steps": 5, "lr_fraction": 0.2, "net_depths": [1], "net_alphas": [], "bootstrap": 20}
    response = await api.post("/v1/experiments/smoothness-generalization", json={"parameters": tiny})
    assert response.status_code == 200, response.text
    body, direct = response.json(), run("smoothness-generalization", "quick", tiny)
    for key in ("digits_ntk_test_error", "digits_ntk_mu", "images_ntk_max_gradient", "digits_net_margin_bound"):
        np.testing.assert_allclose(body[key], direct[key], rtol=1e-9)
    assert body["tables"]["spearman"] == direct["tables"]["spearman"]
    for parameters, field in (({"n_train": 1500, "n_test": 400}, "parameters.n_test"),
                              ({"conv_n_train": 250}, "parameters.conv_n_train")):
        refused = await api.post("/v1/experiments/smoothness-generalization", json={"parameters": parameters})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text
