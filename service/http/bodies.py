"""Request bodies: parsed off the event loop, arrays through numpy with their shapes checked
before their numbers, and errors that cost no more than the request.

`parse(model, raw, limits)` runs in a worker thread: JSON (nesting bounded), then the points
limit by counting rows only, then the model's validation, whose array fields (`Points`,
`Values` in `service.operations.fields`) become float64 numpy arrays in one pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from service.errors import LimitExceeded, ServiceError
from service.jobs.admission import check_sizes
from service.operations.fields import ARRAY_FIELDS
from service.settings import Limits

M = TypeVar("M", bound=BaseModel)
MAX_NESTING = 32  # containers inside containers outside the array fields


class MalformedJSON(ServiceError):
    status, title = 400, "Malformed JSON"


def _load(raw: bytes) -> Any:
    try:
        return json.loads(raw)  # NaN and Infinity parse, and are refused with their field by validation
    except RecursionError:
        raise MalformedJSON("the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJSON(f"the body is not valid JSON: {exc}") from None


def _nesting(value: Any) -> int:
    """How deep containers nest in value (an iterative walk: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


async def read_body(request: Request) -> bytes:
    """The request's body; a body the BodyLimit middleware cut off (it has answered 413
    already) raises a 413 that nobody will see, ending the handler quietly."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise LimitExceeded(413, "body", "the request body was cut off") from None


def parse(model: type[M], raw: bytes, limits: Limits) -> M:
    """The validated request, or a 400 (JSON), 413 (sizes) or 422 (fields, capped) error."""
    data = _load(raw)
    if not isinstance(data, dict):
        raise RequestValidationError([{"type": "model_type", "loc": ("body",), "input": None,
                                       "msg": f"the body must be a JSON object, got {type(data).__name__}"}])
    others = {k: v for k, v in data.items() if k not in ARRAY_FIELDS}
    if _nesting(others) > MAX_NESTING:
        raise MalformedJSON(f"the body nests objects and arrays deeper than {MAX_NESTING} levels")
    check_sizes(data.get, limits)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"], *e.get("ctx", {}).get("where", ()))}
                                      for e in errors]) from None


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` of a route that reads its body itself (see `parse`); the model's
    schema is added to the document's components by `service.http.app._openapi`."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}
