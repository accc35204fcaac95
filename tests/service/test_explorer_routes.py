"""The explorer's files and the offline docs, over ASGI: every script and style the pages load is
served from this package or an installed one, and nothing points at another host; every answer
carries the security headers, and each page a Content-Security-Policy that runs only its own scripts."""

import base64
import hashlib
import re
from dataclasses import replace

import httpx
import pytest

from service.http.app import create_app

pytestmark = pytest.mark.anyio


async def test_page_and_everything_it_loads(api):
    page = await api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert all(url.startswith("/") for url in loaded), loaded
    for url in loaded:
        answer = await api.get(url)
        assert answer.status_code == 200, url
    plotly = await api.get("/explorer/vendor/plotly.min.js")
    assert plotly.headers["content-type"].startswith("text/javascript") and len(plotly.content) > 1_000_000
    main = (await api.get("/explorer/main.js")).text
    for module in re.findall(r'from "\./([\w.]+)"', main):
        assert (await api.get(f"/explorer/{module}")).status_code == 200, module


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_load_nothing_from_elsewhere(api, path):
    page = await api.get(path)
    assert page.status_code == 200
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert loaded and all(url.startswith("/") for url in loaded), loaded
    for url in loaded:
        assert (await api.get(url)).status_code == 200, url


@pytest.mark.parametrize("path", ["/explorer/../app.py", "/explorer/nothing.js", "/docs/..%2Fopenapi.json"])
async def test_only_the_listed_files(api, path):
    answer = await api.get(path)
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"


def _policy(answer) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in answer.headers["content-security-policy"].split(";"))


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc", "/explorer/main.js", "/openapi.json", "/healthz",
                                  "/v1/jobs/0000"])
async def test_every_answer_has_the_security_headers(api, path):
    answer = await api.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer" and answer.headers["x-frame-options"] == "DENY"
    policy = _policy(answer)
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"
    if path not in ("/", "/docs", "/redoc"):  # not a page: it loads nothing (a JSON or SVG opened in a tab)
        assert set(policy) == {"default-src", "frame-ancestors", "base-uri", "form-action"}


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc"])
async def test_pages_run_only_their_own_scripts(api, path):
    """Scripts from this service, and on /docs the inline start-up script by its hash; no eval."""
    answer = await api.get(path)
    scripts = _policy(answer)["script-src"].split()
    inline = re.findall(r"<script>(.*?)</script>", answer.text, flags=re.S)
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline]
    assert scripts == ["'self'", *hashes] and bool(hashes) == (path == "/docs")
    assert "unsafe" not in _policy(answer).get("style-src", "") or path == "/redoc"


async def test_a_refused_request_has_the_security_headers(settings, jobs):
    app = create_app(replace(settings, api_token="secret"), jobs)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel") as api:
        answer = await api.get("/v1/jobs")
    assert answer.status_code == 401 and answer.headers["x-content-type-options"] == "nosniff"
    assert _policy(answer)["default-src"] == "'none'"


@pytest.mark.parametrize(("key", "schema", "field"), [("optimizer", "TrainRequest", "optimizer"),
                                                       ("parametrization", "TrainRequest", "parametrization"),
                                                       ("scale", "ExperimentRequest", "scale")])
async def test_the_page_offers_the_values_the_api_takes(api, key, schema, field):
    """A link's choice is checked against the page's options: they must be the API's own values."""
    page = (await api.get("/")).text
    options = re.search(rf'<select data-key="{key}"[^>]*>(.*?)</select>', page, flags=re.S).group(1)
    schemas = (await api.get("/openapi.json")).json()["components"]["schemas"]
    assert re.findall(r'<option value="([^"]+)"', options) == schemas[schema]["properties"][field]["enum"]
