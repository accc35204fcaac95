"""The explorer's Questions tab in Chromium against a real `reskernel serve`: a question's controls
become the request's parameters, its figure is drawn from the numbers of the job's result (each
trace compared with a direct GET of that result), a run can be cancelled, a question whose
experiment the service does not have says so plainly, and text from the API (forged to carry
payloads) reaches the page as text."""

import json
import re

import httpx
import numpy as np

LC = "[data-question=learning-curves]"
ALPHA = "\u03b1"  # the category labels' Greek letter
TRACES = """sel => [...document.querySelectorAll(sel + ' .js-plotly-plot')].map((div) => ({
    id: div.id, xtype: div.layout.xaxis.type, ytype: div.layout.yaxis.type,
    caption: div.closest('figure').querySelector('figcaption').textContent,
    traces: div.data.map((t) => ({name: t.name, meta: t.meta, mode: t.mode, x: Array.from(t.x), y: Array.from(t.y),
                                  error: t.error_y ? Array.from(t.error_y.array) : null}))}))"""


def open_question(page, question: str) -> None:
    page.goto(f"/?view=questions&question={question}")
    page.wait_for_selector(f"[data-question={question}] h3")
    page.wait_for_function(f"() => !document.querySelector('[data-question={question}] .hint')?.textContent"
                           ".startsWith('Reading')")


def finished(page, holder: str) -> None:
    """Wait until the question's run has ended (drawn, failed or canceled)."""
    page.wait_for_function(f"() => document.querySelector('{holder}').getAttribute('aria-busy') === 'false' "
                           f"&& !document.querySelector('{holder} button.run').disabled", timeout=240_000)


def set_learning_curves(page, *, alphas: str, n_trains: str, draws: int, depth: int) -> None:
    page.fill("#q-learning-curves-alphas", alphas)
    page.uncheck("#q-learning-curves-kernels-nngp")
    page.check("#q-learning-curves-kernels-ntk")
    page.fill("#q-learning-curves-n_trains", n_trains)
    page.fill("#q-learning-curves-sphere_dims", "3")
    page.fill("#q-learning-curves-depth", str(depth))
    page.fill("#q-learning-curves-draws", str(draws))


def test_learning_curves_plot_the_results_numbers(page, server, shots):
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data))
            if r.method == "POST" and r.url.endswith("/v1/experiments/learning-curves") else None)
    open_question(page, "learning-curves")
    set_learning_curves(page, alphas="0.5", n_trains="4, 8, 16", draws=1, depth=2)
    page.click(f"{LC} button.run")
    finished(page, LC)
    assert page.text_content(f"{LC} .status").startswith("Drawn from job"), page.text_content(f"{LC} .status")

    # the controls' values (and the view's lighter defaults) were the request's parameters
    assert len(sent) == 1 and sent[0]["scale"] == "quick"
    parameters = sent[0]["parameters"]
    assert {k: parameters[k] for k in ("alphas", "kernels", "n_trains", "sphere_dims", "depth", "draws")} == {
        "alphas": [0.5], "kernels": ["ntk"], "n_trains": [4, 8, 16], "sphere_dims": [3], "depth": 2, "draws": 1}
    said = page.text_content(f"{LC} .sent")
    assert said.startswith(f"Sends POST /v1/experiments/learning-curves {json.dumps(sent[0], separators=(',', ':'))} ")

    job = page.get_attribute(LC, "data-job")
    result = httpx.get(f"{server}/v1/jobs/{job}/result", timeout=60).json()
    assert result["labels"]["parameters"]["n_trains"] == [4, 8, 16]
    curves, dims = result["labels"]["curves"], result["labels"]["sphere_dims"]
    assert curves == ["MLP", "ResNet alpha=0.5"] and dims == [3]

    panels = page.evaluate(TRACES, LC)
    assert [p["caption"] for p in panels] == ["NTK regression on S^2 (d = 3)"]
    assert panels[0]["xtype"] == "log" and panels[0]["ytype"] == "log"
    traces = panels[0]["traces"]
    assert sorted((t["meta"]["series"], t["meta"]["network"]) for t in traces) == sorted(
        (series, curve) for series in ("measured", "theory") for curve in curves)
    for trace in traces:
        meta = trace["meta"]
        array = f"{meta['series']}_ntk"
        i, c = dims.index(meta["d"]), curves.index(meta["network"])
        assert trace["x"] == result["n_trains"] == [4.0, 8.0, 16.0]
        assert trace["y"] == result[array][i][c], (array, trace["y"])  # the very numbers, not a copy drawn elsewhere
        assert trace["name"] == f"{meta['network']} {meta['series']}"
        if meta["series"] == "measured":
            assert trace["mode"] == "markers"
            sem = np.array(result["measured_std_ntk"][i][c]) / np.sqrt(result["fits_ntk"][i][c])
            np.testing.assert_allclose(trace["error"], sem, rtol=1e-12)
        else:
            assert trace["mode"] == "lines" and trace["error"] is None
    caption = page.text_content(f"{LC} .caption")
    assert f"on {parameters['n_test']} fresh points" in caption and "Bordelon" in caption
    worst = max(row["median |measured / theory - 1|"] for row in result["tables"]["agreement"])
    assert f"{float(f'{worst:.3g}'):g}" in caption
    page.screenshot(path=str(shots / "questions-learning-curves.png"), full_page=True)


def test_nngp_vs_ntk_plot_the_results_numbers(page, server):
    """A categorical x (the networks) and a 4-d array (domain, depth, network, kernel): one panel per domain
    and measure, one trace per depth and kernel, each the result's numbers along the networks."""
    holder = "[data-question=nngp-vs-ntk]"
    open_question(page, "nngp-vs-ntk")
    assert page.locator(f"{holder} button.run").count() == 1, "no run button: no nngp-vs-ntk"
    for name, value in (("depths", "2"), ("alphas", "0.5"), ("n_trains", "6"), ("sphere_dims", "")):
        page.fill(f"#q-nngp-vs-ntk-{name}", value)
    page.click(f"{holder} button.run")
    finished(page, holder)
    assert page.text_content(f"{holder} .status").startswith("Drawn from job"), page.text_content(f"{holder} .status")
    result = httpx.get(f"{server}/v1/jobs/{page.get_attribute(holder, 'data-job')}/result", timeout=60).json()
    labels = result["labels"]
    assert labels["domains"] == ["circle, m = 6"] and labels["depths"] == [2]
    assert labels["curves"] == ["MLP", "ResNet alpha=0.5"]
    panels = page.evaluate(TRACES, holder)
    assert [p["caption"] for p in panels] == ["circle, m = 6: mu (smaller = smoother)",
                                              "circle, m = 6: RKHS ratio (larger = smoother)"]
    for panel, array in zip(panels, ("mu_curvature", "mu_rkhs"), strict=True):
        assert panel["ytype"] == "log" and len(panel["traces"]) == 2
        for trace in panel["traces"]:
            meta = trace["meta"]
            assert meta["array"] == array and trace["x"] == ["MLP", f"{ALPHA} = 0.5"]
            k = labels["kernels"].index(meta["kernel"])
            assert trace["y"] == [network[k] for network in result[array][0][0]]
            assert trace["name"] == f"{meta['kernel'].upper()}, L = 2"
    mu = np.array(result["mu_curvature"])[..., [labels["kernels"].index("ntk"), labels["kernels"].index("nngp")]]
    smoother = int(np.sum(mu[..., 1] < mu[..., 0]))
    caption = page.text_content(f"{holder} .caption")
    assert f"smoother in {smoother} of 2 (domain, depth, network) cases by mu" in caption


def test_smoothness_generalization_plot_the_tables_rows(page, server):
    """A scatter per table: each point a row's (measure, test error); the measure is a display choice,
    redrawn from the same result; the titles quote the result's Spearman rows."""
    holder = "[data-question=smoothness-generalization]"
    open_question(page, "smoothness-generalization")
    assert page.locator(f"{holder} button.run").count() == 1, "no run button: no smoothness-generalization"
    for name, value in (("depths", "2, 3"), ("alphas", "1"), ("splits", "1"), ("net_depths", "2"), ("steps", "5")):
        page.fill(f"#q-smoothness-generalization-{name}", value)
    page.uncheck("#q-smoothness-generalization-kernels-nngp")
    page.click(f"{holder} button.run")
    finished(page, holder)
    assert page.text_content(f"{holder} .status").startswith("Drawn from job"), page.text_content(f"{holder} .status")
    result = httpx.get(f"{server}/v1/jobs/{page.get_attribute(holder, 'data-job')}/result", timeout=60).json()
    for measure in ("max_gradient", "mu"):
        page.select_option("#q-smoothness-generalization-show-measure", measure)
        page.wait_for_function(f"() => [...document.querySelectorAll('{holder} .js-plotly-plot')].every((d) => "
                               f"d.data.every((t) => t.meta.x === '{measure}'))")
        panels = page.evaluate(TRACES, holder)
        expected = sorted(name for name, rows in result["tables"].items()
                          if re.fullmatch(r"(digits|images|sphere)_(ntk|nngp|net)", name) and measure in rows[0])
        assert sorted(p["traces"][0]["meta"]["table"] for p in panels) == expected and expected
        for panel in panels:
            rows = result["tables"][panel["traces"][0]["meta"]["table"]]
            points = sorted((rows[i]["network"], x, y) for t in panel["traces"]
                            for i, x, y in zip(t["meta"]["rows"], t["x"], t["y"], strict=True))
            assert points == sorted((row["network"], row[measure], row["test_error"]) for row in rows)
            for trace in panel["traces"]:
                assert {rows[i]["family"] for i in trace["meta"]["rows"]} == {trace["name"]}
            task, predictor = panel["traces"][0]["meta"]["table"].split("_")
            spearman = next(r for r in result["tables"]["spearman"] if (r["task"], r["predictor"], r["measure"],
                            r["against"], r["family"]) == (task, predictor, measure, "test error", "all"))
            assert ("undefined" in panel["caption"]) == (spearman["rho"] is None)


def test_a_bad_parameter_is_named_beside_its_control(page):
    page.watch.allow(422)
    open_question(page, "learning-curves")
    page.fill("#q-learning-curves-n_trains", "4, eight")
    page.click(f"{LC} button.run")
    finished(page, LC)
    assert "n_trains" in page.text_content("#q-learning-curves-n_trains-error")
    assert "Invalid request (422)" in page.text_content(f"{LC} .status")
    assert page.locator(f"{LC} .js-plotly-plot").count() == 0


def test_cancel_stops_the_job(page, server):
    open_question(page, "learning-curves")
    set_learning_curves(page, alphas="", n_trains="2048", draws=200, depth=1)  # minutes, were it not cancelled
    page.click(f"{LC} button.run")
    page.wait_for_function(f"() => document.querySelector('{LC} progress').value > 0", timeout=120_000)
    job = page.get_attribute(LC, "data-job")
    assert not page.is_disabled(f"{LC} button:text('Cancel')")
    page.click(f"{LC} button:text('Cancel')")
    finished(page, LC)
    assert page.text_content(f"{LC} .status") == f"Canceled: job {job} stopped before its end; nothing drawn."
    assert httpx.get(f"{server}/v1/jobs/{job}", timeout=30).json()["status"] == "canceled"
    assert page.locator(f"{LC} .js-plotly-plot").count() == 0
    assert page.is_disabled(f"{LC} button:text('Cancel')")


def without(name: str):
    """The service's real list of experiments, less `name`."""
    def handle(route) -> None:
        listed = route.fetch().json()
        route.fulfill(json=[info for info in listed if info["name"] != name])
    return handle


def test_a_question_without_its_experiment_says_so(page, server):
    page.route(re.compile(r"/v1/experiments$"), without("learning-curves"))
    open_question(page, "learning-curves")
    assert page.text_content(f"{LC} .status") == ('This service has no experiment "learning-curves" (GET '
                                                  "/v1/experiments does not list it), so this question cannot be "
                                                  "answered here.")
    assert page.locator(f"{LC} button").count() == 0
    listed = {info["name"] for info in httpx.get(f"{server}/v1/experiments").json()}
    for question in page.eval_on_selector_all("#question-name option", "os => os.map((o) => o.value)"):
        holder = f"[data-question={question}]"
        has_run = page.locator(f"{holder} button.run").count() == 1
        assert has_run == (question in listed and question != "learning-curves"), question


def test_an_experiment_lost_after_listing_says_so(page, server):
    """The list names the experiment but the service answers 404 (it lost it since)."""
    page.watch.allow(404)
    page.route(re.compile(r"/v1/experiments/learning-curves$"),
               lambda route: route.continue_(url=f"{server}/v1/experiments/no-such-experiment"))
    open_question(page, "learning-curves")
    page.click(f"{LC} button.run")
    finished(page, LC)
    assert page.text_content(f"{LC} .status").startswith('This service has no experiment "learning-curves"')
    assert page.locator(f"{LC} .js-plotly-plot").count() == 0


PWNED = "window.__pwned=1"
IMG = f'<img src=x onerror="{PWNED}">'
LINK = '<a href="https://example.org/">Plotly reads this tag</a>'


def forged(route) -> None:
    """The real list with payloads in nngp-vs-ntk's texts; a job whose result's labels carry payloads."""
    url = route.request.url
    if url.endswith("/v1/experiments"):
        listed = route.fetch().json()
        for info in listed:
            if info["name"] == "nngp-vs-ntk":
                info["title"], info["description"] = IMG, LINK
                info["parameters"]["depths"]["description"] = IMG
        route.fulfill(json=listed)
    elif route.request.method == "POST":
        route.fulfill(status=202, json={"id": "forged"})
    elif url.endswith("/v1/jobs/forged"):
        route.fulfill(json={"id": "forged", "status": "succeeded", "progress": 1, "message": IMG})
    else:  # the result: one domain, one depth, two networks, both kernels
        labels = {"domains": [IMG], "depths": [5], "curves": ["MLP", "ResNet alpha=" + LINK],
                  "kernels": ["ntk", "nngp"], "parameters": {"n_points": 64, "target_degree": 4, "kink": IMG}}
        values = [[[[2.0, 1.0], [4.0, 3.0]]]]
        route.fulfill(json={"labels": labels, "mu_curvature": values, "mu_rkhs": values, "tables": {}})


def test_forged_text_is_shown_as_text(new_page):
    page = new_page()
    page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                         "(e) => window.__violations.push(e.effectiveDirective))")
    page.route(re.compile(r"/v1/(experiments|jobs/forged)"), forged)
    open_question(page, "nngp-vs-ntk")
    holder = "[data-question=nngp-vs-ntk]"
    assert page.locator(f"{holder} button.run").count() == 1, "no run button: no nngp-vs-ntk"
    assert IMG in page.text_content(f"{holder} .hint") and LINK in page.text_content(f"{holder} .hint")
    assert IMG in page.get_attribute(f"{holder} label[title]", "title")
    page.click(f"{holder} button.run")
    finished(page, holder)
    assert page.text_content(f"{holder} figcaption").startswith(IMG)
    ticks = page.eval_on_selector_all(f"{holder} .xtick text", "ts => ts.map((t) => t.textContent)")
    assert f"{ALPHA} = {LINK}" in ticks  # the category's text, its tags not read
    legend = page.eval_on_selector_all(f"{holder} .legendtext", "ts => ts.map((t) => t.textContent)")
    assert "NTK, L = 5" in legend
    assert IMG in page.text_content(f"{holder} .caption")
    # no element made of the payloads: no image, no inline handler, no link to example.org (Plotly keeps
    # the escaped text in data-unformatted, an attribute's value)
    assert page.evaluate("""() => [...document.querySelectorAll("*")].filter((e) => e.tagName === "IMG"
        || [...e.attributes].some((a) => a.name.startsWith("on"))
        || (e.getAttribute("href") ?? e.getAttribute("xlink:href") ?? "").includes("example.org")).length""") == 0
    assert page.evaluate("() => [window.__pwned, window.__violations]") == [None, []]


def test_a_link_naming_no_question_is_dropped_with_a_notice(page):
    page.goto(f"/?view=questions&question={IMG}")
    page.wait_for_selector(f"{LC}:not([hidden]) button.run")
    assert "question must be one of learning-curves" in page.text_content("#link-notice")
    assert "question=" not in page.url and page.input_value("#question-name") == "learning-curves"
