"""The explorer page at `/`, its static files, and `/docs` and `/redoc` served with no internet
access: every script comes from this package or from an installed dependency (plotly's
`plotly.min.js`; Swagger UI and ReDoc from `fastapi-standalone-docs`, used as an asset source).

Each page is sent with a Content-Security-Policy that lets it load scripts from this service only:
no inline script, no eval (see docs/security.md for each directive's reason)."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.errors import ServiceError

router = APIRouter(include_in_schema=False)


def _installed(package: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{package} is not installed")
    return Path(spec.submodule_search_locations[0])


PAGE = Path(__file__).resolve().parents[2] / "explorer"
DOCS = _installed("fastapi_standalone_docs") / "static"
PLOTLY = _installed("plotly") / "package_data" / "plotly.min.js"
# URL name -> file: the page's own files, and the few library files it and the docs load.
ASSETS: dict[str, Path] = {
    **{f"explorer/{p.name}": p for p in PAGE.iterdir() if p.is_file() and p.name != "index.html"},
    "explorer/vendor/plotly.min.js": PLOTLY,
    "docs/swagger-ui-bundle.js": DOCS / "swagger" / "swagger-ui-bundle.js",
    "docs/swagger-ui.css": DOCS / "swagger" / "swagger-ui.css",
    "docs/favicon.png": DOCS / "fastapi" / "favicon.png",
    "redoc/redoc.standalone.js": DOCS / "redoc" / "redoc.standalone.js",
    "redoc/logo-mini.svg": DOCS / "redoc" / "logo-mini.svg",
}
MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
REVALIDATE = {"Cache-Control": "no-cache"}  # cached, but checked by ETag: an upgrade is seen at once


def _hash(text: str) -> str:
    """The CSP source that admits an inline element (or a style attribute) whose text is `text`."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


# Every page: scripts from this service only (never inline, never eval), framed by no one, no form sent.
BASE_POLICY = {"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self'",
               "connect-src": "'self'", "base-uri": "'none'", "form-action": "'none'", "frame-ancestors": "'none'"}
# The explorer: style-src also admits the <style> elements plotly.min.js adds, by their hashes
# (`_plotly_styles`), and style-src-attr the two style attributes its plots use: exponents
# (exponentformat "power") are <tspan style="font-size:70%">, and a colour bar's fills are cleared
# with style="" (the S^2 view's sphere). img-src blob: shows the experiment's figure (fetched with the
# token) and lets plotly draw its "download plot as PNG".
PAGE_POLICY = {**BASE_POLICY, "style-src-attr": f"'unsafe-hashes' {_hash('font-size:70%')} {_hash('')}",
               "img-src": "'self' blob:"}
# Swagger UI: data: images in its stylesheet; its start-up script is inline (admitted by its hash).
SWAGGER_POLICY = {**BASE_POLICY, "img-src": "'self' data:"}
# ReDoc styles itself with inline <style> elements (styled-components, their text changes with the
# document) and builds its search index in a worker made from a blob: URL.
REDOC_POLICY = {**SWAGGER_POLICY, "style-src": "'self' 'unsafe-inline'", "worker-src": "blob:"}


def _header(policy: dict[str, str]) -> str:
    return "; ".join(f"{directive} {sources}" for directive, sources in policy.items())


@cache
def _plotly_styles() -> tuple[str, ...]:
    """CSP sources for the <style> elements plotly.min.js adds as it loads: an empty one, which it fills
    through the CSSOM (insertRule, which CSP does not govern), and MapLibre's stylesheet (map traces),
    whose text it holds as one string literal. Nothing else inline is admitted."""
    literal = r'createElement\("style"\);(\w+)\.id="\w+",\1\.textContent=\'([^\'\\]*)\''
    return (_hash(""), *(_hash(text) for _, text in re.findall(literal, PLOTLY.read_text(encoding="utf-8"))))


def _secured(page: HTMLResponse, policy: dict[str, str]) -> HTMLResponse:
    """`page` with the Content-Security-Policy `policy`, which admits the page's own inline <script>
    blocks (FastAPI's Swagger UI page starts the UI with one) by their SHA-256 hashes."""
    inline = [_hash(block) for block in re.findall(r"<script>(.*?)</script>", bytes(page.body).decode(), flags=re.S)]
    page.headers["Content-Security-Policy"] = _header({**policy, "script-src": " ".join(["'self'", *inline])})
    return page


@router.get("/")
def page() -> FileResponse:
    return FileResponse(PAGE / "index.html", media_type="text/html",
                        headers={**REVALIDATE, "Content-Security-Policy": _header(
                            {**PAGE_POLICY, "style-src": " ".join(["'self'", *_plotly_styles()])})})


def _asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise ServiceError(f"no file {name!r}", status=404, title="Not found")
    return FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"), headers=REVALIDATE)


@router.get("/explorer/{name:path}")
def explorer_asset(name: str) -> FileResponse:
    return _asset(f"explorer/{name}")


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    return _secured(get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} - Swagger UI",
        swagger_js_url="/docs/swagger-ui-bundle.js", swagger_css_url="/docs/swagger-ui.css",
        swagger_favicon_url="/docs/favicon.png"), SWAGGER_POLICY)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _secured(get_redoc_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} - ReDoc",
        redoc_js_url="/redoc/redoc.standalone.js", redoc_favicon_url="/docs/favicon.png",
        with_google_fonts=False), REDOC_POLICY)


@router.get("/docs/{name}")
def docs_asset(name: str) -> FileResponse:
    return _asset(f"docs/{name}")


@router.get("/redoc/{name}")
def redoc_asset(name: str) -> FileResponse:
    return _asset(f"redoc/{name}")
