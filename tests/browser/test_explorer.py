"""The explorer in Chromium against a real `reskernel serve`: plotted mu equals the API's as alpha
and depth move, the URL reproduces a view, an architecture is added, an ensemble trains with a
live loss curve and can be cancelled, experiments run with their figure and downloads, and /docs
and /redoc work offline. Screenshots of each view go to the run's folder (see conftest)."""

import json
import time
from urllib.parse import parse_qs, quote, urlparse

import httpx
import numpy as np

MU_BODY = {"n_train": 6, "n_grid": 4096}
ALPHA, MU = "\u03b1", "\u03bc"  # the legends' Greek letters


def open_view(page, query: str) -> dict:
    """Load the page; its performance marks (ms since navigation) once the first view is drawn."""
    page.goto(f"/?{query}")
    page.wait_for_function("() => document.body.dataset.ready === 'plotted'", timeout=180_000)
    return page.evaluate("Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))")


def settled(page, view: str) -> None:
    page.wait_for_function(f"() => document.getElementById('view-{view}').getAttribute('aria-busy') === 'false'",
                           timeout=180_000)


def traces(page, plot: str) -> list[dict]:
    return page.evaluate("id => (document.getElementById(id).data || []).map(t => ({name: t.name, meta: t.meta ?? null,"
                         " x: Array.from(t.x), y: Array.from(t.y)}))", plot)


def url_archs(page) -> list[dict]:
    return json.loads(parse_qs(urlparse(page.url).query)["archs"][0])


def api_mu(server: str, archs: list[dict]) -> list[float]:
    answer = httpx.post(f"{server}/v1/smoothness", json={"architectures": archs, **MU_BODY}, timeout=300)
    return [r["mu"] for r in answer.json()["results"]]


def test_mu_follows_alpha_and_depth(page, server, shots):
    archs = [{"kind": "mlp", "depth": 3}, {"kind": "resnet", "depth": 3, "alpha": 0.5}]
    query = f"view=interpolation&sweep=none&archs={quote(json.dumps(archs))}"
    cold = open_view(page, query)  # the service computes (and compiles) the first answers
    settled(page, "interpolation")
    warm = open_view(page, query)  # a reload: the answers come from the job store
    (shots / "timings.json").write_text(json.dumps({"cold_ms": cold, "warm_ms": warm}))
    for name, marks in (("cold", cold), ("warm", warm)):
        print(f"first view ({name}): interactive at {marks['explorer-interactive']:.0f} ms, first plot at "
              f"{marks['explorer-first-plot']:.0f} ms after navigation")
    settled(page, "interpolation")
    assert [t["meta"]["mu"] for t in traces(page, "plot-interpolation") if t["meta"]] == api_mu(server, archs)

    page.fill("#arch-1-alpha", "0.2")  # the number box; its slider follows
    page.focus("#arch-1-depth-range")
    page.keyboard.press("ArrowRight")  # the depth slider by keyboard: 3 -> 4
    moved = [archs[0], {"kind": "resnet", "depth": 4, "alpha": 0.2}]
    page.wait_for_function("name => document.getElementById('plot-interpolation').data"
                           ".some(t => t.name.startsWith(name))", arg=f"ResNet {ALPHA}=0.2 L=4", timeout=180_000)
    settled(page, "interpolation")
    assert page.input_value("#arch-1-alpha-range") == "0.2" and page.input_value("#arch-1-depth") == "4"
    assert url_archs(page) == moved
    plotted = [(t["name"], t["meta"]["mu"]) for t in traces(page, "plot-interpolation") if t["meta"]]
    assert [mu for _, mu in plotted] == api_mu(server, moved)
    assert plotted[1][0] == f"ResNet {ALPHA}=0.2 L=4 ({MU} = {plotted[1][1]:#.4g})"

    page.watch.allow(422)  # a bad depth: the API's own words beside the depth control
    page.fill("#arch-1-depth", "0")
    page.wait_for_selector("#err-arch-1-depth:not(:empty)", timeout=60_000)
    refused = httpx.post(f"{server}/v1/smoothness", json={"architectures": [archs[0], {**moved[1], "depth": 0}],
                                                          **MU_BODY}).json()["errors"][0]
    assert page.text_content("#err-arch-1-depth") == f"{refused['field']}: {refused['message']}"
    page.fill("#arch-1-depth", "4")
    page.wait_for_selector("#err-arch-1-depth:empty", state="attached", timeout=60_000)

    page.select_option("select[data-key=sweep]", "alpha")
    page.wait_for_function("() => document.getElementById('plot-sweep').data?.length >= 2", timeout=300_000)
    settled(page, "interpolation")
    page.screenshot(path=shots / "interpolation.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    time.sleep(0.5)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=shots / "interpolation-phone.png", full_page=True)


def test_shared_url_reproduces_the_view(page, new_page, shots):
    open_view(page, "view=shapes")
    settled(page, "shapes")
    page.select_option("select[data-key=kernel]", "ntk")
    page.uncheck("input[data-key=norm]")
    page.click("#arch-add")
    page.fill("#arch-3-alpha", "0.3")
    page.wait_for_function("name => document.getElementById('plot-shapes').data.length === 4 && "
                           "document.getElementById('plot-shapes').data[3].name.startsWith(name)",
                           arg=f"ResNet {ALPHA}=0.3", timeout=180_000)
    settled(page, "shapes")
    drawn = traces(page, "plot-shapes")
    assert [t["meta"]["kernel"] for t in drawn] == ["ntk"] * 4 and max(max(t["y"]) for t in drawn) > 1.01
    page.screenshot(path=shots / "shapes.png", full_page=True)

    shared = new_page()  # another browser context: nothing but the link is shared
    shared.goto(page.url)
    shared.wait_for_function("() => document.body.dataset.ready === 'plotted'", timeout=60_000)
    settled(shared, "shapes")
    assert traces(shared, "plot-shapes") == drawn
    assert shared.input_value("select[data-key=kernel]") == "ntk" and not shared.is_checked("input[data-key=norm]")
    assert shared.input_value("#arch-3-alpha") == "0.3"
    assert shared.get_attribute("#tab-shapes", "aria-selected") == "true"



def test_spectra_and_bounds(page, shots):
    archs = [{"kind": "mlp", "depth": 3}, {"kind": "resnet", "depth": 3, "alpha": 0.1}]
    open_view(page, f"view=spectra&archs={quote(json.dumps(archs))}")
    page.wait_for_function("() => document.getElementById('plot-bounds-alpha').data?.length === 2", timeout=300_000)
    settled(page, "spectra")
    assert len(traces(page, "plot-magnitudes")) == len(traces(page, "plot-condition")) == 2
    assert "threshold" in page.text_content("figure:has(#plot-bounds-alpha) figcaption")
    page.screenshot(path=shots / "spectra.png", full_page=True)


def test_add_architecture_and_train(page, server, shots):
    open_view(page, "view=finite&archs=" + quote(json.dumps([{"kind": "resnet", "depth": 2, "alpha": 0.1}]))
              + "&width=64&ninit=2&steps=100000")
    page.click("#arch-add")
    page.select_option("#arch-1-kind", "mlp")
    assert [a["kind"] for a in url_archs(page)] == ["resnet", "mlp"]
    page.select_option("#train-arch", "1")

    page.click("#train-run")  # long: watch the live loss grow, then cancel
    live = "document.getElementById('plot-loss').data?.[0]?.x.length"
    page.wait_for_function(f"() => {live} >= 1", timeout=180_000)
    first = page.evaluate(live)
    page.wait_for_function(f"() => {live} > {first}", timeout=120_000)
    page.click("#train-cancel")
    page.wait_for_function("() => document.querySelector('#view-finite .status').textContent.includes('canceled')",
                           timeout=120_000)

    page.fill("input[data-key=steps]", "2000")
    page.click("#train-run")
    page.wait_for_function("() => document.querySelector('#view-finite .status').textContent.startsWith('Done')",
                           timeout=300_000)
    loss = traces(page, "plot-loss")
    assert len(loss) == 2 and all(len(t["y"]) > 2 and t["y"][-1] < t["y"][0] for t in loss)
    assert len(traces(page, "plot-prediction")) == 3 and len(traces(page, "plot-drift")) == 2
    page.screenshot(path=shots / "finite.png", full_page=True)


def test_experiment_figure_tables_and_downloads(page, server, shots, tmp_path):
    open_view(page, "view=jobs")
    listed = [e["name"] for e in httpx.get(f"{server}/v1/experiments").json()]
    page.wait_for_function(f"() => document.getElementById('experiment-name').options.length === {len(listed)}")
    assert page.eval_on_selector_all("#experiment-name option", "os => os.map(o => o.value)") == listed

    page.watch.allow(422)
    page.select_option("#experiment-name", "kernel-shapes")
    page.fill("#experiment-parameters", '{"no_such_parameter": 1}')
    page.click("#experiment-run")
    page.wait_for_selector("#err-parameters:not(:empty)", timeout=60_000)
    refused = httpx.post(f"{server}/v1/experiments/kernel-shapes", json={"parameters": {"no_such_parameter": 1}})
    error = refused.json()["errors"][0]  # the API's own words, next to the overrides box
    assert page.text_content("#err-parameters") == f"{error['field']}: {error['message']}"

    page.fill("#experiment-parameters", '{"depths": [2], "alphas": [0.5], "n_angles": 31}')
    page.click("#experiment-run")
    page.wait_for_function("() => document.querySelector('#view-jobs .status').textContent.endsWith('done.')",
                           timeout=300_000)
    page.wait_for_function("() => document.querySelector('#experiment-output img').naturalWidth > 0")
    assert page.locator("#experiment-output table").count() >= 1

    page.click("#jobs-refresh")
    row = page.locator("#jobs-table tr", has_text="experiment").first
    row.get_by_role("button", name="Downloads").click()
    with page.expect_download() as saved:
        page.locator("#jobs-table button[data-act=npy]").first.click()
    path = tmp_path / "array.npy"
    saved.value.save_as(path)
    assert np.load(path).size > 0
    with page.expect_download() as saved:
        page.locator("#jobs-table button[data-act=csv]").first.click()
    saved.value.save_as(tmp_path / "array.csv")
    assert np.loadtxt(tmp_path / "array.csv", delimiter=",", ndmin=2).size == np.load(path).size
    for link, name in (("#jobs-table a[data-fetch]", "result.json"),
                       ("#experiment-output a[data-fetch]", "figure.svg")):
        with page.expect_download() as saved:  # fetched by the page (so a token would go with them), then saved
            page.locator(link).first.click()
        saved.value.save_as(tmp_path / name)
    assert json.loads((tmp_path / "result.json").read_text())
    assert "<svg" in (tmp_path / "figure.svg").read_text()
    page.screenshot(path=shots / "jobs.png", full_page=True)


def test_docs_and_redoc_offline(page, server, shots):
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    page.goto("/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=60_000)
    listed = set(page.eval_on_selector_all(".opblock-summary-path",
                                           "ps => ps.map(p => p.dataset.path || p.textContent)"))
    assert {"/v1/kernels", "/v1/smoothness", "/v1/train", "/v1/experiments/{name}"} <= listed
    assert set(paths) <= {p.replace("\u200b", "") for p in listed}
    page.screenshot(path=shots / "docs.png")
    page.goto("/redoc")
    page.locator("h2", has_text="Analytic NNGP / NTK Gram matrices").wait_for(timeout=60_000)
    page.screenshot(path=shots / "redoc.png")
