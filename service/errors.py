"""Domain errors: what went wrong, with the HTTP status it maps to and the request field it
names. Raised anywhere below the HTTP layer; `service.http.problems` turns them into RFC 9457
problem+json. No web framework here."""

from __future__ import annotations

import errno
from typing import Any


class ServiceError(Exception):
    """An error with an HTTP status; `field` names the offending request field, if any."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, headers: dict[str, str] | None = None,
                 status: int | None = None, title: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.detail, self.field, self.headers, self.extra = detail, field, headers or {}, extra or {}
        self.status = status or self.status
        self.title = title or self.title


class LimitExceeded(ServiceError):
    title = "Limit exceeded"

    def __init__(self, status: int, field: str, detail: str):
        super().__init__(detail, field=field, status=status)


class JobNotFound(ServiceError):
    status, title = 404, "Job not found"


class QueueFull(ServiceError):
    status, title = 429, "Too many jobs queued"


class NotAcceptable(ServiceError):
    status, title = 406, "Not acceptable"


class Conflict(ServiceError):
    status, title = 409, "Conflict"


class Unavailable(ServiceError):
    status, title = 503, "Service unavailable"


class UnsupportedMediaType(ServiceError):
    status, title = 415, "Unsupported media type"


class StorageFull(ServiceError):
    """The data directory is full: nothing is lost, the request can be retried once space returns."""

    status, title = 507, "Insufficient storage"

    def __init__(self, detail: str = "the service's data directory is full; retry later"):
        super().__init__(detail, headers={"Retry-After": "60"})


def storage_full(exc: BaseException | None) -> bool:
    """Whether exc (or its cause) is a full disk: ENOSPC, or SQLite's 'database or disk is full'."""
    while exc is not None:
        if isinstance(exc, StorageFull) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            return True
        if "database or disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
