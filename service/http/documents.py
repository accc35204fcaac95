"""The documents the job routes answer with (the OpenAPI models): a job's status, a page of
jobs, and RFC 9457 problem details."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "succeeded", "failed", "canceled"]

# A binary answer (.npy, .npz, a figure) in an OpenAPI 3.1 response's content: a generated client keeps its bytes
BINARY: dict[str, Any] = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}


class JobError(BaseModel):
    status: int = Field(description="The HTTP status this failure maps to.")
    title: str
    detail: str


class ArraySpec(BaseModel):
    shape: list[int]
    dtype: str
    url: str = Field(description="Download link (add Accept: application/x-npy for binary).")


class ResultManifest(BaseModel):
    values: dict[str, Any] = Field(description="The result's non-array fields.")
    arrays: dict[str, ArraySpec]


class JobStatus(BaseModel):
    id: str = Field(description="SHA-256 of the canonical request and the engine's numerics version.")
    operation: str
    status: JobState
    progress: float = Field(ge=0, le=1)
    message: str
    attempts: int
    created_at: float = Field(description="Unix time (s).")
    started_at: float | None
    finished_at: float | None
    error: JobError | None
    links: dict[str, str]
    result: ResultManifest | None = Field(None, description="A succeeded job's values and arrays.")


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int
    next: str | None = Field(description="The next page, or null.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="Each invalid field: {field, message}.")
