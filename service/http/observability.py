"""The outermost middleware: a request id for every request (`X-Request-ID`), one access log line
and the request metrics for every answer, including those that inner middlewares refuse
(400 untrusted host, 401, 413) and errors."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs
from service.http.metrics import Metrics

access = logging.getLogger("reskernel.access")
REQUEST_ID = "X-Request-ID"
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # a UUID, a trace id, ...: no spaces, quotes, control
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: logged at DEBUG


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is sane (1-128 characters of letters, digits and . _ : -,
    starting with a letter or digit), else a fresh one (32 hex digits)."""
    given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
    return given if SANE_ID.fullmatch(given) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that served (or would have served) the request: '/v1/jobs/{job_id}',
    never the raw path, so job ids do not multiply the metrics' labels; 'unmatched' when none does."""
    route = scope.get("route")
    if route is None:  # refused before routing (401, 413, 400): find the route it was meant for
        routes = _leaves(getattr(getattr(scope.get("app"), "router", None), "routes", ()))
        route = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    if route is None:
        return "unmatched"
    return str(getattr(route, "path_format", None) or getattr(route, "path", "unmatched"))


def _leaves(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes themselves, through included routers (FastAPI keeps them as the original router)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaves(inner.routes)
        else:
            yield route


class RequestContext:
    """Gives each HTTP request an id (the client's when sane), echoed as X-Request-ID on every
    response and carried by every log line written while it is handled; then logs one access line
    (method, route, path, status, duration, request id) and counts the request in `metrics`."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid, start, status = request_id(scope), time.perf_counter(), 500
        scope.setdefault("state", {})["request_id"] = rid  # for the error handler outside this middleware

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        with logs.request_context(rid) as context:
            try:
                await self.app(scope, receive, send_with_id)
            finally:  # also when the app raised: the error handler answers 500 and logs the traceback
                seconds = time.perf_counter() - start
                route = route_template(scope)
                self.metrics.request(scope["method"], route, status, seconds)
                job_id = context.job_id or scope.get("path_params", {}).get("job_id")
                path = scope["path"] if scope["path"].isprintable() else repr(scope["path"])  # one line per request
                access.log(logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                           "%s %s %d %.1f ms", scope["method"], path, status, seconds * 1e3,
                           extra={"method": scope["method"], "route": route, "path": scope["path"], "status": status,
                                  "duration_s": round(seconds, 6), **({"job_id": job_id} if job_id else {})})
