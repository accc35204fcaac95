"""POST /v1/smoothness with `points` on the sphere S^(d-1): the answer equals the engine's
`sphere_interpolation`, circle requests keep their ids, the cost model mirrors the engine's sets, and
each bad input is a 422 naming its field."""

import math

import numpy as np
import pytest

from engine import Architecture, sphere_grid, sphere_interpolation
from engine.sphere_smoothness import MAX_CURVATURE_DEGREE, heat_cutoff
from service.client import Client, ProblemError
from service.jobs.ids import job_id
from service.operations import smoothness
from service.operations.registry import OPERATIONS, estimate
from service.operations.smoothness import SmoothnessRequest, heat_degrees, sphere_set

pytestmark = pytest.mark.anyio
ARCHS = [{"kind": "resnet", "depth": 3, "alpha": 0.5}, {"kind": "mlp", "depth": 3},
         {"kind": "resnet", "depth": 2, "activation": "erf", "alpha": 0.1}]
RNG = np.random.default_rng(5)
POINTS = RNG.standard_normal((7, 3))
POINTS /= np.linalg.norm(POINTS, axis=1, keepdims=True)
TARGETS = POINTS[:, 0] - 0.5 * POINTS[:, 1] * POINTS[:, 2]
BODY = {"architectures": ARCHS, "points": POINTS.tolist(), "targets": TARGETS.tolist(), "n_grid": 512}


def spec(arch):
    return {"activation": "relu", "sigma_w": 1.0, "sigma_v": 1.0, "alpha": 1.0, "sigma_b": 0.0} | arch


@pytest.mark.parametrize("measure", ["curvature", "rkhs"])
async def test_points_on_s2_equal_the_engine(api, measure):
    response = await api.post("/v1/smoothness", json=BODY | {"measure": measure})
    assert response.status_code == 200, response.text
    body = response.json()
    n_lat = math.isqrt(256)
    assert body["grid_shape"] == [n_lat, 2 * n_lat] and body["grid_degree"] == n_lat - 1
    assert np.shape(body["grid_points"]) == (2 * n_lat * n_lat, 3) and np.shape(body["interpolants"]) == (3, 512)
    np.testing.assert_array_equal(body["train_points"], POINTS)
    np.testing.assert_array_equal(body["train_values"], TARGETS)
    assert "angles" not in body or body["angles"] is None
    for arch, entry, curve in zip(ARCHS, body["results"], body["interpolants"], strict=True):
        assert entry["architecture"] == spec(arch)
        direct = sphere_interpolation(Architecture.from_dict(arch), POINTS, TARGETS, n_grid=512,
                                      curvature=measure == "curvature", rkhs=measure == "rkhs")
        np.testing.assert_allclose(curve, direct["interpolant"], rtol=1e-9, atol=1e-12)
        expected = direct["mu"] if measure == "curvature" else direct["rkhs"]["mu"]
        assert entry["mu"] == pytest.approx(expected, rel=1e-8)
        if measure == "rkhs":
            assert entry["cutoff"] == direct["rkhs"]["cutoff"] and entry["bandwidth"] == 0.5
            assert 0 < entry["mu"] <= 1 + 1e-9
    np.testing.assert_allclose(body["grid_points"], sphere_grid(3, 512).points, rtol=0, atol=0)


async def test_circle_points_answer_what_angles_answer(api):
    """d = 2: points (cos b, sin b) are the circle experiment (eq. 22 on the same grid)."""
    b = np.array([-2.5, -1.0, 0.3, 1.7, 2.9])
    y = np.sin(2 * b) + 0.3
    archs = ARCHS[:2]
    circle = (await api.post("/v1/smoothness", json={"architectures": archs, "train_angles": b.tolist(),
                                                     "targets": y.tolist(), "n_grid": 256})).json()
    sphere = (await api.post("/v1/smoothness", json={"architectures": archs, "points": np.c_[np.cos(b), np.sin(b)]
                                                     .tolist(), "targets": y.tolist(), "n_grid": 256})).json()
    for c, s in zip(circle["results"], sphere["results"], strict=True):
        assert s["mu"] == pytest.approx(c["mu"], rel=1e-10)
    np.testing.assert_allclose(sphere["interpolants"], circle["interpolants"], rtol=1e-10, atol=1e-12)
    assert sphere["grid_shape"] == [256] and sphere["grid_degree"] == 127


async def test_rkhs_in_five_dimensions(api):
    x = RNG.standard_normal((6, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    response = await api.post("/v1/smoothness", json={"architectures": ARCHS[:1], "points": x.tolist(),
                                                      "targets": x[:, 0].tolist(), "n_grid": 64, "measure": "rkhs"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert np.shape(body["grid_points"]) == (64, 5) and body["grid_degree"] is None
    direct = sphere_interpolation(Architecture.from_dict(ARCHS[0]), x, x[:, 0], n_grid=64, curvature=False, rkhs=True)
    assert body["results"][0]["mu"] == pytest.approx(direct["rkhs"]["mu"], rel=1e-8)


async def test_curvature_and_both_measures_in_five_dimensions(api):
    """d > 3: the curvature is the exact harmonic sum (engine.sphere_smoothness.mu_curvature_spectral) to
    degree n_grid / 2 - 1; measure both answers each measure as its own request does, and mu null."""
    x = RNG.standard_normal((6, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    body = {"architectures": ARCHS[:2], "points": x.tolist(), "targets": (x[:, 0] - x[:, 3]).tolist(), "n_grid": 64}
    answers = {}
    for measure in ("curvature", "rkhs", "both"):
        response = await api.post("/v1/smoothness", json=body | {"measure": measure})
        assert response.status_code == 200, response.text
        answers[measure] = response.json()["results"]
    for arch, curvature, rkhs, both in zip(ARCHS[:2], *answers.values(), strict=True):
        direct = sphere_interpolation(Architecture.from_dict(arch), x, x[:, 0] - x[:, 3], n_grid=64, rkhs=True)
        assert curvature["mu"] == curvature["mu_curvature"] == pytest.approx(direct["mu"], rel=1e-8)
        assert curvature["degree"] == direct["degree"] == 31 and curvature["mu_rkhs"] is None
        assert rkhs["mu"] == rkhs["mu_rkhs"] == pytest.approx(direct["rkhs"]["mu"], rel=1e-8)
        assert rkhs["mu_curvature"] is None
        assert both["mu"] is None and both["degree"] == 31
        assert both["mu_curvature"] == pytest.approx(curvature["mu"], rel=1e-12)
        assert both["mu_rkhs"] == pytest.approx(rkhs["mu"], rel=1e-12)
        assert (both["cutoff"], both["bandwidth"], both["norm_f"]) == (rkhs["cutoff"], 0.5,
                                                                       pytest.approx(rkhs["norm_f"], rel=1e-12))


async def test_both_measures_on_the_circle_with_samples(api):
    b = [-2.0, -0.5, 1.0, 2.5]
    samples = np.cos(3 * np.linspace(-np.pi, np.pi, 64, endpoint=False)).tolist()
    body = {"architectures": ARCHS[:1], "train_angles": b, "n_grid": 256, "samples": samples}
    one = {m: (await api.post("/v1/smoothness", json=body | {"measure": m})).json() for m in ("curvature", "rkhs")}
    both = (await api.post("/v1/smoothness", json=body | {"measure": "both"})).json()
    for key in ("results", "samples"):
        entries = both[key] if key == "results" else [both[key]]
        singles = [one[m][key] if key == "results" else [one[m][key]] for m in ("curvature", "rkhs")]
        for entry, curvature, rkhs in zip(entries, *singles, strict=True):
            assert entry["mu"] is None
            assert entry["mu_curvature"] == pytest.approx(curvature["mu"], rel=1e-12)
            assert entry["mu_rkhs"] == pytest.approx(rkhs["mu"], rel=1e-12)
    assert both["samples"]["mu_curvature"] == pytest.approx(9.0, rel=1e-3)  # cos 3b: k^2 = 9 (eq. 22's grid)
    response = await api.post("/v1/smoothness", json={"samples": samples, "measure": "both"})
    assert response.status_code == 422 and "architectures" in response.text


def test_the_curvature_degree_is_mirrored():
    assert smoothness.MAX_CURVATURE_DEGREE == MAX_CURVATURE_DEGREE


def test_the_client_returns_numpy(server):
    with Client(server) as rk:
        out = rk.smoothness(ARCHS[:1], points=POINTS, targets=TARGETS, n_grid=128, measure="rkhs")
        assert out["grid_points"].shape == (128, 3) and out["interpolants"].shape == (1, 128)
        np.testing.assert_array_equal(out["train_points"], POINTS)
        assert out["grid_shape"] == [8, 16] and 0 < out["results"][0]["mu"] <= 1
        with pytest.raises(ProblemError, match="422") as caught:
            rk.smoothness(ARCHS[:1], points=2 * POINTS, targets=TARGETS)
        assert caught.value.problem["errors"][0]["field"] == "points.0"


def test_the_new_fields_are_part_of_the_id():
    """A circle request's id is unchanged by the new field (points is an array: absent, it is not hashed);
    points requests differ by their points, targets and n_grid."""
    circle = SmoothnessRequest.model_validate({"architectures": ARCHS[:1], "n_train": 6})
    params = circle.model_dump(mode="json", exclude={"train_angles", "targets", "samples", "points"})
    assert "points" not in params
    ids = set()
    for change in ({}, {"n_grid": 256}, {"targets": (TARGETS + 1).tolist()},
                   {"points": (-POINTS).tolist()}):
        request = SmoothnessRequest.model_validate(BODY | {"points": np.array(BODY["points"]),
                                                           "targets": np.array(BODY["targets"])}
                                                   | {k: np.array(v) if isinstance(v, list) else v
                                                      for k, v in change.items()})
        dump = request.model_dump(mode="json", exclude={"train_angles", "targets", "samples", "points"})
        ids.add(job_id("smoothness", dump, {"points": request.points, "targets": request.targets}))
    assert len(ids) == 4


@pytest.mark.parametrize(("d", "n_grid"), [(2, 64), (3, 8), (3, 512), (3, 4098), (3, 20000), (5, 64)])
def test_the_cost_model_mirrors_the_engines_sets(d, n_grid):
    m, n_lat = sphere_set(d, n_grid)
    grid = sphere_grid(d, n_grid)
    assert m == len(grid.points) and (n_lat is None) == (d != 3)
    if n_lat is not None:
        assert grid.shape == (n_lat, 2 * n_lat)


@pytest.mark.parametrize(("d", "bandwidth", "cutoff"), [(2, 0.5, None), (3, 0.5, None), (7, 0.05, None),
                                                        (3, 1e-6, None), (3, 0.5, 9)])
def test_the_cost_model_mirrors_the_heat_cutoff(d, bandwidth, cutoff):
    x = np.eye(d)[:2]
    request = SmoothnessRequest.model_validate({"architectures": ARCHS[:1], "points": x, "targets": np.array([1.0, 2]),
                                                "measure": "rkhs", "bandwidth": bandwidth, "cutoff": cutoff,
                                                "n_grid": 512})
    assert heat_degrees(request, d) == heat_cutoff(d, bandwidth, 255, cutoff)


def test_the_cost_grows_with_the_work():
    small = estimate(SmoothnessRequest.model_validate(BODY | {"points": POINTS, "targets": TARGETS}))
    big = estimate(SmoothnessRequest.model_validate(BODY | {"points": POINTS, "targets": TARGETS, "n_grid": 65536}))
    rkhs = estimate(SmoothnessRequest.model_validate(BODY | {"points": POINTS, "targets": TARGETS, "n_grid": 65536,
                                                             "measure": "rkhs", "bandwidth": 1e-6}))
    assert big.total("output") > 100 * small.total("output") and big.total("compute") > 10 * small.total("compute")
    # 32767 degrees at 65,536 nodes: P_k alone is 17 GB, charged to the bandwidth
    assert rkhs.total("memory") > 16e9 and rkhs.driver("memory").field == "bandwidth"
    x = RNG.standard_normal((7, 6))
    sphere6 = BODY | {"points": x / np.linalg.norm(x, axis=1, keepdims=True), "targets": TARGETS}
    low = estimate(SmoothnessRequest.model_validate(sphere6 | {"n_grid": 64}))
    high = estimate(SmoothnessRequest.model_validate(sphere6 | {"n_grid": 4096}))  # the harmonic sum to 511
    assert high.total("compute") > 4 * low.total("compute")
    both = estimate(SmoothnessRequest.model_validate(sphere6 | {"n_grid": 4096, "measure": "both"}))
    assert both.total("compute") > high.total("compute")
    assert OPERATIONS["smoothness"].cost is not None


UNIT = POINTS.tolist()


@pytest.mark.parametrize(("change", "field"), [
    ({"points": [*UNIT[:3], [1.0, 0.1, 0.0], *UNIT[4:]]}, "points.3"),       # off the sphere
    ({"points": [*UNIT[:5], [1e200, 0.0, 0.0], UNIT[6]]}, "points.5"),       # its norm overflows
    ({"points": [*UNIT[:2], [1.0, 0.0], *UNIT[3:]]}, "points"),               # ragged
    ({"points": [*UNIT[:2], [float("nan"), 0.0, 0.0], *UNIT[3:]]}, "points"),  # NaN (sent as a JSON NaN)
    ({"points": [[1.0]] * 7}, "points"),                                     # d = 1
    ({"points": [[1.0] + [0.0] * 64] * 7}, "points"),                        # d = 65
    ({"points": UNIT[:1], "targets": [1.0]}, "points"),                      # too few points
    ({"targets": TARGETS.tolist()[:6]}, "targets"),                          # length mismatch
    ({"targets": None}, "targets"),                                          # missing
    ({"targets": [0.0] * 7}, "targets"),                                     # all zero
    ({"n_train": 6}, "n_train"),
    ({"train_angles": [0.0, 1.0]}, "train_angles"),
    ({"samples": [1.0, 2.0, 3.0, 4.0]}, "samples"),
    ({"architectures": []}, "architectures"),
    ({"measure": "rkhs", "bandwidth": 1.0, "cutoff": 40}, "cutoff"),         # 40 x 41 / 2 > 648: underflow
    ({"n_grid": 9}, "n_grid"),
])
async def test_bad_input_is_a_422_naming_the_field(api, change, field):
    body = {k: v for k, v in (BODY | change).items() if v is not None}
    if any(isinstance(v, float) and math.isnan(v) for row in body.get("points", []) for v in row):
        import json
        response = await api.post("/v1/smoothness", content=json.dumps(body), headers={"content-type":
                                                                                       "application/json"})
    else:
        response = await api.post("/v1/smoothness", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
