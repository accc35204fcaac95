"""Structured logs: one JSON object per line (or plain text), carrying the request id and the
job id of the code that logged. Light enough for the worker processes (no web framework here).

The ids travel in a context variable: `request_context` (the request middleware) opens one per
request, `bind_job` names the job a request is about, `job_context` opens one where jobs are
handled outside a request (Dask's callbacks, the workers). Formatters read it when a line is
written, which is in the logging thread: threads started by `run_in_threadpool` copy the context.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

FORMATS = ("json", "text")
T = TypeVar("T")


@dataclass
class LogContext:
    """What the current line is about. Mutable, so an id bound deep in a request (the job a POST
    created) is seen by the request's access log line too."""

    request_id: str | None = None
    job_id: str | None = None


_context: ContextVar[LogContext | None] = ContextVar("reskernel_log_context", default=None)


def current() -> LogContext:
    """The ids of the current request or job (empty outside both)."""
    return _context.get() or LogContext()


@contextmanager
def request_context(request_id: str) -> Iterator[LogContext]:
    context = LogContext(request_id=request_id)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


@contextmanager
def job_context(job_id: str) -> Iterator[LogContext]:
    """Lines logged inside name `job_id` (and the enclosing request's id, if any)."""
    context = LogContext(request_id=current().request_id, job_id=job_id)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def names_job(function: Callable[..., T]) -> Callable[..., T]:
    """Decorates a function whose first argument is a job id: the lines it logs name that job."""
    @functools.wraps(function)
    def wrapper(job_id: str, *args: Any, **kwargs: Any) -> T:
        with job_context(job_id):
            return function(job_id, *args, **kwargs)

    return wrapper


def bind_job(job_id: str) -> None:
    """Name the job the current request is about (no effect outside a request or job context)."""
    context = _context.get()
    if context is not None:
        context.job_id = job_id


# attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field
# (but uvicorn's `color_message`, the message with terminal colours)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName",
                                                                                "color_message"}


def _ids(record: logging.LogRecord) -> dict[str, str]:
    """The record's request and job ids: given by `extra=`, else from the context."""
    context = current()
    ids = {"request_id": getattr(record, "request_id", None) or context.request_id,
           "job_id": getattr(record, "job_id", None) or context.job_id}
    return {k: v for k, v in ids.items() if v}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, request_id and
    job_id when known, the record's `extra=` fields, and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line |= _ids(record)
        line |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k not in line}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id=... job_id=...]` for reading in a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{k}={v}" for k, v in _ids(record).items())
        if not ids:
            return text
        first, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} [{ids}]{newline}{rest}"


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def _stderr(log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    return handler


def configure(log_format: str, level: int | str = logging.INFO) -> logging.Handler:
    """Every logger's lines to stderr in `log_format`: a handler on the root logger, and one of the
    same format for each stderr handler a library (Dask) gave its own logger (a handler each: Dask
    sets its handlers' levels). Returns the root's."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if type(old) is logging.StreamHandler and old.stream in (sys.stderr, sys.__stderr__):
                logger.removeHandler(old)
                logger.addHandler(replacement := _stderr(log_format))
                replacement.setLevel(old.level)
    handler = _stderr(log_format)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def configure_worker(log_format: str) -> None:
    """In a Dask worker process: the service's lines (logger "reskernel", INFO and above) to stderr in
    `log_format`, naming their job. Dask's own lines keep Dask's format; a process whose logging
    is already set up (an in-process cluster) is left alone."""
    ours = logging.getLogger("reskernel")
    if ours.handlers or logging.getLogger().handlers:
        return
    ours.addHandler(_stderr(log_format))
    ours.setLevel(logging.INFO)
