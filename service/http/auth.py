"""Optional bearer-token auth (RESKERNEL_API_TOKEN): installed only when a token is set.

Open without the token: the health probes (/healthz, /readyz) and what holds no data: the explorer
page and its static files (`/`, /explorer/...), the API documentation (/docs, /redoc, their files,
/openapi.json). Everything else, /v1/... and /metrics included, needs `Authorization: Bearer
<token>`; a route added later is protected unless named here.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.problems import problem

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/openapi.json", "/docs", "/redoc"})
OPEN_PREFIXES = ("/explorer/", "/docs/", "/redoc/")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class BearerAuth:
    """401 problem+json, with `WWW-Authenticate: Bearer` (RFC 6750), for a request to a protected
    path without the token; the token is compared in constant time."""

    def __init__(self, app: ASGIApp, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            return await self.app(scope, receive, send)
        scheme, _, credentials = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token):
            return await self.app(scope, receive, send)
        if scheme:
            detail, challenge = "the bearer token is not valid", 'Bearer realm="reskernel", error="invalid_token"'
        else:
            detail, challenge = "this service needs its API token, sent as Bearer <token>", \
                'Bearer realm="reskernel"'
        response = problem(401, "Unauthorized", detail, instance=scope["path"],
                                  errors=[{"field": "Authorization", "message": detail}],
                                  headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)
