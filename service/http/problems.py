"""The one place that maps every error to RFC 9457 problem+json: domain errors
(`service.errors.ServiceError`), validation errors (422, one entry per field, capped), HTTP
errors (404, 405) and anything else (a 500 with a correlation id, or a 507 for a full disk).

Whatever a client sent is echoed clipped: a field's name to `MAX_NAME` characters per part, a
message to `MAX_MESSAGE`, the detail to `MAX_DETAIL` (a 10 MB key costs a short answer)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from service.errors import ServiceError, StorageFull, storage_full

log = logging.getLogger("reskernel")
PROBLEM = "application/problem+json"
MAX_ERRORS = 20  # field errors listed in one 422; the rest are counted
MAX_NAME, MAX_MESSAGE, MAX_DETAIL = 64, 512, 2048  # characters echoed, each part of a field name / ...


def clip(text: str, limit: int) -> str:
    """text, cut to `limit` characters and an ellipsis when longer."""
    return text if len(text) <= limit else text[:limit] + "\u2026"


class InvalidRequest(ServiceError):
    """A 422 listing its field errors (built in the worker thread that parsed the body, so the
    event loop only sends it): at most MAX_ERRORS of them, and `error_count`, the number of all
    errors, when some are not listed."""

    status, title = 422, "Invalid request"

    def __init__(self, errors: list[dict[str, str]], count: int):
        errors = errors[:MAX_ERRORS]
        shown = errors[:5]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in shown)
        more = f" (and {count - len(shown)} more)" if count > len(shown) else ""
        super().__init__(detail + more, extra={"error_count": count} if count > len(errors) else {})
        self.errors = errors


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """'x.0.1' from ('body', 'x', 0, 1), each part clipped to MAX_NAME characters; union members'
    tags ('constrained-float') are dropped; a header, query or path parameter keeps its name."""
    if loc and loc[0] in ("header", "query", "path", "cookie"):
        return ".".join(clip(str(p), MAX_NAME) for p in loc[1:])
    parts = [clip(str(p), MAX_NAME) for p in loc[1:] if isinstance(p, int) or str(p).isidentifier()]
    return ".".join(parts) or "body"


def invalid(raw: list[dict[str, Any]], count: int | None = None) -> InvalidRequest:
    """A 422 from pydantic-style errors (loc, msg): one entry per field (messages merged), the
    first MAX_ERRORS fields listed; `count`: the number of errors when `raw` is only the first of them."""
    merged: dict[str, list[str]] = {}
    for e in raw:
        field = field_name(e["loc"])
        if field in merged or len(merged) < MAX_ERRORS:
            merged.setdefault(field, []).append(clip(str(e["msg"]).removeprefix("Value error, "), MAX_MESSAGE))
    errors = [{"field": f, "message": clip(" or ".join(dict.fromkeys(m)), MAX_MESSAGE)} for f, m in merged.items()]
    return InvalidRequest(errors, len(raw) if count is None else count)


def internal_error(instance: str | None, where: str, request_id: str | None = None) -> JSONResponse:
    """A generic 500 whose correlation id is in the logs beside the traceback (and the request id,
    echoed: this answer is sent from outside the request-id middleware)."""
    correlation = uuid.uuid4().hex
    log.exception("internal error %s on %s", correlation, where, extra={"request_id": request_id} if request_id else {})
    return problem(500, "Internal error", f"an internal error occurred (correlation id {correlation}); "
                   "it is logged with that id", instance=instance, correlation_id=correlation,
                   headers={"X-Request-ID": request_id} if request_id else None)


def problem(status: int, title: str, detail: str, *, instance: str | None = None,
            errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": clip(detail, MAX_DETAIL)}
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        errors = getattr(exc, "errors", None) or (
            [{"field": clip(exc.field, 4 * MAX_NAME), "message": clip(exc.detail, MAX_MESSAGE)}] if exc.field else None)
        return problem(exc.status, exc.title, exc.detail, instance=request.url.path, errors=errors,
                       headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = exc.errors()
        if any(e.get("type") == "json_invalid" for e in raw):
            detail = next(e for e in raw if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
            return problem(400, "Malformed JSON", f"the body is not valid JSON: {detail}".rstrip(": "),
                           instance=request.url.path)
        return await service_error(request, await run_in_threadpool(invalid, list(raw)))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405 and b"%3a" in request.scope.get("raw_path", b"").lower():
            # an encoded ':' is data (RFC 3986 2.2), not the separator of '/v1/jobs/{id}:cancel': the path
            # names a resource that does not exist
            return problem(404, "Not found", f"no resource {request.url.path!r}", instance=request.url.path)
        if exc.status_code == 405:  # every route of this path, not just the first one Starlette tried
            scope = request.scope
            methods = [m for m in ("DELETE", "GET", "POST", "PUT", "PATCH")
                       if any(r.matches(dict(scope, method=m))[0] == Match.FULL for r in request.app.routes)]
            headers["Allow"] = ", ".join(methods + ["HEAD"] * ("GET" in methods))
        return problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail),
                       instance=request.url.path, headers=headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)  # set by service.http.observability.RequestContext
        if storage_full(exc):
            full = StorageFull()
            headers = full.headers | ({"X-Request-ID": request_id} if request_id else {})
            return problem(full.status, full.title, full.detail, instance=request.url.path, headers=headers)
        return internal_error(request.url.path, f"{request.method} {request.url.path}", request_id)

