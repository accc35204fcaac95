"""Request-scoped access to the app's jobs and settings (overridable in tests)."""

from __future__ import annotations

from fastapi import Request

from service.errors import UnsupportedMediaType
from service.jobs.lifecycle import Jobs
from service.settings import Settings


def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_json(request: Request) -> None:
    """State-changing routes take `application/json` only, so no HTML form or other simple
    cross-site request can reach them (a browser must ask first, by CORS preflight)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMediaType(f"a POST body must be application/json, got {kind or 'no Content-Type'}",
                                   field="Content-Type")
