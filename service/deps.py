"""Request-scoped access to the app's jobs and settings (overridable in tests)."""

from __future__ import annotations

from fastapi import Request

from service.jobs import Jobs
from service.settings import Settings


def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs


def get_settings(request: Request) -> Settings:
    return request.app.state.settings
