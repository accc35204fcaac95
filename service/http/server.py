"""The HTTP server under the app: uvicorn, with the limits a service facing clients directly needs
(without a reverse proxy in front, as `reskernel serve` runs by default).

uvicorn times out idle keep-alive connections but not a request's head: a client that opens a
connection and sends nothing, or sends its headers a byte at a time, holds it forever. `HeadTimeout`
closes a connection whose request line and headers are not complete `header_timeout_s` after the
connection or the request began, and answers 431 to a head over `HEAD_BYTES`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings

HEAD_BYTES = 64 * 2**10  # request line and headers together (nginx's default large_client_header_buffers: 32k)
logger = logging.getLogger("reskernel")


class HeadTimeout(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request's head."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing at all

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > HEAD_BYTES and not self.transport.is_closing():
            self._disarm()
            self._answer(431, "Request Header Fields Too Large",
                         f"the request line and headers exceed {HEAD_BYTES} bytes")

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            logger.info("closed a connection whose request head took over %g s", self.header_timeout_s)
            self._answer(408, "Request Timeout",
                         f"the request line and headers took over {self.header_timeout_s:g} s "
                         "(RESKERNEL_HEADER_TIMEOUT_S)")

    def _answer(self, status: int, reason: str, detail: str) -> None:
        """A problem+json answer written straight to the socket (no app runs for this request), then close."""
        body = json.dumps({"type": "about:blank", "title": reason, "status": status, "detail": detail}).encode()
        head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        self.transport.write(head + body)
        self.transport.close()


def server_config(app: Any, settings: Settings, host: str, port: int, log_level: str | int = "info") -> uvicorn.Config:
    """uvicorn's configuration for `app`: the head deadline and size limit above, uvicorn's own access
    log off (`service.http.observability` writes one line per request), its logging left to ours."""
    protocol = type("HeadTimeout", (HeadTimeout,), {"header_timeout_s": settings.header_timeout_s})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None, access_log=False,
                          http=protocol)
