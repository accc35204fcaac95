"""A shared link cannot run script in the explorer (issue "Hardening II"): the review's payloads in
the URL are dropped with a notice that quotes them as text; text from the API reaches the page as
text even when the API's answers are forged to carry payloads (so escaping holds without the CSP);
the page's Content-Security-Policy blocks an injected script, inline handler and eval. Also: the
depth sweep sends depth (not alpha), and the MLP's alpha controls take no keyboard input.

Each payload sets `window.__pwned` or opens a dialog; an injected element that the CSP blocks is a
console error, which fails the test too (conftest's Watch)."""

import json
import re
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest

PWNED = "window.__pwned=1"
IMG = f'<img src=x onerror="{PWNED}">'
BREAK_OUT = f'5" autofocus onfocus="{PWNED}" x="'
OPTION = f"</option></select><summary>{IMG}</summary>"
LINK = '<a href="https://example.org/">Plotly reads this tag</a>'  # a tag Plotly's text markup knows
# 1x1 transparent PNG: a forged experiment's figure
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4f30000000049454e44ae426082")

# Every element that a payload could have injected: inline handlers, autofocus, images, frames, scripts
# in the body, and <summary>/<option> outside the places the page builds them.
INJECTED = """() => [...document.querySelectorAll("*")].filter((e) =>
    [...e.attributes].some((a) => a.name.startsWith("on") || a.name === "autofocus")
    || (e.tagName === "IMG" && !e.closest("#experiment-output figure"))
    || ["IFRAME", "OBJECT", "EMBED"].includes(e.tagName)
    || (e.tagName === "SCRIPT" && e.closest("body"))
    || (e.tagName === "SUMMARY" && !e.parentElement.matches(".arch > details"))
    || (e.tagName === "OPTION" && !e.parentElement.matches("select"))).map((e) => e.outerHTML.slice(0, 120))"""
VIOLATIONS = ("window.__violations = []; document.addEventListener('securitypolicyviolation', "
              "(e) => window.__violations.push(e.effectiveDirective))")


@pytest.fixture
def guarded(new_page):
    """A page that records CSP violations and dialogs (a dialog is dismissed and recorded)."""
    page = new_page()
    page.add_init_script(VIOLATIONS)
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    return page


def assert_nothing_ran(page) -> None:
    assert page.evaluate(INJECTED) == []
    assert page.evaluate("() => [window.__pwned, window.__violations]") == [None, []]
    assert page.dialogs == []


def ready(page, query: str) -> None:
    page.goto(f"/?{query}")
    page.wait_for_function("() => document.body.dataset.ready === 'plotted'", timeout=180_000)


def settled(page, view: str) -> None:
    page.wait_for_function(f"() => document.getElementById('view-{view}').getAttribute('aria-busy') === 'false'",
                           timeout=180_000)


ARCHS = "view=interpolation&sweep=none&archs="


@pytest.mark.parametrize(("query", "quoted"), [
    (ARCHS + quote(json.dumps([{"kind": "resnet", "depth": IMG}])), json.dumps(IMG)),
    (ARCHS + quote(json.dumps([{"kind": "resnet", "depth": BREAK_OUT}])), json.dumps(BREAK_OUT)),
    (ARCHS + quote(json.dumps([{"kind": "mlp", "depth": 3, "activation": OPTION}])), json.dumps(OPTION)),
    (ARCHS + quote(json.dumps([{"kind": "mlp", "depth": 2}, {"kind": "resnet", "depth": 2, "alpha": 0.5, IMG: 1}])),
     IMG),
    (ARCHS + quote(IMG), json.dumps(IMG)),
    ("view=interpolation&sweep=none&n=" + quote(IMG) + "&target=" + quote(BREAK_OUT), json.dumps(BREAK_OUT)),
], ids=["depth-img", "depth-attribute", "activation-option-summary", "unknown-key", "not-json", "other-keys"])
def test_link_payloads_are_dropped_with_a_notice_quoting_them(guarded, query, quoted):
    ready(guarded, query)
    settled(guarded, "interpolation")
    notice = guarded.locator("#link-notice")
    assert notice.is_visible() and quoted in notice.text_content()
    assert_nothing_ran(guarded)
    # the link is rewritten without what was dropped; what was valid stays
    archs = json.loads(parse_qs(urlparse(guarded.url).query).get("archs", ["null"])[0])
    assert "<img" not in guarded.url and archs in (None, [{"kind": "mlp", "depth": 2}])
    rows = guarded.locator("#mu-table tr").count() - 1
    assert rows == (1 if archs else 3) and guarded.locator("#arch-list > li").count() == rows


def forged_openapi(route) -> None:
    """The real schema, loosened so that the payload architectures pass the page's check."""
    schema = route.fetch().json()
    spec = schema["components"]["schemas"]["ArchitectureSpec"]
    spec["properties"]["activation"]["enum"].append(OPTION)
    spec["properties"]["depth"] = {"type": "string"}
    route.fulfill(json=schema)


def forged_smoothness(route) -> None:
    n = len(json.loads(route.request.post_data)["architectures"])
    route.fulfill(json={"results": [{"mu": 1.25 + i} for i in range(n)], "angles": [-3.0, 0.0, 3.0],
                        "interpolants": [[0.0, 1.0, 0.0]] * n, "train_angles": [0.0], "train_values": [1.0]})


def test_forged_architecture_text_is_shown_as_text(guarded):
    """Payloads that pass the check (the API's answers forged to admit them) reach every place that
    shows an architecture: its row (label, option, summary, input values), the mu table, the plot's
    legend, the training view's choice. All show the text; nothing runs."""
    guarded.route("**/openapi.json", forged_openapi)
    guarded.route("**/v1/smoothness", forged_smoothness)
    archs = [{"kind": "resnet", "depth": IMG + LINK, "alpha": 0.5, "activation": OPTION},
             {"kind": "mlp", "depth": BREAK_OUT}]
    ready(guarded, ARCHS + quote(json.dumps(archs)))
    settled(guarded, "interpolation")
    assert guarded.is_hidden("#link-notice")
    assert IMG + LINK in guarded.text_content("#arch-list li:nth-child(1) .arch-label")
    assert BREAK_OUT in guarded.text_content("#arch-list li:nth-child(2) .arch-label")
    assert guarded.input_value("#arch-0-activation") == OPTION
    assert OPTION in guarded.text_content("#arch-list li:nth-child(1) summary")
    cells = guarded.eval_on_selector_all("#mu-table td", "cells => cells.map((c) => c.textContent)")
    assert IMG + LINK in cells[0] and BREAK_OUT in cells[2]
    legend = guarded.eval_on_selector_all("#plot-interpolation .legendtext", "ts => ts.map((t) => t.textContent)")
    assert IMG + LINK in legend[0] and BREAK_OUT in legend[1]  # Plotly shows the name as text, its tags not read
    options = guarded.eval_on_selector_all("#train-arch option", "os => os.map((o) => o.textContent)")
    assert IMG + LINK in options[0] and BREAK_OUT in options[1]
    assert_nothing_ran(guarded)


def forged_sphere(route) -> None:
    """A smoothness answer on S^2: the octahedron's six vertices as the grid."""
    body = json.loads(route.request.post_data)
    grid = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]
    n = len(body["architectures"])
    route.fulfill(json={"results": [{"mu": 1.25 + i} for i in range(n)], "grid_points": grid,
                        "interpolants": [[0.0, 1.0, 0.5, -0.5, 0.2, 0.0]] * n, "train_points": body["points"],
                        "train_values": body["targets"], "grid_shape": [6], "grid_degree": None})


def test_forged_architecture_text_on_the_sphere_is_shown_as_text(guarded):
    """The S^2 view writes each architecture's name above its sphere (a Plotly annotation, which
    reads tags) and in its mu table: both show the text."""
    guarded.route("**/openapi.json", forged_openapi)
    guarded.route("**/v1/smoothness", forged_sphere)
    archs = [{"kind": "resnet", "depth": IMG + LINK, "alpha": 0.5}, {"kind": "mlp", "depth": BREAK_OUT}]
    ready(guarded, "view=sphere&sn=6&archs=" + quote(json.dumps(archs)))
    settled(guarded, "sphere")
    titles = guarded.eval_on_selector_all("#plot-s2 .annotation-text", "ts => ts.map((t) => t.textContent)")
    assert IMG + LINK in titles[0] and BREAK_OUT in titles[1]
    cells = guarded.eval_on_selector_all("#s2-table td", "cells => cells.map((c) => c.textContent)")
    assert IMG + LINK in cells[0] and BREAK_OUT in cells[2]
    assert_nothing_ran(guarded)


def forged_jobs(route) -> None:
    """The job list, a job's status (its result's tables and arrays), its figure, and an experiment
    run, all carrying payloads."""
    url, method = route.request.url, route.request.method
    job = {"id": BREAK_OUT, "operation": IMG, "status": "succeeded", "progress": 1, "message": IMG, "created_at": 0,
           "result": {"values": {"tables": {IMG: [{IMG: BREAK_OUT, "x": 1.5}]}}, "arrays": {IMG: {"shape": [2]}}}}
    if url.endswith("/v1/experiments"):
        route.fulfill(json=[{"name": IMG, "title": IMG, "description": BREAK_OUT, "quick": {IMG: 1}, "paper": {}}])
    elif method == "POST" and "/v1/experiments/" in url:
        route.fulfill(status=202, json={"id": BREAK_OUT})
    elif "limit=30" in url:
        route.fulfill(json={"jobs": [job], "total": IMG, "next": None})
    elif url.endswith("figure.png"):
        route.fulfill(body=PNG, content_type="image/png")
    else:
        route.fulfill(json=job)


def test_forged_job_and_experiment_text_is_shown_as_text(guarded):
    guarded.route(re.compile(r"/v1/(jobs|experiments)"), forged_jobs)
    guarded.goto("/?view=jobs")
    guarded.wait_for_selector("#jobs-table td")
    guarded.wait_for_function("() => document.getElementById('experiment-name').options.length === 1")
    assert guarded.text_content("#experiment-name option") == IMG
    assert BREAK_OUT in guarded.text_content("#experiment-defaults")
    guarded.click("#experiment-run")
    guarded.wait_for_selector("#experiment-output table")
    guarded.wait_for_function("() => document.querySelector('#experiment-output img').naturalWidth > 0")
    assert guarded.text_content("#experiment-output caption") == IMG
    assert guarded.text_content("#experiment-output td") == BREAK_OUT
    guarded.get_by_role("button", name="Downloads").first.click()
    guarded.wait_for_selector("#jobs-table .files button[data-act=npy]")
    assert IMG in guarded.text_content("#jobs-table .files li")
    assert guarded.get_attribute("#jobs-table tr[data-id]", "data-id") == BREAK_OUT
    assert IMG in guarded.text_content("#jobs-table tr[data-id] td:nth-child(4)")
    assert_nothing_ran(guarded)


def test_the_policy_blocks_injected_script_and_eval(guarded, server):
    answer = guarded.goto("/?view=jobs")
    headers = answer.headers
    policy = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and "unsafe-inline" not in policy["style-src"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    assert httpx.get(f"{server}/explorer/main.js").headers["x-content-type-options"] == "nosniff"

    guarded.watch.expect("Content Security Policy")  # the console reports each blocked attempt
    guarded.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__pwned = 'inline script'";
        document.body.append(script);
        const image = document.createElement("img");
        image.setAttribute("onload", "window.__pwned = 'inline handler'");
        image.src = "/explorer/favicon.svg";
        document.body.append(image);
        setTimeout("window.__pwned = 'eval'");
    }""")
    guarded.wait_for_function("() => window.__violations.length >= 3")
    assert sorted(guarded.evaluate("window.__violations")) == ["script-src", "script-src-attr", "script-src-elem"]
    assert guarded.evaluate("window.__pwned") is None


def test_depth_sweep_sends_depth(page, server):
    """The second plot against depth: each request architecture is the base one at the plotted depth
    (alpha and the rest unchanged), and each plotted mu is the API's for it."""
    archs = [{"kind": "resnet", "depth": 2, "alpha": 0.3}, {"kind": "mlp", "depth": 2}]
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/v1/smoothness") else None)
    ready(page, "view=interpolation&sweep=depth&archs=" + quote(json.dumps(archs)))
    page.wait_for_function("() => document.getElementById('plot-sweep').data?.length === 2", timeout=300_000)
    settled(page, "interpolation")
    curves = page.evaluate("() => document.getElementById('plot-sweep').data.map((t) => ({x: Array.from(t.x), "
                           "y: Array.from(t.y)}))")
    sweep = next(body for body in bodies if len(body["architectures"]) > len(archs))
    sent = sweep["architectures"]
    assert len(sent) == sum(len(c["x"]) for c in curves)
    plotted = [(k, x) for k, curve in enumerate(curves) for x in curve["x"]]
    assert len({x for _, x in plotted}) > 2
    for arch, (k, x) in zip(sent, plotted, strict=True):
        assert arch == {**archs[k], "depth": x}, (arch, archs[k], x)
    mu = [r["mu"] for r in httpx.post(f"{server}/v1/smoothness", json=sweep, timeout=300).json()["results"]]
    assert [y for curve in curves for y in curve["y"]] == mu


def test_mlp_alpha_takes_no_keyboard_input(page):
    ready(page, ARCHS + quote(json.dumps([{"kind": "mlp", "depth": 3}])))
    settled(page, "interpolation")
    before = page.url
    assert page.is_disabled("#arch-0-alpha-range") and page.is_disabled("#arch-0-alpha")
    page.focus("#arch-0-depth")
    page.keyboard.press("Tab")  # past the alpha controls
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.locator("#arch-0-alpha-range").focus()
    for key in ("Home", "ArrowLeft", "PageDown"):
        page.keyboard.press(key)
    assert page.input_value("#arch-0-alpha-range") == "1" and page.url == before

    page.select_option("#arch-0-kind", "resnet")  # a ResNet's alpha slider answers the keyboard
    assert page.is_enabled("#arch-0-alpha-range") and page.is_enabled("#arch-0-alpha")
    page.focus("#arch-0-alpha-range")
    page.keyboard.press("Home")
    assert page.input_value("#arch-0-alpha") == "0"
    page.select_option("#arch-0-kind", "mlp")
    assert page.is_disabled("#arch-0-alpha-range")
    settled(page, "interpolation")
