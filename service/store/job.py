"""The stored job record and its statuses.

Leases: each dispatch of a job gets a `ticket`. While the job is queued the API replica that
dispatched it renews its lease; while it runs, the worker does. A job whose lease lapses
(its replica or worker died) is re-queued under a new ticket by whichever replica gets there
first (`requeue` is a compare-and-set on the ticket), and only the holder of the current ticket
may claim it: a job runs once per dispatch, and `attempts` counts real runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "canceled")
STATUSES = (*ACTIVE, *TERMINAL)

@dataclass
class Job:
    """The stored job record."""

    id: str
    operation: str
    params: dict[str, Any]
    status: str = "queued"
    progress: float = 0.0
    message: str = ""
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    cancel_requested: bool = False
    size_bytes: int = 0
    version: int = 0          # bumped by every visible change (the events' ids)
    ticket: str = ""          # the current dispatch (see the module's docstring)
    lease_until: float = 0.0  # epoch seconds; past it, the job's holder is presumed dead


def abandoned(attempts: int) -> dict[str, Any]:
    """The error of a job that was started `attempts` times and never finished."""
    return {"status": 500, "title": "Job abandoned", "abandoned": True,
            "detail": f"the job was started {attempts} times and never finished "
                      "(its worker or the service died each time); DELETE it to try again"}
