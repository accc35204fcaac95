"""The explorer's views of issue 22 in Chromium against a real `reskernel serve`: the spectra on the
sphere S^(d-1) (|lambda_k| against k, the fitted decay and the ReLU law) plot what the API answers
and follow the d, k_max and kernel controls; the S^2 view sends the Fibonacci lattice and the
paper's target carried to the sphere (checked against their formulas here) and draws the API's
interpolants, samples and mu, for both measures; bad input shows the API's words beside its control."""

import json
import math
from urllib.parse import quote

import httpx
import numpy as np

ARCHS = [{"kind": "mlp", "depth": 3}, {"kind": "resnet", "depth": 3, "alpha": 0.1}]


def ready(page, query: str) -> None:
    page.goto(f"/?{query}")
    page.wait_for_function("() => document.body.dataset.ready === 'plotted'", timeout=180_000)


def settled(page, view: str) -> None:
    page.wait_for_function(f"() => document.getElementById('view-{view}').getAttribute('aria-busy') === 'false'",
                           timeout=300_000)


def traces(page, plot: str) -> list[dict]:
    return page.evaluate("id => (document.getElementById(id).data || []).map(t => ({name: t.name, meta: t.meta ?? null,"
                         " x: Array.from(t.x), y: Array.from(t.y)}))", plot)


def api_sphere(server: str, arch: dict, d: int, k_max: int, kernel: str) -> dict:
    body = {"architecture": arch, "kernel": kernel, "n_grid": 8, "sphere_dim": d, "k_max": k_max}
    answer = httpx.post(f"{server}/v1/spectrum", json=body, timeout=300)
    assert answer.status_code == 200, answer.text
    return answer.json()


def check_sphere_plot(page, server: str, d: int, k_max: int, kernel: str) -> None:
    """Each architecture's |lambda_k| (k >= 1) are the API's; its fitted line has the API's slope, the
    reference the ReLU law's; the legend and the table give the exponent and its standard error."""
    drawn = traces(page, "plot-sphere")
    rows = page.eval_on_selector_all("#decay-table tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")[1:]
    law = -d if kernel == "ntk" else -(d + 2)
    for i, arch in enumerate(ARCHS):
        answer = api_sphere(server, arch, d, k_max, kernel)
        decay = answer["decay_exponent"]
        mine = [t for t in drawn if t["meta"]["architecture"] == i]
        points, fit, reference = mine
        assert points["x"] == list(range(1, k_max + 1))
        assert points["y"] == [abs(c) for c in answer["coefficients"][1:]]
        assert points["meta"]["exponent"] == decay["value"] and decay["asymptotic"] == law
        assert f"{decay['value']:.2f}".replace("-", "\u2212") in points["name"]
        assert f"\u00b1 {decay['standard_error']:.2f}" in points["name"]
        assert fit["x"] == [decay["k_min"], decay["k_max"]]
        assert 1 <= reference["x"][0] <= decay["k_min"] and reference["x"][1] == decay["k_max"]
        for line, slope in ((fit, decay["value"]), (reference, law)):
            measured = math.log(line["y"][1] / line["y"][0]) / math.log(line["x"][1] / line["x"][0])
            assert abs(measured - slope) < 1e-9 * abs(slope)
        assert rows[i][1] == f"{decay['value']:.3f}".replace("-", "\u2212")
        assert rows[i][2] == f"{decay['standard_error']:.3f}"
        assert rows[i][3] == f"{decay['k_min']}..{decay['k_max']} ({decay['points']})"
    caption = page.text_content("figure:has(#plot-sphere) figcaption")
    assert f"S^{d - 1} (d = {d})" in caption and kernel.upper() in caption


def test_sphere_spectra_follow_d_k_max_and_kernel(page, server, shots):
    ready(page, f"view=spectra&sdim=3&kmax=32&archs={quote(json.dumps(ARCHS))}")
    settled(page, "spectra")
    check_sphere_plot(page, server, 3, 32, "ntk")
    page.screenshot(path=shots / "sphere-spectra.png", full_page=True)

    page.fill("input[data-key=sdim]", "6")
    page.select_option("select[data-key=skernel]", "nngp")
    page.wait_for_function("() => document.querySelector('figure:has(#plot-sphere) figcaption')"
                           ".textContent.includes('NNGP on S^5')", timeout=300_000)
    settled(page, "spectra")
    check_sphere_plot(page, server, 6, 32, "nngp")
    assert "sdim=6" in page.url and "skernel=nngp" in page.url

    page.watch.allow(422)  # d out of the API's bounds: its own words beside the d control
    page.fill("input[data-key=sdim]", "1")
    page.wait_for_selector("#err-sphere_dim:not(:empty)", timeout=120_000)
    refused = httpx.post(f"{server}/v1/spectrum", json={"architecture": ARCHS[0], "sphere_dim": 1}).json()
    error = refused["errors"][0]
    assert page.text_content("#err-sphere_dim") == f"{error['field']}: {error['message']}"
    settled(page, "spectra")


def fibonacci(n: int) -> np.ndarray:
    """The Fibonacci lattice of n points on S^2: z = 1 - (2i + 1)/n, longitude i times the golden angle."""
    i = np.arange(n)
    z = 1 - (2 * i + 1) / n
    lon = i * np.pi * (3 - np.sqrt(5))
    return np.stack([np.sqrt(1 - z**2) * np.cos(lon), np.sqrt(1 - z**2) * np.sin(lon), z], axis=1)


def sphere_drawn(page) -> list[dict]:
    return page.evaluate("""() => document.getElementById('plot-s2').data.map((t) => ({type: t.type, meta: t.meta,
        x: Array.from(t.x), y: Array.from(t.y), z: Array.from(t.z),
        intensity: t.intensity ? Array.from(t.intensity) : null,
        color: t.marker?.color ? Array.from(t.marker.color) : null}))""")


def check_s2_plot(page, server: str, body: dict) -> None:
    """The meshes are the API's interpolants on its grid, the markers its training set, mu its mu."""
    answer = httpx.post(f"{server}/v1/smoothness", json=body, timeout=300)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    drawn = sphere_drawn(page)
    meshes = [t for t in drawn if t["type"] == "mesh3d"]
    marks = [t for t in drawn if t["type"] == "scatter3d"]
    assert len(meshes) == len(marks) == len(ARCHS)
    grid = np.array(result["grid_points"])
    for i, mesh in enumerate(meshes):
        assert mesh["meta"] == {"architecture": i, "mu": result["results"][i]["mu"]}
        assert [mesh["x"], mesh["y"], mesh["z"]] == grid.T.tolist()
        assert mesh["intensity"] == result["interpolants"][i]
        np.testing.assert_allclose(np.array([marks[i]["x"], marks[i]["y"], marks[i]["z"]]).T,
                                   1.03 * np.array(result["train_points"]), rtol=1e-15)
        assert marks[i]["color"] == result["train_values"]
    rows = page.eval_on_selector_all("#s2-table tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")[1:]
    assert [float(r[1]) for r in rows] == [float(f"{r['mu']:.6g}") for r in result["results"]]
    titles = page.eval_on_selector_all("#plot-s2 .annotation-text", "ts => ts.map(t => t.textContent)")
    assert [t.split("\u03bc = ")[1] for t in titles] == [f"{r['mu']:#.4g}" for r in result["results"]]


def test_s2_view_draws_the_apis_interpolants(page, server, shots):
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data))
            if r.method == "POST" and r.url.endswith("/v1/smoothness") else None)
    ready(page, f"view=sphere&sn=12&sgrid=200&archs={quote(json.dumps(ARCHS))}")
    settled(page, "sphere")
    body = bodies[-1]
    points = np.array(body["points"])
    np.testing.assert_allclose(points, fibonacci(12), atol=1e-15)
    x, y = points[:, 0], points[:, 1]  # 0.5 x + Im (x + iy)^4: 0.5 cos b + sin 4b on the equator
    np.testing.assert_allclose(body["targets"], 0.5 * x + np.imag((x + 1j * y) ** 4), atol=1e-14)
    assert body["n_grid"] == 200 and body["measure"] == "curvature" and body["architectures"] == ARCHS
    check_s2_plot(page, server, body)
    page.screenshot(path=shots / "sphere-s2.png", full_page=True)

    page.select_option("select[data-key=smeasure]", "rkhs")
    page.wait_for_function("() => document.querySelector('#s2-table caption').textContent.includes('RKHS')",
                           timeout=300_000)
    settled(page, "sphere")
    assert bodies[-1]["measure"] == "rkhs"
    check_s2_plot(page, server, bodies[-1])

    page.watch.allow(422)  # own values, one short: the API's words beside the values box
    page.select_option("select[data-key=starget]", "own")
    page.fill("input[data-key=svalues]", ", ".join(["1"] * 11))
    page.wait_for_selector("#err-s2-targets:not(:empty)", timeout=120_000)
    refused = httpx.post(f"{server}/v1/smoothness", json={**bodies[-1], "targets": [1.0] * 11}).json()["errors"][0]
    assert page.text_content("#err-s2-targets") == f"{refused['field']}: {refused['message']}"
    settled(page, "sphere")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: one sphere a row, nothing wider than it
    page.wait_for_function("() => document.getElementById('plot-s2').layout.scene.domain.x[1] === 1")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=shots / "sphere-s2-phone.png", full_page=True)
