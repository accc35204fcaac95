"""The ASGI middleware of the app but for the request context (`observability`) and the token
(`auth`): the body size limit, the trusted Host header, HEAD as GET, and the security headers of every
answer."""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.problems import problem


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

        async def counted() -> Message:
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

        async def guarded(message: Message) -> None:
            if not refused:  # the 413 is the answer; drop what the app says after the disconnect
                await send(message)

        return await self.app(scope, counted, guarded)

    def _detail(self) -> str:
        return f"the request body exceeds the limit of {self.limit} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Limit exceeded", self._detail(), instance=scope["path"],
                                  errors=[{"field": "body", "message": self._detail()}])
        await response(scope, receive, send)


class TrustedHosts:
    """The Host header must name this service (against DNS rebinding); 400 problem+json."""

    def __init__(self, app: ASGIApp, trusted_hosts: tuple[str, ...]):
        self.app, self.any_host = app, "*" in trusted_hosts
        self.hosts = {h.lower().strip("[]") for h in trusted_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        hosts = Headers(scope=scope).getlist("host")
        if len(hosts) > 1:
            detail = "the request has more than one Host header"
        elif not self.any_host and hostname(hosts[0] if hosts else "") not in self.hosts:
            detail = "the Host header names no host this service answers for (RESKERNEL_TRUSTED_HOSTS)"
        else:
            return await self.app(scope, receive, send)
        return await problem(400, "Untrusted host", detail, instance=scope["path"],
                             errors=[{"field": "Host", "message": detail}])(scope, receive, send)


class HeadAsGet:
    """HEAD on every GET route (RFC 9110 9.3.2): the request runs as GET and its answer's head is sent
    with no body. A streamed answer (an event stream, a download) ends at its head: the app is told the
    client has gone."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        answered = False

        async def until_answered() -> Message:
            return {"type": "http.disconnect"} if answered else await receive()

        async def head_only(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                answered = True

        return await self.app(dict(scope, method="GET"), until_answered, head_only)


# Sent with every answer. A document's own policy (the explorer, /docs, /redoc: routes/explorer.py)
# replaces the default one, which lets a document load nothing: an API answer (JSON, the figure's SVG)
# opened in a tab runs no script and cannot be framed.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors 'none' for browsers that predate CSP 2
}
DEFAULT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


class SecurityHeaders:
    """Adds SECURITY_HEADERS, and Content-Security-Policy DEFAULT_POLICY where the answer sets none."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = DEFAULT_POLICY
            await send(message)

        return await self.app(scope, receive, secured)


# RFC 9110's Host: a registered name or a bracketed IPv6 literal, then an optional port; nothing else
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?))(?::[0-9]{1,5})?")


def hostname(host: str) -> str | None:
    """'example.org' from 'example.org:8000', '::1' from '[::1]:8000'; None for anything that is not a
    well-formed Host ('localhost:80@evil.example', '[::1]evil.example', '::1' unbracketed)."""
    match = _HOST.fullmatch(host.strip().lower())
    return None if match is None else match["ipv6"] or match["name"]
