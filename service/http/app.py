"""The FastAPI application. `create_app()` builds it; nothing runs at import.

The API process validates, hashes and stores requests and serves results; the maths runs
in Dask workers (`service.jobs.worker`), so this process never imports JAX.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool

from service.http import metrics, problems
from service.http.auth import BearerAuth
from service.http.metrics import Metrics
from service.http.middleware import BodyLimit, HeadAsGet, SecurityHeaders, TrustedHosts
from service.http.observability import REQUEST_ID, RequestContext
from service.http.routes import experiments, explorer, health, jobs, operations
from service.jobs.executor import Executor
from service.jobs.lifecycle import Jobs
from service.operations.registry import BODY_MODELS
from service.settings import Settings
from service.store.open import open_store

DESCRIPTION = """Kernel analysis of residual networks (Tirer, Bruna & Giryes, MSML 2021): analytic
NNGP / NTK Gram matrices, kernel regression, the smoothness measure mu, Jacobian bounds,
kernel spectra, and finite networks (empirical kernels, training).

Every operation is a job whose id is the SHA-256 of the canonical request: equal requests
are computed once and served from the store afterwards (`X-Cache`, strong `ETag`). A POST
waits up to 30 s for its result (`Prefer: wait=N`, `Prefer: respond-async`); unfinished
jobs answer 202 with `Location: /v1/jobs/{id}`. Errors are RFC 9457 problem+json."""


# what a cross-origin page may send, and read of the answers (RESKERNEL_CORS_ORIGINS)
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Accept", "Prefer", "If-None-Match", "Last-Event-ID",
                        REQUEST_ID]
CORS_EXPOSED_HEADERS = ["Location", "ETag", "X-Cache", REQUEST_ID, "Retry-After", "Preference-Applied",
                        "Content-Disposition"]


def _openapi(app: FastAPI, bearer: bool) -> None:
    """OpenAPI: error responses are application/problem+json (FastAPI would say application/json),
    and the request models of routes that read their own bodies are in the components; with
    `bearer`, the token is declared (Swagger UI's Authorize button sends it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    for response in operation.get("responses", {}).values():
                        content = response.get("content", {})
                        if problems.PROBLEM in content:
                            content[problems.PROBLEM] = content.pop("application/json")
            _, definitions = models_json_schema([(m, "validation") for m in BODY_MODELS],
                                                ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in definitions.get("$defs", {}).items():
                components.setdefault(name, definition)
            if bearer:
                schemes = schema["components"].setdefault("securitySchemes", {})
                schemes["bearer"] = {"type": "http", "scheme": "bearer", "description": "RESKERNEL_API_TOKEN"}
                schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the document


def operation_id(route: APIRoute) -> str:
    """The OpenAPI operationId: the route's name as a Python identifier ("kernels", "get_job",
    "empirical_kernels"), what a generated client names its functions by."""
    return route.name.replace("-", "_")


def create_app(settings: Settings | None = None, jobs_service: Jobs | None = None) -> FastAPI:
    """The app. With `jobs_service`, the caller owns it (tests share one Dask cluster);
    otherwise the app starts the store and executor on startup and stops them on shutdown."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.openapi()  # built now, not by the first request: the explorer's first view waits for it
        if jobs_service is not None:
            yield
            return
        owned = Jobs(settings, open_store(settings.data_dir, settings.store_url, settings.store_prefix),
                     Executor(settings))
        owned.on_end.append(app.state.metrics.job_ended)
        await run_in_threadpool(owned.start)
        app.state.jobs = owned
        try:
            yield
        finally:
            await run_in_threadpool(owned.close)

    app = FastAPI(title="reskernel", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # served offline by routes/explorer.py
                  generate_unique_id_function=operation_id)
    app.state.settings = settings
    app.state.jobs = jobs_service
    app.state.event_streams = 0  # open Server-Sent Events streams
    app.state.metrics = Metrics(lambda: app.state.jobs.store if app.state.jobs is not None else None)
    if jobs_service is not None:
        jobs_service.on_end.append(app.state.metrics.job_ended)
    problems.install(app)
    for module in (operations, experiments, jobs, health, explorer, metrics):
        app.include_router(module.router)
    # the last added runs first: security headers, request id and access log, CORS, Host, token, body size, HEAD
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, limit=settings.limits.body_bytes)
    if settings.api_token:
        app.add_middleware(BearerAuth, token=settings.api_token)
    app.add_middleware(TrustedHosts, trusted_hosts=settings.trusted_hosts)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=CORS_REQUEST_HEADERS,
                           expose_headers=CORS_EXPOSED_HEADERS, max_age=600)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    app.add_middleware(SecurityHeaders)
    _openapi(app, bearer=bool(settings.api_token))
    return app
