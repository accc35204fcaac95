"""The explorer page at `/`, its static files, and `/docs` and `/redoc` served with no internet
access: every script comes from this package or from an installed dependency (plotly's
`plotly.min.js`; Swagger UI and ReDoc from `fastapi-standalone-docs`, used as an asset source)."""

from __future__ import annotations

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


@router.get("/")
def page() -> FileResponse:
    return FileResponse(PAGE / "index.html", media_type="text/html", headers=REVALIDATE)


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
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - Swagger UI",
                               swagger_js_url="/docs/swagger-ui-bundle.js", swagger_css_url="/docs/swagger-ui.css",
                               swagger_favicon_url="/docs/favicon.png")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - ReDoc",
                          redoc_js_url="/redoc/redoc.standalone.js", redoc_favicon_url="/docs/favicon.png",
                          with_google_fonts=False)


@router.get("/docs/{name}")
def docs_asset(name: str) -> FileResponse:
    return _asset(f"docs/{name}")


@router.get("/redoc/{name}")
def redoc_asset(name: str) -> FileResponse:
    return _asset(f"redoc/{name}")
