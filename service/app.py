"""The FastAPI application. `create_app()` builds it; nothing runs at import.

The API process validates, hashes and stores requests and serves results; the maths runs
in Dask workers (`service.worker`), so this process never imports JAX.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from service import errors
from service.executor import Executor
from service.jobs import Jobs
from service.routes import experiments, explorer, health, jobs, operations
from service.settings import Settings
from service.store import SQLiteStore

DESCRIPTION = """Kernel analysis of residual networks (Tirer, Bruna & Giryes, MSML 2021): analytic
NNGP / NTK Gram matrices, kernel regression, the smoothness measure mu, Jacobian bounds,
kernel spectra, and finite networks (empirical kernels, training).

Every operation is a job whose id is the SHA-256 of the canonical request: equal requests
are computed once and served from the store afterwards (`X-Cache`, strong `ETag`). A POST
waits up to 30 s for its result (`Prefer: wait=N`, `Prefer: respond-async`); unfinished
jobs answer 202 with `Location: /v1/jobs/{id}`. Errors are RFC 9457 problem+json."""


class BodyLimit:
    """413 for request bodies over `limit` bytes, by Content-Length or as they stream in."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(scope, receive, send)
        seen, refused = 0, False

        async def counted() -> dict:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # a streamed body (no Content-Length) that grew too long
                refused = True
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: dict) -> None:
            if not refused:  # the 413 is the answer; drop what the app says after the disconnect
                await send(message)

        return await self.app(scope, counted, guarded)

    def _detail(self) -> str:
        return f"the request body exceeds the limit of {self.limit} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.problem(413, "Limit exceeded", self._detail(), instance=scope["path"],
                                  errors=[{"field": "body", "message": self._detail()}])
        await response(scope, receive, send)


def _problem_schemas(app: FastAPI) -> None:
    """OpenAPI: error responses are application/problem+json (FastAPI would say application/json)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    for response in operation.get("responses", {}).values():
                        content = response.get("content", {})
                        if errors.PROBLEM in content:
                            content[errors.PROBLEM] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def create_app(settings: Settings | None = None, jobs_service: Jobs | None = None) -> FastAPI:
    """The app. With `jobs_service`, the caller owns it (tests share one Dask cluster);
    otherwise the app starts the store and executor on startup and stops them on shutdown."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if jobs_service is not None:
            yield
            return
        owned = Jobs(settings, SQLiteStore(settings.data_dir), Executor(settings))
        await run_in_threadpool(owned.start)
        app.state.jobs = owned
        try:
            yield
        finally:
            await run_in_threadpool(owned.close)

    app = FastAPI(title="reskernel", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # served offline by routes/explorer.py
    app.state.settings = settings
    app.state.jobs = jobs_service
    app.state.worker_info = None
    errors.install(app)
    for module in (operations, experiments, jobs, health, explorer):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.limits.body_bytes)
    _problem_schemas(app)
    return app
