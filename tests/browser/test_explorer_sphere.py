"""The explorer's views of issue 22 in Chromium against a real `reskernel serve`: the spectra on the
sphere S^(d-1) (|lambda_k| against k, the fitted decay and the ReLU law) plot what the API answers
and follow the d, k_max and kernel controls; a bad d shows the API's words beside its control."""

import json
import math
from urllib.parse import quote

import httpx

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
