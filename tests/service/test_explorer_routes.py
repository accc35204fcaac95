"""The explorer's files and the offline docs, over ASGI: every script and style the pages load is
served from this package or an installed one, and nothing points at another host."""

import re

import pytest

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
